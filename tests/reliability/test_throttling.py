"""Throttling is a budget: a fleet of worker processes settles under the allowance.

AgentSight throttles ingest per agent, and every worker process of a
deployment spends from the same allowance.  Here eight real processes track
into one collector that emulates it (``serve --ingest-rate``): they must lose
nothing, duplicate nothing, and the requests they send - accepted and refused
together - must stay within a small margin of what the allowance let through.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from reliability_support import KEY, count_rows, size

from agentsight_collector import LocalCollector

WORKERS = 8
#: Ingest batches a minute for the whole fleet (it shares one key).
RATE_PER_MINUTE = 120.0


def _worker(url: str, n: int, events: int) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import json, time
        from agentsight_async import ConversationTracker
        t = ConversationTracker(api_key={KEY!r}, endpoint={url!r}, flush_interval=0.2,
                                request_timeout=5, retry_budget=30, _env_file=None)
        for i in range({events}):
            t.track_human_message(f"w{n}-{{i:05d}}", conversation_id="worker-{n}")
            if i % 10 == 9:
                time.sleep(0.05)  # a busy agent: events keep coming for a few seconds
        result = t.flush(timeout=180)
        stats = t.stats()
        t.close()
        print(json.dumps({{"flushed": bool(result), "pending": result.pending,
                           "dropped": stats["dropped_total"], "requests": stats["requests"],
                           "throttled": stats["throttled"], "delivered": stats["delivered"]}}))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_eight_workers_settle_under_the_ingest_allowance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = size(400, 2000)
    db = tmp_path / "throttled.db"
    with LocalCollector(db, api_keys=[KEY], ingest_rate=RATE_PER_MINUTE) as collector:
        allowance = collector.ingest_allowance
        assert allowance is not None
        started = time.monotonic()
        workers = [_worker(collector.url, n, events) for n in range(WORKERS)]
        reports = []
        for proc in workers:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-2000:]
            reports.append(json.loads(out.strip().splitlines()[-1]))
        elapsed = time.monotonic() - started
        accepted, refused = allowance.accepted, allowance.refused
    # nothing lost, nothing duplicated, every worker's order kept
    assert all(r["flushed"] and r["pending"] == 0 and r["dropped"] == 0 for r in reports), reports
    assert count_rows(db, "messages") == WORKERS * events
    assert sum(r["delivered"] for r in reports) == WORKERS * events
    # the requests sent stay within a small margin of what the allowance let through:
    # most of what the fleet sends gets in; refusals are a fraction, not a storm
    sent = accepted + refused
    allowed = allowance.capacity + allowance.rate * elapsed
    assert accepted <= allowed
    assert refused <= max(WORKERS, accepted // 2), (accepted, refused)
    with capsys.disabled():
        print(
            f"\n[reliability] throttling: {WORKERS} workers x {events} events into "
            f"{RATE_PER_MINUTE:.0f} batches/min; {elapsed:.1f} s; requests {sent} "
            f"(accepted {accepted}, refused 429 {refused}); the allowance over the run "
            f"{allowed:.0f}; throttled per worker {[r['throttled'] for r in reports]}"
        )
