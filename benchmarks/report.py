# ruff: noqa: RUF001, E501  (multiplication signs and dashes are typography; long lines are Markdown rows)
"""Results: ``latest.json`` (everything), ``latest.md`` (tables, ratios, issue-6 goals)."""

from __future__ import annotations

import json
import math
import re
import textwrap
from pathlib import Path
from typing import Any

MIB = 1 << 20
#: "within the configured byte cap plus a small constant": the constant we allow.
MEMORY_SLACK = 16 * MIB


def _med(results: dict[str, Any], suite: str, sid: str, key: str) -> float | None:
    try:
        value = results["suites"][suite]["subjects"][sid]["summary"][key]["median"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, (int, float)) else None


def _ratio(results: dict[str, Any], suite: str, key: str) -> float | None:
    try:
        value = results["suites"][suite]["ratios"][key]
    except (KeyError, TypeError):
        return None
    if isinstance(value, dict):
        value = value.get("median")
    return value if isinstance(value, (int, float)) else None


def _goal(
    issue: int,
    gid: str,
    text: str,
    value: float | None,
    target: str,
    ok: bool | None,
    shown: str,
    was: str = "",
) -> dict[str, Any]:
    status = "not measured" if value is None or ok is None else ("met" if ok else "not met")
    return {
        "issue": issue,
        "id": gid,
        "goal": text,
        "value": value,
        "target": target,
        "status": status,
        "shown": shown if value is not None else "-",
        "was": was,
    }


def _both(values: list[float | None]) -> list[float] | None:
    """All of *values*, or None if any is missing (a goal over two scenarios needs both)."""
    if any(v is None for v in values):
        return None
    return [v for v in values if v is not None]


#: What issue 14 measured when it was filed (2026-12, medians of 3, same machine class):
#: the "before" column of its goal table.  Everything else in the tables is this run's.
ISSUE14_WAS = {
    "sdk_cpu_100conv": "15.6 µs",
    "sdk_cpu_10000conv_ratio": "2.65×",
    "collector_cpu": "35 / 49 µs",
    "e2e_vs_0044": "25× / 40×",
    "e2e_vs_014": "1.6× / 1.8×",
    "sync_busy_vs_0044": "0.61",
    "loop_lag_14": "p99 5.6–8.7 ms, max 30–95 ms",
    "rest_vs_0044": "0.71× / 1.26×",
    "memory_outage": "within the cap",
}


def goals14(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 14's goals, each with this run's value and met / not met / not measured."""
    out: list[dict[str, Any]] = []

    def add(
        gid: str, text: str, value: float | None, target: str, ok: bool | None, shown: str
    ) -> None:
        out.append(_goal(14, gid, text, value, target, ok, shown, ISSUE14_WAS.get(gid, "")))

    v = _med(results, "capacity", "ingest_100conv", "cpu_us_per_event")
    add(
        "sdk_cpu_100conv",
        "SDK CPU per delivered event, ingest, 100 conversations (discarding sink)",
        v,
        "≤ 5 µs",
        None if v is None else v <= 5,
        f"{v:.1f} µs" if v is not None else "",
    )
    r = _ratio(results, "capacity", "ingest_10000conv/ingest_100conv:cpu_us_per_event")
    v10k = _med(results, "capacity", "ingest_10000conv", "cpu_us_per_event")
    add(
        "sdk_cpu_10000conv_ratio",
        "Same at 10,000 conversations × 2 events, ÷ the 100-conversation figure",
        r,
        "≤ 1.5×",
        None if r is None else r <= 1.5,
        f"{r:.2f}× ({v10k:.1f} µs)" if r is not None and v10k is not None else "",
    )
    vs = _both(
        [
            _med(results, "collector", f"collector_{s}", "cpu_us_per_stored_event")
            for s in ("1conv", "1000conv")
        ]
    )
    add(
        "collector_cpu",
        "Collector CPU per stored event, 1 and 1,000 conversations",
        max(vs) if vs else None,
        "≤ 12 µs",
        None if vs is None else max(vs) <= 12,
        " / ".join(f"{x:.1f} µs" for x in vs) if vs else "",
    )
    for gid, peer, target, what in (
        ("e2e_vs_0044", "agentsight_0_0_44", 50.0, "0.0.44"),
        ("e2e_vs_014", "agentsight_0_1_4", 4.0, "the published 0.1.4 client"),
    ):
        rs = _both(
            [
                _ratio(results, "e2e", f"ours_ingest_{s}/{peer}_{s}:events_per_s")
                for s in ("1conv", "1000conv")
            ]
        )
        add(
            gid,
            f"End to end into the collector vs {what} (ingest, 1 and 1,000 conversations)",
            min(rs) if rs else None,
            f"≥ {target:g}×",
            None if rs is None else min(rs) >= target,
            " / ".join(f"{x:.1f}×" for x in rs) if rs else "",
        )
    r = _ratio(results, "percall", "ours_sync_collector/agentsight_0_0_44:mean_us")
    ours = _med(results, "percall", "ours_sync_collector", "mean_us")
    theirs = _med(results, "percall", "agentsight_0_0_44", "mean_us")
    calls = results["suites"].get("percall", {}).get("params", {}).get("busy_calls")
    add(
        "sync_busy_vs_0044",
        f"Sync facade mean per call with the flusher delivering to the collector "
        f"({calls or 50_000:,} calls), ours ÷ 0.0.44's `track_human_message`",
        r,
        "≤ 0.25",
        None if r is None else r <= 0.25,
        f"{r:.2f} ({ours:.2f} vs {theirs:.2f} µs)" if r is not None and ours and theirs else "",
    )
    p99 = _med(results, "lag", "ours", "p99_ms")
    mx = _med(results, "lag", "ours", "max_ms")
    add(
        "loop_lag_14",
        "Event-loop lag at 20,000 events/s against the collector",
        p99 if mx is not None else None,
        "p99 < 2 ms, max < 10 ms",
        None if p99 is None or mx is None else (p99 < 2.0 and mx < 10.0),
        f"p99 {p99:.2f} ms, max {mx:.1f} ms" if p99 is not None and mx is not None else "",
    )
    rs = _both(
        [
            _ratio(results, "e2e", f"ours_rest_{s}/agentsight_0_0_44_{s}:events_per_s")
            for s in ("1conv", "1000conv")
        ]
    )
    add(
        "rest_vs_0044",
        "REST vs 0.0.44, 1 and 1,000 conversations",
        rs[0] if rs else None,
        "≥ 1× / ≥ 2×",
        None if rs is None else (rs[0] >= 1 and rs[1] >= 2),
        " / ".join(f"{x:.2f}×" for x in rs) if rs else "",
    )
    g = _memory_goal(results)
    out.append(
        _goal(
            14,
            "memory_outage",
            "RSS during an outage (1,000,000 events in a full run) stays within the byte cap "
            "+ 16 MiB",
            g["value"],
            "unchanged",
            g["ok"],
            g["shown"],
            ISSUE14_WAS["memory_outage"],
        )
    )
    return out


def _memory_goal(results: dict[str, Any]) -> dict[str, Any]:
    growth = _med(results, "memory", "ours", "growth_peak")
    try:
        cap_b = results["suites"]["memory"]["params"]["max_queue_bytes"]
    except KeyError:
        cap_b = None
    ok = None if growth is None or cap_b is None else growth <= cap_b + MEMORY_SLACK
    shown = f"{growth / MIB:,.0f} MiB vs cap {cap_b / MIB:,.0f} MiB" if growth and cap_b else ""
    return {"value": growth, "ok": ok, "shown": shown}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 14's goals, then issue 6's (and issue 13's OTLP one)."""
    return goals14(results) + goals6(results)


def goals6(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6's goals (and issue 13's OTLP one), each with the measured value and
    met / not met / not measured."""
    out: list[dict[str, Any]] = []

    def add(
        gid: str, text: str, value: float | None, target: str, ok: bool | None, shown: str
    ) -> None:
        out.append(_goal(6, gid, text, value, target, ok, shown))

    r = _ratio(results, "percall", "agentsight_0_0_44/ours_sync:p50_us")
    add(
        "percall_vs_0044",
        "Per-call overhead (sync facade, p50) ≤ 1/4 of 0.0.44 `track_human_message`",
        r,
        "≥ 4×",
        None if r is None else r >= 4,
        f"{r:.2f}× cheaper" if r else "",
    )
    r = _ratio(results, "percall", "otel/ours_sync:p50_us")
    add(
        "percall_vs_otel",
        "Per-call overhead (sync facade, p50) ≤ 1/60 of an OTel span + event",
        r,
        "≥ 60×",
        None if r is None else r >= 60,
        f"{r:.1f}× cheaper" if r else "",
    )
    rs = [
        _ratio(results, "e2e", f"ours_ingest_{s}/agentsight_0_0_44_{s}:events_per_s")
        for s in ("1conv", "1000conv")
    ]
    r = min(rs) if all(x is not None for x in rs) else None  # type: ignore[type-var]
    add(
        "e2e_vs_0044",
        "End-to-end ingest into the local collector ≥ 50× 0.0.44 (1 and 1,000 conversations)",
        r,
        "≥ 50×",
        None if r is None else r >= 50,
        " / ".join(f"{x:.1f}×" for x in rs if x is not None),
    )
    cap = _med(results, "capacity", "ingest_100conv", "events_per_s")
    base = _med(results, "e2e", "agentsight_0_0_44_1conv", "events_per_s")
    r = cap / base if cap and base else None
    add(
        "capacity_vs_0044",
        "SDK delivery capacity (ingest, discarding sink) ≥ 100× 0.0.44 end to end",
        r,
        "≥ 100×",
        None if r is None else r >= 100,
        f"{r:.1f}× ({cap:,.0f} vs {base:,.0f} ev/s)" if r else "",
    )
    lag = _med(results, "lag", "ours", "p99_ms")
    add(
        "loop_lag",
        "Event-loop lag p99 < 2 ms while tracking 20,000 events/s",
        lag,
        "< 2 ms",
        None if lag is None else lag < 2.0,
        f"{lag:.2f} ms" if lag is not None else "",
    )
    for key, what in (
        ("track_us_per_event", "caller's cost"),
        ("cpu_us_per_event", "total CPU incl. delivery"),
    ):
        r = _ratio(results, "scaling", f"max/min:{key}")
        add(
            f"scaling_{key}",
            f"Cost per event flat within 20% from 1 to 10,000 conversations ({what})",
            r,
            "max/min ≤ 1.2",
            None if r is None else r <= 1.2,
            f"max/min = {r:.2f}" if r else "",
        )
    g = _memory_goal(results)
    add(
        "memory_cap",
        "Peak RSS growth during an outage ≤ byte cap + 16 MiB",
        g["value"],
        "≤ cap + 16 MiB",
        g["ok"],
        g["shown"],
    )
    r = _ratio(results, "otlp", "otel_otlp/ours_otlp:cpu_us_per_event")
    ours = _med(results, "otlp", "ours_otlp", "cpu_us_per_event")
    peer = _med(results, "otlp", "otel_otlp", "cpu_us_per_event")
    add(
        "otlp_vs_otel",
        "OTLP export ≥ 10× cheaper per item (CPU) than the OTel SDK's BatchSpanProcessor + "
        "OTLP/HTTP exporter doing the same work (issue 13)",
        r,
        "≥ 10×",
        None if r is None else r >= 10,
        f"{r:.1f}× ({ours:.1f} vs {peer:.1f} µs/item)" if r and ours and peer else "",
    )
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _cell(summary: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    if not summary or summary.get("median") is None:
        return "-"
    med, lo, hi = (summary[k] / scale for k in ("median", "min", "max"))
    if summary.get("n", 0) <= 1:
        return _fmt(med, digits)
    return f"{_fmt(med, digits)} ({_fmt(lo, digits)}–{_fmt(hi, digits)})"


def _count_cell(summary: dict[str, Any] | None) -> str:
    """A median (min-max) of counts or rates, as whole numbers with thousands separators."""
    if not summary or summary.get("median") is None:
        return "-"
    if summary.get("n", 0) <= 1:
        return f"{summary['median']:,.0f}"
    return f"{summary['median']:,.0f} ({summary['min']:,.0f}–{summary['max']:,.0f})"


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if not ratio or ratio.get("median") is None:
        return "-"
    return f"{ratio['median']:.2f}×" if ratio["median"] < 10 else f"{ratio['median']:.0f}×"


def _mark(g: dict[str, Any]) -> str:
    return {"met": "✅ met", "not met": "❌ not met"}.get(g["status"], "– " + g["status"])


def markdown(results: dict[str, Any]) -> str:
    s = results["suites"]
    m = results["machine"]
    lines = [
        "# agentsight-async benchmarks",
        "",
        f"{results['started']} · {'quick (CI check only, not numbers to quote)' if results['quick'] else 'full'} run · "
        f"{results['rounds']} round(s) · {m['cpus']} CPU(s) {m['cpu_model']} · Python {m['python']} · "
        f"{results['seconds']:.0f} s",
        "",
        f"SDK measured: commit {results.get('source', {}).get('commit')}"
        + (" + uncommitted changes" if results.get("source", {}).get("sdk_files_modified") else "")
        + f" (agentsight_async files sha256 {results.get('source', {}).get('sdk_sha256')}).",
        "",
        "Medians over rounds, (min–max) across rounds; ratios are paired within a round, "
        "then the median is taken. Every run is a fresh process; peers run in their own "
        "virtualenvs. Quote ratios, not absolute times.",
        "",
    ]
    skipped = {k: v for suite in s.values() for k, v in suite.get("skipped", {}).items()}
    if skipped:
        lines += ["**Skipped peers:** " + "; ".join(f"{k}: {v}" for k, v in skipped.items()), ""]

    lines += [
        "## Issue-14 goals",
        "",
        "| measure | at issue 14 | target | this run | status |",
        "|---|---|---|---|---|",
    ]
    for g in results["goals"]:
        if g.get("issue") == 14:
            lines.append(
                f"| {g['goal']} | {g['was'] or '-'} | {g['target']} | {g['shown']} | {_mark(g)} |"
            )
    lines += [
        "",
        '"at issue 14": what issue 14 reported when it was filed (its own measurement, not '
        "this run); every other cell is this run's. Ratios are paired within a round.",
        "",
        "## Issue-6 goals (earlier round)",
        "",
        "| goal | target | measured | status |",
        "|---|---|---|---|",
    ]
    for g in results["goals"]:
        if g.get("issue", 6) == 6:
            lines.append(f"| {g['goal']} | {g['target']} | {g['shown']} | {_mark(g)} |")
    lines.append("")

    if "percall" in s:
        pc = s["percall"]
        lines += [
            "## Per-call overhead of tracking one message (µs)",
            "",
            "| comparator | p50 | p99 | mean | × ours sync (p50) | × ours await (p50) |",
            "|---|---|---|---|---|---|",
        ]
        for sid, sub in pc["subjects"].items():
            sm = sub["summary"]
            if sid.startswith("ours"):
                r1 = r2 = "-"
            elif sid == "floor":
                r1 = _ratio_cell(pc["ratios"].get("ours_sync/floor:p50_us"))
                r2 = _ratio_cell(pc["ratios"].get("ours_async/floor:p50_us"))
                r1, r2 = f"ours is {r1}", f"ours is {r2}"
            else:
                r1 = _ratio_cell(pc["ratios"].get(f"{sid}/ours_sync:p50_us"))
                r2 = _ratio_cell(pc["ratios"].get(f"{sid}/ours_async:p50_us"))
            lines.append(
                f"| {sub['label']} | {_cell(sm.get('p50_us'))} | {_cell(sm.get('p99_us'))} | "
                f"{_cell(sm.get('mean_us'))} | {r1} | {r2} |"
            )
        busy = pc["subjects"].get("ours_sync_collector")
        busy_runs = [r for r in (busy or {}).get("runs", []) if r]
        calls = pc.get("params", {}).get("busy_calls")
        note = (
            'A peer\'s × is how many times our call it costs. "hot path only": the flusher '
            "is idle during the measurement; the other rows of ours upload to a discarding "
            'sink meanwhile (background cost included), except "flusher → collector", whose '
            "flusher delivers to the local collector (running in the orchestrating process, "
            "not the caller's)"
        )
        if calls:
            note += f" during {calls:,} timed calls"
        note += (
            ". Mean per call with the flusher busy, ours ÷ 0.0.44's: "
            + _ratio_cell(pc["ratios"].get("ours_sync_collector/agentsight_0_0_44:mean_us"))
            + " (discarding sink instead: "
            + _ratio_cell(pc["ratios"].get("ours_sync/agentsight_0_0_44:mean_us"))
            + ")."
        )
        if busy_runs:
            requests = ", ".join(str(r.get("requests_during", "?")) for r in busy_runs)
            stored = ", ".join(f"{r.get('delivered_verified', 0):,}" for r in busy_runs)
            note += (
                f" Requests the flusher started during the timed calls, per round: {requests}; "
                f"rows stored in the collector afterwards: {stored} (timed calls + warm-up)."
            )
        lines += ["", note, ""]

    if "e2e" in s:
        e = s["e2e"]
        lines += [
            "## End-to-end delivered events/s into the local collector",
            "",
            "| scenario | comparator | events/s | delivered / tracked | ours ingest ÷ this | ours rest ÷ this |",
            "|---|---|---|---|---|---|",
        ]
        for sid, sub in e["subjects"].items():
            scen = sid.rsplit("_", 1)[1]
            runs = [r for r in sub["runs"] if r]
            deliv = (
                (
                    f"{runs[-1]['delivered_verified']:,} / {runs[-1]['tracked']:,}"
                    + ("" if all(r["complete"] for r in runs) else " ⚠ incomplete")
                )
                if runs
                else "-"
            )
            if sid.startswith("ours"):
                r1 = r2 = "-"
            else:
                peer = sid.rsplit("_", 1)[0]
                r1 = _ratio_cell(e["ratios"].get(f"ours_ingest_{scen}/{peer}_{scen}:events_per_s"))
                r2 = _ratio_cell(e["ratios"].get(f"ours_rest_{scen}/{peer}_{scen}:events_per_s"))
            lines.append(
                f"| {scen} | {sub['label'].rsplit(',', 1)[0]} | "
                f"{_cell(sub['summary'].get('events_per_s'), digits=4)} | {deliv} | {r1} | {r2} |"
            )
        lines += [
            "",
            "Time from the first tracked event until the SDK's flush returns; the count "
            "is read back from the collector's SQLite storage (messages table).",
            "",
        ]
        lines += [f"- {n}" for n in e.get("notes", [])]

    if "capacity" in s:
        c = s["capacity"]
        lines += [
            "## SDK delivery capacity (sink that accepts and discards)",
            "",
            "| workload | events/s | CPU µs / event |",
            "|---|---|---|",
        ]
        for sub in c["subjects"].values():
            sm = sub["summary"]
            runs = [r for r in sub["runs"] if r]
            flag = "" if all(r.get("complete", True) for r in runs) else " ⚠ incomplete"
            lines.append(
                f"| {sub['label']}{flag} | {_cell(sm.get('events_per_s'), digits=4)} | "
                f"{_cell(sm.get('cpu_us_per_event'))} |"
            )
        lines += [
            "",
            "Tracking included: first event tracked → flush confirmed, one process; CPU is "
            "the process's (all threads) per tracked message. 10,000 conversations × 2 "
            "events ÷ 100 conversations, CPU per event: "
            + _ratio_cell(c["ratios"].get("ingest_10000conv/ingest_100conv:cpu_us_per_event"))
            + ".",
            "",
        ]
        lines += [f"- {n}" for n in c.get("notes", [])]
        if c.get("notes"):
            lines.append("")

    if "otlp" in s:
        ot = s["otlp"]
        lines += [
            "## OTLP export: the same agent turns as the OpenTelemetry SDK (discarding sink)",
            "",
            "| exporter | CPU µs / item | items/s | OTel SDK CPU ÷ this |",
            "|---|---|---|---|",
        ]
        for sid, sub in ot["subjects"].items():
            sm = sub["summary"]
            r = (
                "-"
                if sid == "otel_otlp"
                else _ratio_cell(ot["ratios"].get(f"otel_otlp/{sid}:cpu_us_per_event"))
            )
            lines.append(
                f"| {sub['label']} | {_cell(sm.get('cpu_us_per_event'))} | "
                f"{_cell(sm.get('events_per_s'), digits=4)} | {r} |"
            )
        lines += [
            "",
            "Each turn is four items - the user's message, a tool call, a model call with its "
            "usage, the agent's reply - with content captured; first item → every span "
            "delivered (our flush / the SDK's force_flush), one process, all threads' CPU.",
            "",
        ]

    if "lag" in s:
        lg = s["lag"]
        lines += [
            "## Event-loop lag (probe sleeping 1 ms), ms",
            "",
            "| run | p50 | p99 | max | events/s achieved |",
            "|---|---|---|---|---|",
        ]
        for sub in lg["subjects"].values():
            sm = sub["summary"]
            lines.append(
                f"| {sub['label']} | {_cell(sm.get('p50_ms'))} | {_cell(sm.get('p99_ms'))} | "
                f"{_cell(sm.get('max_ms'))} | {_cell(sm.get('achieved_rate'), digits=4)} |"
            )
        lines.append("")

    if "memory" in s:
        mm = s["memory"]
        sub = mm["subjects"].get("ours")
        runs = [r for r in (sub or {}).get("runs", []) if r]
        if runs:
            r = runs[-1]
            lines += [
                "## Memory during a collector outage",
                "",
                f"{r['events']:,} events tracked while the endpoint refuses connections; "
                f"`max_queue_bytes` = {r['cap_bytes'] / MIB:.0f} MiB.",
                "",
                "| | value |",
                "|---|---|",
                f"| RSS growth at peak | {r['growth_peak'] / MIB:,.1f} MiB ({r['growth_peak'] / r['cap_bytes']:.2f}× the cap) |",
                f"| queued at peak (SDK's estimate) | {r['queued_events_peak']:,} events, {r['queued_bytes_peak'] / MIB:,.1f} MiB |",
                f"| dropped as queue_full | {r['dropped_queue_full']:,} |",
                f"| RSS growth after recovery and drain | {r['growth_after_recovery'] / MIB:,.1f} MiB |",
                f"| recovery: drained in | {r['recovery_s']:.1f} s ({r['delivered']:,} delivered) |",
                "",
            ]

    if "scaling" in s:
        sc = s["scaling"]
        lines += [
            "## Cost per event as concurrent conversations grow",
            "",
            "| conversations | caller µs / event | total CPU µs / event (incl. delivery) |",
            "|---|---|---|",
        ]
        for sub in sc["subjects"].values():
            sm = sub["summary"]
            lines.append(
                f"| {sub['label'].split()[0]} | {_cell(sm.get('track_us_per_event'))} | "
                f"{_cell(sm.get('cpu_us_per_event'))} |"
            )
        lines.append("")

    if "push" in s:
        lines += [
            "## push: a recording uploaded to the local collector",
            "",
            "| run | events/s | push s | delivered (verified in storage) |",
            "|---|---|---|---|",
        ]
        for sub in s["push"]["subjects"].values():
            sm = sub["summary"]
            lines.append(
                f"| {sub['label']} | {_count_cell(sm.get('events_per_s'))} | "
                f"{_cell(sm.get('push_s'))} | {_count_cell(sm.get('delivered_verified'))} |"
            )
        lines += [
            "",
            "`agentsight-async push` in a fresh process, into a fresh collector (uvicorn + "
            "SQLite, in the orchestrating process); the recording was written by the SDK's "
            "`sqlite:///` exporter.",
            "",
        ]

    if "collector" in s:
        co = s["collector"]
        lines += [
            "## The collector's CPU per stored event (its own process)",
            "",
            "| load | CPU µs / stored event | stored | events/s end to end |",
            "|---|---|---|---|",
        ]
        for sub in co["subjects"].values():
            sm = sub["summary"]
            runs = [r for r in sub["runs"] if r]
            flag = "" if all(r.get("complete") for r in runs) else " ⚠ incomplete"
            lines.append(
                f"| {sub['label']} | {_cell(sm.get('cpu_us_per_stored_event'))} | "
                f"{_count_cell(sm.get('stored'))}{flag} | {_count_cell(sm.get('events_per_s'))} |"
            )
        lines += [
            "",
            "`python -m agentsight_collector` (with an API key) on a fresh SQLite file, in its "
            "own process; our SDK sends the load over `ingest` from another one. The "
            "collector's CPU (all threads, psutil) is read once it answers `/healthz` and "
            "again once the SDK's "
            "flush returned and the messages table holds every event sent.",
            "",
        ]
        lines += [f"- {n}" for n in co.get("notes", [])]
        if co.get("notes"):
            lines.append("")

    versions = {k: v for k, v in results.get("peer_versions", {}).items() if v}
    if versions:
        lines += [
            "Peer versions: "
            + "; ".join(
                f"{k}: " + ", ".join(f"{n} {ver}" for n, ver in v.items())
                for k, v in versions.items()
            ),
            "",
        ]
    return "\n".join(lines) + "\n"


# --- the generated parts of docs/performance.md and README.md ---------------------------------
REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"
README = REPO / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
_NOTICE = (
    "<!-- Generated by `python -m benchmarks.run` (a full run) from "
    "benchmarks/results/latest.json; edits here are overwritten. -->"
)


def docs_block(results: dict[str, Any]) -> str:
    """latest.md as a section of docs/performance.md: no title, headings one level down."""
    body = markdown(results).splitlines()[1:]  # without "# agentsight-async benchmarks"
    out = ["#" + line if line.startswith("#") else line for line in body]
    return "\n".join(out).strip("\n")


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return "; ".join(parts[:-1]) + "; and " + parts[-1]


def readme_block(results: dict[str, Any]) -> str:
    """A few headline figures from *results*, one sentence each only when measured."""
    m = results["machine"]
    parts: list[str] = []
    p50 = _med(results, "percall", "ours_sync", "p50_us")
    cheaper = [
        f"{r:.1f}× less than {what}"
        for peer, what in (
            ("agentsight_0_0_44", "the original SDK's (0.0.44) in-memory `track_human_message`"),
            ("otel", "an OpenTelemetry span"),
        )
        if (r := _ratio(results, "percall", f"{peer}/ours_sync:p50_us")) is not None
    ]
    if p50 is not None:
        parts.append(
            f"tracking a message through the sync facade costs {p50:.2f} µs at the median"
            + (", " + " and ".join(cheaper) if cheaper else "")
        )
    r = _ratio(results, "percall", "ours_sync_collector/agentsight_0_0_44:mean_us")
    calls = results["suites"].get("percall", {}).get("params", {}).get("busy_calls") or 0
    if r is not None:
        parts.append(
            f"with the flusher delivering to the local collector, its mean over "
            f"{calls:,} calls is {r:.2f}× the original SDK's"
        )
    v = _med(results, "capacity", "ingest_100conv", "cpu_us_per_event")
    if v is not None:
        parts.append(
            f"the SDK spends {v:.1f} µs of CPU per event it delivers over `ingest` "
            f"(100 conversations)"
        )
    vs = _both(
        [
            _med(results, "collector", f"collector_{x}", "cpu_us_per_stored_event")
            for x in ("1conv", "1000conv")
        ]
    )
    if vs:
        parts.append(
            f"the local collector {vs[0]:.0f} / {vs[1]:.0f} µs of CPU per event it stores "
            f"(1 / 1,000 conversations)"
        )
    against = []
    for peer, what in (
        ("agentsight_0_0_44", "the original SDK's events/s"),
        ("agentsight_0_1_4", "0.1.4's"),
    ):
        rs = _both(
            [
                _ratio(results, "e2e", f"ours_ingest_{x}/{peer}_{x}:events_per_s")
                for x in ("1conv", "1000conv")
            ]
        )
        if rs:
            against.append(f"{rs[0]:.1f}× / {rs[1]:.1f}× {what}")
    if against:
        parts.append(
            f"batched ingest delivers {' and '.join(against)} into the same local collector "
            f"(1 / 1,000 conversations)"
        )
    g = _memory_goal(results)
    events = results["suites"].get("memory", {}).get("params", {}).get("events")
    if g["ok"] is not None and events:
        within = "stay within" if g["ok"] else "exceed"
        parts.append(f"{events:,} events during an outage {within} the queue cap ({g['shown']})")
    met = [g for g in results.get("goals", goals(results)) if g.get("issue") == 14]
    done = sum(g["status"] == "met" for g in met)
    head = (
        f"Measured side by side in one {'quick' if results['quick'] else 'full'} run "
        f"({results['started']}, "
        f"{m['cpus']} CPU(s), `nox -s bench`; method and every number in "
        f"[docs/performance.md](docs/performance.md)): "
    )
    text = head + (_join(parts) if parts else "no headline figure was measured") + ". "
    text += f"Issue-14 goals met: {done} of {len(met)}."
    return textwrap.fill(text, width=88, break_long_words=False, break_on_hyphens=False)


def splice(text: str, block: str) -> str:
    """*text* with what lies between :data:`BEGIN` and :data:`END` replaced by *block*."""
    # Each marker alone on its line: the prose may quote them.
    match = re.search(rf"^{re.escape(BEGIN)}$.*?^{re.escape(END)}$", text, re.M | re.S)
    if match is None:
        raise ValueError(f"markers {BEGIN} ... {END} (each on its own line) not found")
    new = f"{BEGIN}\n{_NOTICE}\n\n{block.strip()}\n\n{END}"
    return text[: match.start()] + new + text[match.end() :]


def update_docs(results: dict[str, Any], docs: Path = DOCS, readme: Path = README) -> list[Path]:
    """Rewrite the generated blocks of docs/performance.md and README.md from *results*."""
    if "goals" not in results:
        results["goals"] = goals(results)
    written = []
    for path, block in ((docs, docs_block(results)), (readme, readme_block(results))):
        text = path.read_text(encoding="utf-8")
        new = splice(text, block)
        if new != text:
            path.write_text(new, encoding="utf-8")
        written.append(path)
    return written


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results["goals"] = goals(results)
    jpath = out_dir / "latest.json"
    jpath.write_text(json.dumps(results, indent=1, sort_keys=False, default=str) + "\n")
    mpath = out_dir / "latest.md"
    mpath.write_text(markdown(results))
    return jpath, mpath


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.report [--docs] [results.json]``: the tables again from a
    saved run (latest.md beside it), and with ``--docs`` the generated blocks of
    docs/performance.md and README.md (refused for a quick run)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    ap.add_argument("json", nargs="?", type=Path, default=REPO / "benchmarks/results/latest.json")
    ap.add_argument("--docs", action="store_true", help="also rewrite the docs' blocks")
    args = ap.parse_args(argv)
    results = json.loads(args.json.read_text(encoding="utf-8"))
    if args.docs and results.get("quick"):
        ap.error("a quick run's numbers do not go into the docs")
    results["goals"] = goals(results)
    md = args.json.with_name("latest.md")
    md.write_text(markdown(results))
    print(f"wrote {md}")
    if args.docs:
        for path in update_docs(results):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
