"""Fault injection end to end: the real collector on loopback behind a fault proxy.

For both protocols: every event is stored exactly once (by its event id: the
ingest span id, the REST ``Idempotency-Key``), each conversation in tracking
order, every retry inside the batch's budget, and ``stats()`` agreeing with
what the proxy saw.  Faults are bounded in number (and per request), so each
test stops by itself; the fixtures stop every server and process.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from reliability_support import (
    FULL,
    KEY,
    RESET_AFTER,
    RESET_BEFORE,
    RETRY_AFTER_DATE,
    RETRY_AFTER_SECONDS,
    SLOW,
    STATUS,
    CollectorProcess,
    Fault,
    FaultProxy,
    Policy,
    count_rows,
    id_report,
    mixed_policy,
    size,
    transcript_markers,
    wait_until,
)

from agentsight_async import AsyncConversationTracker
from agentsight_async._stats import Throttle
from agentsight_collector import LocalCollector

PROTOCOLS = ["ingest", "rest"]
REQUEST_TIMEOUT = 0.5

#: Every fault kind the issue names.
ALL_FAULTS = [
    Fault(STATUS, 500),
    Fault(STATUS, 502),
    Fault(STATUS, 503),
    Fault(RETRY_AFTER_SECONDS, 1),
    Fault(RETRY_AFTER_DATE, 1),
    Fault(SLOW, REQUEST_TIMEOUT * 2.5),
    Fault(RESET_BEFORE),
    Fault(RESET_AFTER),
]

#: Figures the suite reports (printed by test_report_figures at the end of the module).
FIGURES: dict[str, dict[str, Any]] = defaultdict(dict)


#: The longest a first 429 pauses these trackers (flush_interval 0.05 s; Throttle).
FIRST_429_PAUSE = 0.05 * 2**Throttle.MAX_LEVEL * (1 + Throttle.JITTER)


def tracker_for(url: str, protocol: str, **overrides: Any) -> AsyncConversationTracker:
    options: dict[str, Any] = {
        "api_key": KEY,
        "endpoint": url,
        "protocol": protocol,
        "flush_interval": 0.05,
        "batch_size": 25,
        "request_timeout": REQUEST_TIMEOUT,
        "retry_budget": 20.0,
        "shutdown_timeout": 10.0,
        "_env_file": None,
    }
    options.update(overrides)
    return AsyncConversationTracker(**options)


async def track_workload(
    tracker: AsyncConversationTracker,
    prefix: str,
    conversations: int,
    per_conversation: int,
    *,
    between_rounds: Callable[[int], Any] | None = None,
) -> dict[str, list[str]]:
    """Round-robin over conversations; every item carries a unique marker.

    Returns the expected transcript (markers in tracking order) per conversation.
    Tracks ``conversations * (1 + per_conversation)`` events (one conversation
    item each, then messages, buttons and actions).
    """
    expected: dict[str, list[str]] = {}
    for c in range(conversations):
        cid = f"{prefix}-{c}"
        await tracker.get_or_create_conversation(cid, name=f"{prefix} {c}", metadata={"c": c})
        expected[cid] = []
    for j in range(per_conversation):
        for cid, markers in expected.items():
            marker = f"{cid}#{j}"
            kind = j % 5
            if kind in (0, 2):
                await tracker.track_human_message(marker, conversation_id=cid)
            elif kind == 1:
                await tracker.track_agent_message(marker, conversation_id=cid)
            elif kind == 3:
                await tracker.track_button("click", marker, "v", conversation_id=cid)
            else:
                await tracker.track_action("lookup", response=marker, conversation_id=cid)
            markers.append(marker)
        if between_rounds is not None:
            result = between_rounds(j)
            if asyncio.iscoroutine(result):
                await result
        else:
            await asyncio.sleep(0)  # let the flusher run between rounds: faults hit mid-stream
    return expected


def assert_exactly_once_in_order(
    db: str, expected: dict[str, list[str]], protocol: str
) -> dict[str, int]:
    """Every marker stored once, each conversation in tracking order; returns figures."""
    stored = transcript_markers(db)
    ours = {cid: stored.get(cid, []) for cid in expected}
    sent = sum(len(m) for m in expected.values())
    got = Counter(m for markers in ours.values() for m in markers)
    duplicated = sum(n - 1 for n in got.values() if n > 1)
    lost = sum(1 for markers in expected.values() for m in markers if m not in got)
    assert duplicated == 0, f"{duplicated} item(s) stored more than once"
    assert lost == 0, f"{lost} item(s) never stored"
    for cid, markers in expected.items():
        assert ours[cid] == markers, f"{cid} stored out of order"
    ids, dup_ids = id_report(db, protocol)
    assert dup_ids == 0
    # ingest: one projected row per item span; rest: one key per item plus the conversation items
    assert ids == sent + (len(expected) if protocol == "rest" else 0)
    if protocol == "ingest":
        assert count_rows(db, "spans") == sent + len(expected)  # + the conversation spans
    assert count_rows(db, "conversations") >= len(expected)
    return {"sent": sent, "lost": lost, "duplicated": duplicated}


def assert_retries_within_budget(proxy: FaultProxy, budget: float) -> float:
    """Attempts of one request (same key) span at most the retry budget; returns the max."""
    by_key: dict[str, list[float]] = defaultdict(list)
    for r in proxy.posts():
        by_key[r.key].append(r.started)
    longest = max((max(ts) - min(ts) for ts in by_key.values()), default=0.0)
    assert longest <= budget, f"a request was retried for {longest:.2f} s (budget {budget} s)"
    return longest


def assert_stats_match(stats: dict[str, Any], proxy: FaultProxy, events: int) -> None:
    assert stats["tracked"] == events
    assert stats["delivered"] == events
    assert stats["dropped_total"] == 0, stats["dropped"]
    assert stats["queued_events"] == 0
    assert stats["queued_bytes"] == 0
    assert stats["in_flight"] == 0
    # each injected fault costs exactly one retry; every attempt went through the proxy
    assert stats["retried"] == proxy.injected_total
    assert stats["requests"] == len(proxy.records)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_mixed_faults_heal_exactly_once_in_order(
    protocol: str, collector: LocalCollector, fault_proxy: Callable[[Policy], FaultProxy]
) -> None:
    conversations = size(12, 60)
    per_conversation = size(12, 40)
    budget = 20.0
    proxy = fault_proxy(
        mixed_policy(
            ALL_FAULTS,
            probability=0.3,
            max_faults=size(40, 400),
            max_per_request=2,
            seed=5 if protocol == "ingest" else 6,
        )
    )
    tracker = tracker_for(proxy.url, protocol, retry_budget=budget, batch_size=6)
    started = time.monotonic()

    async def pace(round_no: int) -> None:
        await asyncio.sleep(0.01)  # spread tracking over time: faults land mid-stream

    async with tracker:
        expected = await track_workload(
            tracker, f"mix-{protocol}", conversations, per_conversation, between_rounds=pace
        )
        assert await tracker.flush(timeout=60)
        stats = tracker.stats()
    elapsed = time.monotonic() - started
    events = conversations * (1 + per_conversation)
    figures = assert_exactly_once_in_order(collector.db_path, expected, protocol)
    assert_stats_match(stats, proxy, events)
    # every kind was exercised (and the run was not trivially fault-free)
    assert set(proxy.injected) == {f.label for f in ALL_FAULTS}, proxy.injected
    longest = assert_retries_within_budget(proxy, budget)
    # a committed-then-lost answer was replayed, and the server deduplicated it
    replayed = [r for r in proxy.posts() if r.fault in (RESET_AFTER, SLOW)]
    assert replayed
    assert all(r.upstream_status == 201 for r in replayed)
    FIGURES[protocol]["mixed"] = {
        **figures,
        "events": events,
        "faults": dict(proxy.injected),
        "requests": len(proxy.records),
        "longest_retry_s": round(longest, 2),
        "elapsed_s": round(elapsed, 2),
    }


@pytest.mark.parametrize(
    "protocol",
    # the retry policy is shared; CI checks it on ingest, the full run on both
    [*PROTOCOLS] if FULL else ["ingest"],
)
@pytest.mark.parametrize(
    ("fault", "low", "high"),
    [
        # Never before Retry-After; not much later than the first 429's pause either: the
        # exporter gives way past it, to its widened interval (flush_interval 0.05 s * 2**6,
        # the top level), plus up to half again at random - 3.2 to 4.8 s here.
        (Fault(RETRY_AFTER_SECONDS, 1), 0.95, FIRST_429_PAUSE + 0.5),
        # an HTTP-date has whole seconds: 1-2 s
        (Fault(RETRY_AFTER_DATE, 2), 0.95, FIRST_429_PAUSE + 0.5),
        # capped by retry_after_cap=1
        (Fault(RETRY_AFTER_SECONDS, 3600), 0.95, FIRST_429_PAUSE + 0.5),
    ],
    ids=["seconds", "http-date", "capped"],
)
async def test_retry_after_is_honoured(
    protocol: str,
    fault: Fault,
    low: float,
    high: float,
    collector: LocalCollector,
    fault_proxy: Callable[[Policy], FaultProxy],
) -> None:
    def policy(method: str, path: str, key: str, attempt: int) -> Fault | None:
        first_post = method == "POST" and attempt == 0
        return fault if first_post and path != "/api/conversations/" else None

    proxy = fault_proxy(policy)
    tracker = tracker_for(proxy.url, protocol, retry_after_cap=1.0 if fault.value > 60 else 30.0)
    async with tracker:
        expected = await track_workload(tracker, f"ra-{protocol}", 1, 2)
        assert await tracker.flush(timeout=30)
        stats = tracker.stats()
    assert_exactly_once_in_order(collector.db_path, expected, protocol)
    assert_stats_match(stats, proxy, 3)
    by_key: dict[str, list[float]] = defaultdict(list)
    for r in proxy.posts():
        by_key[r.key].append(r.started)
    gaps = [ts[1] - ts[0] for ts in by_key.values() if len(ts) > 1]
    assert gaps, "no request was retried"
    for gap in gaps:
        assert low <= gap <= high, f"retried after {gap:.2f} s; expected {low}-{high} s"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_outage_longer_than_budget_drops_counted_then_recovers(
    protocol: str, collector: LocalCollector, fault_proxy: Callable[[Policy], FaultProxy]
) -> None:
    budget = 1.5
    outage = {"on": True}

    def policy(method: str, path: str, key: str, attempt: int) -> Fault | None:
        return Fault(STATUS, 503) if method == "POST" and outage["on"] else None

    proxy = fault_proxy(policy)
    tracker = tracker_for(proxy.url, protocol, retry_budget=budget)
    async with tracker:
        lost = await track_workload(tracker, f"out-{protocol}", 3, 4)
        started = time.monotonic()
        flushed = await tracker.flush(timeout=budget + 10)
        waited = time.monotonic() - started
        # flush() tells the truth: nothing delivered, all of it dropped, nothing left pending
        assert not flushed
        assert (flushed.delivered, flushed.dropped, flushed.pending) == (
            0,
            {"retries_exhausted": 15},
            0,
        )
        during = tracker.stats()
        outage["on"] = False
        healed = await track_workload(tracker, f"after-{protocol}", 3, 4)
        assert await tracker.flush(timeout=30)
        after = tracker.stats()
    # the outage: nothing delivered, every event counted once, under one reason
    assert during["tracked"] == 15
    assert during["delivered"] == 0
    assert during["dropped"]["retries_exhausted"] == 15
    assert during["dropped_total"] == 15
    assert during["queued_events"] == 0
    # retries stopped inside the budget (plus one request timeout of slack for the flush)
    assert waited <= budget + REQUEST_TIMEOUT + 1.0
    assert_retries_within_budget(proxy, budget)
    failed = [r for r in proxy.posts() if r.fault is not None]
    assert during["retried"] == len(failed) - len({r.key for r in failed})
    # dropped means not stored, not "stored later"
    stored = transcript_markers(collector.db_path)
    assert not any(cid in stored for cid in lost)
    # the pipeline is not wedged: new events after the outage all arrive, once, in order
    assert after["delivered"] == 15
    assert after["dropped_total"] == 15
    assert_exactly_once_in_order(collector.db_path, healed, protocol)
    FIGURES[protocol]["outage"] = {
        "sent": 30,
        "dropped_retries_exhausted": 15,
        "delivered_after": 15,
        "flush_waited_s": round(waited, 2),
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_collector_sigkilled_and_restarted_mid_stream(
    protocol: str, collector_process: Callable[[], CollectorProcess]
) -> None:
    proc = await asyncio.to_thread(collector_process)  # starting it waits: not in the loop
    kills = size(1, 3)
    conversations = size(10, 40)
    per_conversation = size(30, 60)
    events = conversations * (1 + per_conversation)
    tracker = tracker_for(proc.url, protocol, retry_budget=30.0, request_timeout=2.0)
    killed_at: list[int] = []

    async def maybe_kill(round_no: int) -> None:
        # kill when the collector has stored a share of the workload, then restart it
        if len(killed_at) >= kills:
            await asyncio.sleep(0.005)
            return
        target = (len(killed_at) + 1) * events // (kills + 2)
        stored = await asyncio.to_thread(_stored_items, proc.db)
        if stored >= target:
            await asyncio.to_thread(proc.kill)
            killed_at.append(await asyncio.to_thread(_stored_items, proc.db))
            await asyncio.to_thread(proc.start)
        await asyncio.sleep(0.005)  # pace the producer so the kill lands mid-stream

    async with tracker:
        expected = await track_workload(
            tracker, f"kill-{protocol}", conversations, per_conversation, between_rounds=maybe_kill
        )
        # if the producer outran the collector, kill while the backlog is being delivered
        while len(killed_at) < kills:
            target = (len(killed_at) + 1) * events // (kills + 2)
            await asyncio.to_thread(
                wait_until, lambda t=target: _stored_items(proc.db) >= t, 60, f"{target} rows"
            )
            await asyncio.to_thread(proc.kill)
            killed_at.append(_stored_items(proc.db))
            await asyncio.to_thread(proc.start)
        assert await tracker.flush(timeout=90)
        stats = tracker.stats()
    assert proc.starts == kills + 1
    # each kill landed mid-stream, after progress since the previous restart
    assert all(0 < n < events for n in killed_at), killed_at
    assert killed_at == sorted(set(killed_at)), killed_at
    figures = assert_exactly_once_in_order(str(proc.db), expected, protocol)
    assert stats["tracked"] == events
    assert stats["delivered"] == events
    assert stats["dropped_total"] == 0, stats["dropped"]
    assert stats["retried"] >= kills  # the requests cut off by the kill were retried
    FIGURES[protocol]["sigkill"] = {
        **figures,
        "kills": kills,
        "stored_at_kill": killed_at,
        "retried": stats["retried"],
    }


def _stored_items(db: Any) -> int:
    try:
        return sum(len(v) for v in transcript_markers(db).values())
    except Exception:  # the file or its tables do not exist yet
        return 0


def test_report_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print what the fault tests measured (run last in this module)."""
    with capsys.disabled():
        for protocol, figures in sorted(FIGURES.items()):
            for name, values in figures.items():
                print(f"\n[reliability] faults {protocol}/{name}: {values}")
