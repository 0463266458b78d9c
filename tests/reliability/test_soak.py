"""Soak: many events across many conversations through the collector, RSS sampled.

Full run (``nox -s reliability``): 1,000,000 events across 10,000 conversations.
CI: 50,000 events across 1,000 conversations.  The collector runs as a separate
process, so the RSS sampled here is the SDK's process alone.

Asserts: nothing lost (rows counted in the collector's SQLite), nothing
dropped, and memory flat after warm-up - RSS growth over the second half of
the run stays under a fixed bound.  The RSS curve is written to
``build/reliability/soak-rss-<mode>.csv`` and a summary line is printed.
"""

from __future__ import annotations

import asyncio
import csv
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from reliability_support import FULL, KEY, CollectorProcess, count_rows, rss_mib, size

from agentsight_async import AsyncConversationTracker

#: RSS may grow at most this much between the middle and the end of the run.
SECOND_HALF_GROWTH_MIB = 30.0
OUT_DIR = Path(__file__).resolve().parents[2] / "build" / "reliability"


async def test_soak_memory_flat_nothing_lost(
    collector_process: Callable[[], CollectorProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    total = size(50_000, 1_000_000)
    conversations = size(1_000, 10_000)
    proc = await asyncio.to_thread(collector_process)  # starting it waits: not in the loop
    assert proc.proc is not None
    server = psutil.Process(proc.proc.pid)
    tracker = AsyncConversationTracker(
        api_key=KEY,
        endpoint=proc.url,
        flush_interval=0.2,
        max_queue_events=20_000,
        backpressure_timeout=120.0,  # `await track_*` waits for room instead of dropping
        retry_budget=60.0,
        _env_file=None,
    )
    progress = {"tracked": 0}
    samples: list[tuple[float, int, float, float]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while True:
            samples.append(
                (
                    time.monotonic() - started,
                    progress["tracked"],
                    rss_mib(),
                    server.memory_info().rss / (1 << 20),
                )
            )
            if stop.wait(0.1):
                return

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    filler = "lorem ipsum dolor sit amet " * 3
    try:
        async with tracker:
            for i in range(total):
                cid = f"soak-{i % conversations}"
                if (i // conversations) % 2 == 0:
                    await tracker.track_human_message(f"q{i} {filler}", conversation_id=cid)
                else:
                    await tracker.track_agent_message(f"a{i} {filler}", conversation_id=cid)
                if i % 500 == 499:
                    progress["tracked"] = i + 1
                    await asyncio.sleep(0)  # an agent does other work between messages
            progress["tracked"] = total
            assert await tracker.flush(timeout=600)
            stats = tracker.stats()
    finally:
        stop.set()
        sampler.join(5)
    elapsed = time.monotonic() - started

    # nothing lost, nothing dropped, nothing duplicated
    assert stats["tracked"] == total
    assert stats["delivered"] == total
    assert stats["dropped_total"] == 0, stats["dropped"]
    assert count_rows(proc.db, "messages") == total
    assert count_rows(proc.db, "conversations") == conversations

    # memory flat after warm-up: compare the middle of the run with everything after it
    tracking = [s for s in samples if s[1] < total] or samples
    half = [s for s in tracking if s[1] >= total // 2]
    assert len(half) >= 3, "too few RSS samples in the second half"
    at_half = half[0][2]
    peak_after = max(s[2] for s in half)
    growth = peak_after - at_half
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"soak-rss-{'full' if FULL else 'ci'}.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "events_tracked", "sdk_rss_mib", "collector_rss_mib"])
        writer.writerows((round(t, 2), n, round(r, 1), round(c, 1)) for t, n, r, c in samples)
    start_rss = samples[0][2]
    end_rss = samples[-1][2]
    with capsys.disabled():
        print(
            f"\n[reliability] soak: {total:,} events / {conversations:,} conversations in "
            f"{elapsed:.1f} s ({total / elapsed:,.0f} ev/s); delivered {stats['delivered']:,}, "
            f"rows {total:,}, dropped 0; SDK RSS start {start_rss:.1f} MiB, at half "
            f"{at_half:.1f}, peak after half {peak_after:.1f} (growth {growth:+.1f} MiB), "
            f"end {end_rss:.1f}; collector RSS peak {max(s[3] for s in samples):.1f} MiB; "
            f"{len(samples)} samples -> {out}"
        )
    assert growth < SECOND_HALF_GROWTH_MIB, f"RSS grew {growth:.1f} MiB in the second half"
