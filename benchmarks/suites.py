"""The measurements.  Each runs its subjects in alternating rounds, one fresh process per run.

Round *r* runs the subjects rotated by *r* and, on odd rounds, reversed, so no
comparator always runs first, last or right after the same neighbour: machine
drift (thermal, other load) spreads over all of them.  Ratios are taken within
a round and then summarised.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _proc
from .envs import Env
from .sink import DiscardSink, free_port
from .stats import metric, paired_ratio

KEY = "ags_0123456789abcdef0123456789abcdef_abcdef"
OURS = "ours.py"

Log = Callable[[str], None]


@dataclass
class Subject:
    sid: str
    label: str
    run: Callable[[], dict[str, Any]]
    group: str = "ours"  # "ours", "floor" or "peer"


@dataclass
class Suite:
    name: str
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)
    ratios: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "subjects": self.subjects,
            "ratios": self.ratios,
            "skipped": self.skipped,
            "notes": self.notes,
            "params": self.params,
            "seconds": round(self.seconds, 1),
        }


def rounds(
    suite: Suite, subjects: list[Subject], n_rounds: int, metrics: list[str], log: Log
) -> dict[str, list[dict[str, Any] | None]]:
    """Run every subject once per round in interleaved order; summarise *metrics*."""
    runs: dict[str, list[dict[str, Any] | None]] = {s.sid: [] for s in subjects}
    errors: dict[str, list[str]] = {s.sid: [] for s in subjects}
    t0 = time.monotonic()
    for r in range(n_rounds):
        order = subjects[r % len(subjects) :] + subjects[: r % len(subjects)]
        if r % 2:
            order = order[::-1]
        for s in order:
            t = time.monotonic()
            try:
                result = s.run()
                runs[s.sid].append(result)
                log(
                    f"  [{suite.name} r{r + 1}] {s.sid:<24} {_brief(result, metrics)}"
                    f"  ({time.monotonic() - t:.1f} s)"
                )
            except Exception as exc:
                runs[s.sid].append(None)
                errors[s.sid].append(str(exc))
                log(f"  [{suite.name} r{r + 1}] {s.sid:<24} FAILED: {exc}")
    suite.seconds += time.monotonic() - t0
    for s in subjects:
        suite.subjects[s.sid] = {
            "label": s.label,
            "group": s.group,
            "summary": {m: metric(runs[s.sid], m) for m in metrics},
            "runs": runs[s.sid],
            "errors": errors[s.sid],
        }
    return runs


def _brief(result: dict[str, Any], metrics: list[str]) -> str:
    parts = []
    for m in metrics:
        v = result.get(m)
        if isinstance(v, float):
            parts.append(f"{m}={v:,.3g}" if abs(v) < 1000 else f"{m}={v:,.0f}")
        elif v is not None:
            parts.append(f"{m}={v}")
    return " ".join(parts)


def _peer_subject(
    env: Env,
    sid: str,
    label: str,
    cfg_fn: Callable[[], dict[str, Any]],
    extra_env: Callable[[], dict[str, str]] | None = None,
    timeout: float = 300,
) -> Subject:
    assert env.python is not None

    def run() -> dict[str, Any]:
        return _proc.run(
            env.python,
            env.peer.script,
            cfg_fn(),
            env=extra_env() if extra_env else None,
            timeout=timeout,
        )

    return Subject(sid, label, run, "peer")


def _ours_subject(
    sid: str,
    label: str,
    cfg_fn: Callable[[], dict[str, Any]],
    group: str = "ours",
    timeout: float = 300,
) -> Subject:
    def run() -> dict[str, Any]:
        return _proc.run(_proc.ours_python(), OURS, cfg_fn(), timeout=timeout)

    return Subject(sid, label, run, group)


def _usable(envs: dict[str, Env], suite: Suite, name: str) -> Env | None:
    env = envs.get(name)
    if env is None or env.python is None:
        suite.skipped[name] = env.error if env is not None else "not requested"
        return None
    return env


# --- (1) per-call overhead ----------------------------------------------------------------------
def percall(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("percall")
    per_batch = 50
    fast, slow = (20, 20) if quick else (1000, 200)  # batches: cheap calls, expensive calls
    suite.params = {
        "per_batch": per_batch,
        "batches_fast": fast,
        "batches_slow": slow,
        "busy_calls": fast * per_batch,
        "message_chars": 64,
    }

    def sync_busy() -> dict[str, Any]:
        # Issue 14: the caller's mean cost while its flusher delivers to the collector (a
        # separate process from the caller: this orchestrator's), over fast * 50 calls.
        with _collector() as col:
            cfg = dict(base, form="sync", batches=fast, endpoint=col.url)
            result = _proc.run(_proc.ours_python(), OURS, cfg, timeout=300)
            result["delivered_verified"] = _delivered_messages(col.db_path)
        return result

    with DiscardSink() as sink:
        base = {"bench": "percall", "per_batch": per_batch, "endpoint": sink.url}
        subjects = [
            _ours_subject(
                "floor",
                "deque.append (floor)",
                lambda: dict(base, bench="floor", batches=fast),
                "floor",
            ),
            _ours_subject(
                "ours_sync", "ours, sync facade", lambda: dict(base, form="sync", batches=fast)
            ),
            _ours_subject(
                "ours_sync_hot",
                "ours, sync (hot path only)",
                lambda: dict(base, form="sync", hot_only=True, batches=fast),
            ),
            Subject("ours_sync_collector", "ours, sync facade, flusher → collector", sync_busy),
            _ours_subject(
                "ours_async", "ours, await", lambda: dict(base, form="async", batches=fast)
            ),
            _ours_subject(
                "ours_async_hot",
                "ours, await (hot path only)",
                lambda: dict(base, form="async", hot_only=True, batches=fast),
            ),
        ]
        peer_cfg = {
            "agentsight_0_0_44": ("agentsight 0.0.44 track_human_message", fast),
            "agentsight_0_1_4": ("agentsight 0.1.4 user_message in a turn", slow),
            "posthog": ("PostHog capture", slow),
            "otel": ("OpenTelemetry span + event", slow),
        }
        for name, (label, batches) in peer_cfg.items():
            env = _usable(envs, suite, name)
            if env is None:
                continue
            subjects.append(
                _peer_subject(
                    env,
                    name,
                    label,
                    lambda b=batches: dict(base, batches=b),
                    lambda: {"AGENTSIGHT_API_KEY": KEY, "AGENTSIGHT_API_ENDPOINT": sink.url},
                )
            )
        runs = rounds(
            suite, subjects, n_rounds, ["p50_us", "p99_us", "mean_us", "delivered_during"], log
        )
    peers = [sid for sid in runs if sid in peer_cfg]
    if "agentsight_0_0_44" in runs:  # issue 14: ours ÷ theirs, mean per call (lower is better)
        for ours in ("ours_sync_collector", "ours_sync"):
            suite.ratios[f"{ours}/agentsight_0_0_44:mean_us"] = paired_ratio(
                runs[ours], runs["agentsight_0_0_44"], "mean_us"
            )
    for ours in ("ours_sync", "ours_async", "ours_sync_hot", "ours_async_hot"):
        for key in ("p50_us", "p99_us"):
            for peer in peers:  # how many times more a peer costs than we do
                suite.ratios[f"{peer}/{ours}:{key}"] = paired_ratio(runs[peer], runs[ours], key)
            suite.ratios[f"{ours}/floor:{key}"] = paired_ratio(runs[ours], runs["floor"], key)
    return suite


# --- (2) end-to-end delivered events/s to the local collector -----------------------------------
@contextlib.contextmanager
def _collector() -> Iterator[Any]:
    from agentsight_collector import LocalCollector

    with LocalCollector(api_keys=[KEY]) as col:
        yield col


def _delivered_messages(db_path: str) -> int:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        con.close()


def _e2e_run(run_worker: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run one worker against a fresh collector; verify delivery from its storage."""
    with _collector() as col:
        result = run_worker(col.url)
        delivered = _delivered_messages(col.db_path)
    result["delivered_verified"] = delivered
    result["complete"] = delivered == result["tracked"]
    result["events_per_s"] = delivered / result["elapsed_s"] if result["elapsed_s"] else None
    return result


E2E_SCENARIOS = {
    # sid suffix: (conversations, events per conversation) for: ours ingest, ours rest,
    # 0.0.44 (about 400 events/s here), 0.1.4.  Ours over REST sends what 0.0.44 sends, so
    # the REST ratio compares the same workload (one-off start-up costs weigh alike).
    "1conv": {"ingest": (1, 20_000), "rest": (1, 2_000), "0044": (1, 2_000), "014": (1, 10_000)},
    "1000conv": {"ingest": (1000, 20), "rest": (1000, 2), "0044": (1000, 2), "014": (1000, 10)},
}
E2E_QUICK = {
    "1conv": {"ingest": (1, 200), "rest": (1, 20), "0044": (1, 20), "014": (1, 100)},
    "1000conv": {"ingest": (20, 5), "rest": (20, 2), "0044": (10, 2), "014": (20, 2)},
}


def e2e(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("e2e")
    scenarios = E2E_QUICK if quick else E2E_SCENARIOS
    suite.params = {k: {p: list(v) for p, v in s.items()} for k, s in scenarios.items()}
    if quick:
        suite.notes.append("quick mode: 20 conversations stand in for 1,000")
    subjects: list[Subject] = []
    a44 = _usable(envs, suite, "agentsight_0_0_44")
    a14 = _usable(envs, suite, "agentsight_0_1_4")
    for scen, counts in scenarios.items():
        for proto in ("ingest", "rest"):
            convs, per = counts[proto]

            def ours(url: str, proto: str = proto, convs: int = convs, per: int = per) -> dict:
                cfg = {
                    "bench": "e2e",
                    "protocol": proto,
                    "conversations": convs,
                    "events_per_conversation": per,
                    "endpoint": url,
                    "api_key": KEY,
                }
                return _proc.run(_proc.ours_python(), OURS, cfg, timeout=600)

            subjects.append(
                Subject(
                    f"ours_{proto}_{scen}", f"ours {proto}, {scen}", lambda fn=ours: _e2e_run(fn)
                )
            )
        for env, key, label in (
            (a44, "0044", "agentsight 0.0.44 send_tracked_data()"),
            (a14, "014", "agentsight 0.1.4 flush()"),
        ):
            if env is None:
                continue
            convs, per = counts[key]

            def peer(url: str, env: Env = env, convs: int = convs, per: int = per) -> dict:
                assert env.python is not None
                cfg = {
                    "bench": "e2e",
                    "conversations": convs,
                    "events_per_conversation": per,
                    "endpoint": url,
                }
                extra = {"AGENTSIGHT_API_KEY": KEY, "AGENTSIGHT_API_ENDPOINT": url}
                return _proc.run(env.python, env.peer.script, cfg, env=extra, timeout=600)

            subjects.append(
                Subject(
                    f"{env.peer.name}_{scen}",
                    f"{label}, {scen}",
                    lambda fn=peer: _e2e_run(fn),
                    "peer",
                )
            )
    runs = rounds(
        suite, subjects, n_rounds, ["events_per_s", "elapsed_s", "delivered_verified"], log
    )
    for scen in scenarios:
        for proto in ("ingest", "rest"):
            ours = f"ours_{proto}_{scen}"
            for peer in ("agentsight_0_0_44", "agentsight_0_1_4"):
                if f"{peer}_{scen}" in runs:
                    suite.ratios[f"{ours}/{peer}_{scen}:events_per_s"] = paired_ratio(
                        runs[ours], runs[f"{peer}_{scen}"], "events_per_s"
                    )
    return suite


# --- (3) event-loop lag ---------------------------------------------------------------------------
def lag(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("lag")
    params = {"rate": 20_000, "duration_s": 1.0 if quick else 5.0, "conversations": 10}
    suite.params = params

    def make(baseline: bool) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with _collector() as col:
                cfg = dict(params, bench="lag", endpoint=col.url, api_key=KEY, baseline=baseline)
                return _proc.run(_proc.ours_python(), OURS, cfg, timeout=300)

        return run

    subjects = [
        Subject("ours", "ours: 20k events/s + flusher uploading", make(False)),
        Subject("baseline", "same pacing, nothing tracked", make(True), "floor"),
    ]
    rounds(suite, subjects, n_rounds, ["p50_ms", "p99_ms", "max_ms", "achieved_rate"], log)
    return suite


# --- (4) memory during an outage -----------------------------------------------------------------
def memory(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("memory")
    events = 20_000 if quick else 1_000_000
    cap = (1 << 20) if quick else (64 << 20)
    suite.params = {"events": events, "max_queue_bytes": cap}

    def run() -> dict[str, Any]:
        port = free_port()
        cfg = {
            "bench": "memory",
            "events": events,
            "max_queue_bytes": cap,
            "endpoint": f"http://127.0.0.1:{port}",
            "recovery_timeout": 120,
        }
        proc = subprocess.Popen(
            _proc.command(_proc.ours_python(), OURS, cfg),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_proc._env(None),
            cwd=_proc.REPO,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            if not line.startswith("OUTAGE_DONE"):
                raise _proc.WorkerError(
                    f"memory worker: {line.strip() or proc.stderr.read()[-400:]}"
                )
            with DiscardSink(port=port) as sink:  # the collector comes back
                proc.stdin.write("\n")
                proc.stdin.flush()
                out, _ = proc.communicate(timeout=300)
                requests = sink.requests
            result = _proc.parse(out)
            result["recovery_requests"] = requests
            result["growth_peak_over_cap"] = result["growth_peak"] / cap
            return result
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    subjects = [Subject("ours", "ours: outage with a byte cap", run)]
    rounds(
        suite,
        subjects,
        n_rounds,
        [
            "growth_peak",
            "growth_after_recovery",
            "queued_bytes_peak",
            "growth_peak_over_cap",
            "dropped_queue_full",
            "recovery_s",
        ],
        log,
    )
    return suite


# --- (5) scaling with concurrent conversations ----------------------------------------------------
def scaling(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("scaling")
    counts = [1, 10, 100] if quick else [1, 10, 100, 1000, 10_000]
    total = 1_000 if quick else 20_000
    suite.params = {"conversations": counts, "events": total}
    with DiscardSink() as sink:
        subjects = [
            _ours_subject(
                f"c{n}",
                f"{n:,} conversations",
                lambda n=n: {
                    "bench": "scaling",
                    "conversations": n,
                    "events": total,
                    "endpoint": sink.url,
                },
                timeout=600,
            )
            for n in counts
        ]
        rounds(
            suite,
            subjects,
            n_rounds,
            ["track_us_per_event", "cpu_us_per_event", "wall_track_us_per_event"],
            log,
        )
    for key in ("track_us_per_event", "cpu_us_per_event"):
        medians = [suite.subjects[s.sid]["summary"][key]["median"] for s in subjects]
        medians = [m for m in medians if m]
        suite.ratios[f"max/min:{key}"] = (max(medians) / min(medians)) if medians else None
    return suite


# --- (6) SDK delivery capacity -------------------------------------------------------------------
def capacity(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    suite = Suite("capacity")
    plan = {
        "ingest_100conv": ("ingest", 100, 5 if quick else 500),
        "ingest_10000conv": ("ingest", 200 if quick else 10_000, 2),
        "ingest_1conv": ("ingest", 1, 200 if quick else 20_000),
        "rest_100conv": ("rest", 20 if quick else 100, 2 if quick else 20),
    }
    if quick:
        suite.notes.append("quick mode: 200 conversations stand in for 10,000")
    suite.params = {k: list(v) for k, v in plan.items()}
    with DiscardSink() as sink:
        subjects = [
            _ours_subject(
                sid,
                f"ours {proto}, {convs:,} conversation(s) x {per:,} events",
                lambda proto=proto, convs=convs, per=per: {
                    "bench": "capacity",
                    "protocol": proto,
                    "conversations": convs,
                    "events_per_conversation": per,
                    "endpoint": sink.url,
                    "api_key": KEY,
                },
                timeout=600,
            )
            for sid, (proto, convs, per) in plan.items()
        ]
        runs = rounds(
            suite, subjects, n_rounds, ["events_per_s", "elapsed_s", "cpu_us_per_event"], log
        )
    # Issue 14: CPU per delivered event at 10,000 conversations x 2 events ÷ at 100 conversations.
    suite.ratios["ingest_10000conv/ingest_100conv:cpu_us_per_event"] = paired_ratio(
        runs["ingest_10000conv"], runs["ingest_100conv"], "cpu_us_per_event"
    )
    return suite


# --- (7) push: a recording uploaded to the local collector -------------------------------------
PUSH_SIZES = {"ingest": 100_000, "rest": 2_000}
PUSH_QUICK = {"ingest": 2_000, "rest": 100}


def _record(path: str, events: int, conversations: int = 100) -> None:
    """A ``sqlite:///`` recording of *events* short messages, written by the SDK."""
    import asyncio

    from agentsight_async import AsyncConversationTracker
    from agentsight_async._store import Store

    Store(path).close()  # created first: a new file opened by two export threads can lock

    async def main() -> None:
        knobs = {"max_queue_events": events + 10, "max_queue_bytes": 1 << 30}
        async with AsyncConversationTracker(api_endpoint=f"sqlite:///{path}", **knobs) as t:
            for i in range(events):
                c = i % conversations
                await t.track_human_message(
                    f"message {i // conversations} of conversation {c}", conversation_id=f"c{c}"
                )
            if not await t.flush(600):
                raise RuntimeError("the recording is incomplete")

    asyncio.run(main())


def _push_run(recording: str, protocol: str, events: int, state: str) -> dict[str, Any]:
    """``agentsight-async push`` (a fresh process, no progress bar) into a fresh collector."""
    import re

    with _collector() as col:
        env = {"AGENTSIGHT_API_KEY": KEY, "AGENTSIGHT_API_ENDPOINT": col.url}
        t0 = time.monotonic()
        proc = subprocess.run(
            [_proc.ours_python(), "-m", "agentsight_async", "push", recording, "--no-progress",
             "--protocol", protocol, "--state", state],
            capture_output=True, text=True, timeout=900, env=_proc._env(env), cwd=_proc.REPO,
        )  # fmt: skip
        wall = time.monotonic() - t0
        delivered = _delivered_messages(col.db_path)
    if proc.returncode != 0:
        raise RuntimeError(f"push exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    match = re.search(r"pushed ([\d,]+) event\(s\) .* in ([\d.]+) s", proc.stdout)
    if match is None:
        raise RuntimeError(f"unexpected push output: {proc.stdout.strip()[-300:]}")
    sent, seconds = int(match.group(1).replace(",", "")), float(match.group(2))
    return {
        "events": events,
        "sent": sent,
        "delivered_verified": delivered,
        "complete": delivered == events,
        "push_s": seconds,
        "process_s": round(wall, 3),
        "events_per_s": sent / seconds if seconds else None,
    }


def push(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    """``agentsight-async push`` of a recording (what ``sqlite:///`` wrote) into the collector.

    The recording is made once per suite by the SDK; every run pushes it whole
    into a fresh collector with a fresh progress file, and the delivered rows are
    counted in the collector's storage.  events/s is the push's own figure (from
    reading the first row to the last answer); ``process_s`` adds interpreter start.
    """
    import tempfile

    suite = Suite("push")
    sizes = PUSH_QUICK if quick else PUSH_SIZES
    suite.params = {"events": dict(sizes), "conversations": 100}
    with tempfile.TemporaryDirectory(prefix="agentsight-bench-push-") as tmp:
        recordings = {}
        for protocol, events in sizes.items():
            path = f"{tmp}/{protocol}.db"
            t0 = time.monotonic()
            _record(path, events)
            log(f"  [push] recorded {events:,} events in {time.monotonic() - t0:.1f} s")
            recordings[protocol] = path
        counter = iter(range(1_000_000))
        subjects = [
            Subject(
                f"push_{protocol}",
                f"push {sizes[protocol]:,} events, {protocol}",
                lambda p=protocol: _push_run(
                    recordings[p], p, sizes[p], f"{tmp}/state-{next(counter)}"
                ),
            )
            for protocol in sizes
        ]
        rounds(suite, subjects, n_rounds, ["events_per_s", "push_s", "delivered_verified"], log)
    return suite


# --- (8) OTLP export against the OpenTelemetry SDK doing the same work --------------------------
def otlp(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    """The same agent turns (message, tool, model call, reply; content captured) exported
    over OTLP by us and by the OpenTelemetry SDK's BatchSpanProcessor + OTLP/HTTP exporter,
    both gzip, to a discarding sink: CPU per item and items/s, each in its own process."""
    suite = Suite("otlp")
    convs, turns = (4, 10) if quick else (10, 500)
    suite.params = {"conversations": convs, "turns": turns, "items_per_turn": 4}
    with DiscardSink() as sink:
        base = {"bench": "otlp", "conversations": convs, "turns": turns, "endpoint": sink.url}
        subjects = [
            _ours_subject(
                "ours_otlp", "ours, otlp (protobuf)", lambda: dict(base, protocol="otlp")
            ),
            _ours_subject(
                "ours_otlp_json",
                "ours, otlp (JSON)",
                lambda: dict(base, protocol="otlp", encoding="json"),
            ),
            _ours_subject(
                "ours_ingest", "ours, ingest (same items)", lambda: dict(base, protocol="ingest")
            ),
        ]
        env = _usable(envs, suite, "otel_otlp")
        if env is not None:
            subjects.append(
                _peer_subject(
                    env,
                    "otel_otlp",
                    "OpenTelemetry SDK: BatchSpanProcessor + OTLP/HTTP exporter",
                    lambda: dict(base),
                )
            )
        runs = rounds(suite, subjects, n_rounds, ["cpu_us_per_event", "events_per_s"], log)
    if "otel_otlp" in runs:
        for ours in ("ours_otlp", "ours_otlp_json", "ours_ingest"):
            suite.ratios[f"otel_otlp/{ours}:cpu_us_per_event"] = paired_ratio(
                runs["otel_otlp"], runs[ours], "cpu_us_per_event"
            )
            suite.ratios[f"{ours}/otel_otlp:events_per_s"] = paired_ratio(
                runs[ours], runs["otel_otlp"], "events_per_s"
            )
    return suite


# --- (9) the collector's CPU per stored event, in its own process --------------------------------
COLLECTOR_SCENARIOS = {"1conv": (1, 20_000), "1000conv": (1000, 20)}
COLLECTOR_QUICK = {"1conv": (1, 200), "1000conv": (20, 5)}


def _stored_messages(db_path: str, expect: int, timeout: float = 30.0) -> int:
    """Rows in the collector's messages table once they reach *expect* or stop changing."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while True:
        try:
            n = _delivered_messages(db_path)
        except sqlite3.Error:
            n = 0
        if n >= expect:
            return n
        now = time.monotonic()
        if n != last:
            last, stable_since = n, now
        elif now - stable_since > 1.0 or now > deadline:
            return n
        time.sleep(0.05)


def _collector_run(convs: int, per_conv: int, code: Path | None = None) -> dict[str, Any]:
    """Our SDK's ingest load into a collector in its own process (served from *code*, a
    source tree, or this one), and the collector's CPU per stored event."""
    import psutil

    from .serve import Serve

    with Serve(KEY, code=code) as serve:
        server = psutil.Process(serve.pid)
        t0 = server.cpu_times()
        cfg = {
            "bench": "e2e",
            "protocol": "ingest",
            "conversations": convs,
            "events_per_conversation": per_conv,
            "endpoint": serve.url,
            "api_key": KEY,
        }
        result = _proc.run(_proc.ours_python(), OURS, cfg, timeout=600)
        stored = _stored_messages(serve.db_path, result["tracked"])
        t1 = server.cpu_times()
        rss = server.memory_info().rss
    cpu = (t1.user - t0.user) + (t1.system - t0.system)
    return {
        "tracked": result["tracked"],
        "stored": stored,
        "complete": stored == result["tracked"],
        "collector_cpu_s": cpu,
        "cpu_us_per_stored_event": cpu / stored * 1e6 if stored else None,
        "events_per_s": stored / result["elapsed_s"] if result["elapsed_s"] else None,
        "sdk_cpu_s": result["cpu_s"],
        "collector_rss": rss,
    }


def collector(envs: dict[str, Env], quick: bool, n_rounds: int, log: Log) -> Suite:
    """The local collector's CPU (all its threads, read with psutil) per event it stored.

    The collector runs in its own process (``python -m agentsight_collector`` on a
    fresh SQLite file, :class:`benchmarks.serve.Serve`); our SDK sends it a fixed
    load over ``ingest`` from another process; its CPU is read once it answers
    ``/healthz`` and again once the SDK's flush returned and the stored rows
    (messages table) reached the count sent.
    """
    suite = Suite("collector")
    scenarios = COLLECTOR_QUICK if quick else COLLECTOR_SCENARIOS
    suite.params = {k: list(v) for k, v in scenarios.items()}
    if quick:
        suite.notes.append("quick mode: 20 conversations stand in for 1,000")
    subjects = [
        Subject(
            f"collector_{scen}",
            f"collector, {convs:,} conversation(s) x {per:,} events",
            lambda convs=convs, per=per: _collector_run(convs, per),
        )
        for scen, (convs, per) in scenarios.items()
    ]
    rounds(
        suite,
        subjects,
        n_rounds,
        ["cpu_us_per_stored_event", "events_per_s", "stored", "collector_cpu_s"],
        log,
    )
    return suite


SUITES = {
    "percall": percall,
    "e2e": e2e,
    "lag": lag,
    "memory": memory,
    "scaling": scaling,
    "capacity": capacity,
    "push": push,
    "otlp": otlp,
    "collector": collector,
}

__all__ = ["SUITES", "Suite"]
