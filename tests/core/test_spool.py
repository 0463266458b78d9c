"""The durable spool: events committed before a crash are delivered exactly once later."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from agentsight_async import AsyncConversationTracker
from agentsight_async.testing import DUMMY_API_KEY
from agentsight_collector import LocalCollector, Storage

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def spooled_rows(spool_dir: Path) -> int:
    total = 0
    for path in spool_dir.glob("spool-*.db"):
        db = sqlite3.connect(path)
        try:
            total += db.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            db.close()
    return total


def stored_contents(db: Path, conversation_id: str) -> list[str]:
    with Storage(db) as storage:
        found = storage.list_conversations(conversation_id=conversation_id)["results"]
        if not found:
            return []
        conv = storage.get_conversation(found[0]["id"])
        assert conv is not None
        return [i["content"] for i in conv["transcript"] if i["type"] == "message"]


def start_tracker_process(
    endpoint: str, spool: Path, protocol: str, count: int
) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import sys, time
        from agentsight_async import ConversationTracker
        t = ConversationTracker(api_key={DUMMY_API_KEY!r}, endpoint={endpoint!r},
                                protocol={protocol!r}, spool_dir={str(spool)!r},
                                flush_interval=0.05, batch_size=20, request_timeout=1,
                                retry_budget=3600)
        for i in range({count}):
            t.track_human_message(f"m{{i:05d}}", conversation_id="spooled")
            if i % 50 == 0:
                time.sleep(0.01)
        print("tracked", flush=True)
        time.sleep(3600)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in time: {predicate.__doc__}")
        time.sleep(0.02)


async def deliver_from_spool(url: str, spool: Path, protocol: str) -> dict:  # type: ignore[type-arg]
    async with AsyncConversationTracker(
        api_key=DUMMY_API_KEY,
        api_endpoint=url,
        protocol=protocol,
        spool_dir=str(spool),
        flush_interval=0.05,
    ) as tracker:
        # the replay happens when the flusher starts; flush() counts replayed events
        assert await tracker.flush(timeout=30), tracker.stats()
        return tracker.stats()


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_killed_during_an_outage_then_replayed_exactly_once(tmp_path: Path, protocol: str) -> None:
    spool = tmp_path / "spool"
    count = 300
    # The first process can reach nothing: everything it tracks waits in the spool.
    proc = start_tracker_process("http://127.0.0.1:9", spool, protocol, count)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "tracked"
        wait_for(lambda: spooled_rows(spool) == count)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)  # waits, and closes the pipes
    with LocalCollector(tmp_path / "c.db", api_keys=[DUMMY_API_KEY]) as collector:
        stats = asyncio.run(deliver_from_spool(collector.url, spool, protocol))
        got = stored_contents(tmp_path / "c.db", "spooled")
    assert got == [f"m{i:05d}" for i in range(count)]
    assert stats["delivered"] == count
    assert spooled_rows(spool) == 0
    assert list(spool.glob("spool-*.db")) == []  # emptied files are removed


def test_killed_mid_stream_delivers_the_rest_without_duplicates(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    count = 2000
    db = tmp_path / "c.db"
    with LocalCollector(db, api_keys=[DUMMY_API_KEY]) as collector:
        proc = start_tracker_process(collector.url, spool, "ingest", count)
        try:
            # kill it while deliveries are under way
            wait_for(lambda: len(stored_contents(db, "spooled")) > 100)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)  # waits, and closes the pipes
        before = stored_contents(db, "spooled")
        in_spool = spooled_rows(spool)
        assert in_spool > 0 or len(before) == count
        asyncio.run(deliver_from_spool(collector.url, spool, "ingest"))
        after = stored_contents(db, "spooled")
    # every event that was stored or spooled at the kill is stored now, once, in order
    assert len(after) >= len(before) + 1 or in_spool == 0
    assert Counter(after).most_common(1)[0][1] == 1
    assert after == sorted(after)
    assert set(before) <= set(after)


async def test_close_keeps_undelivered_events_for_the_next_start(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with AsyncConversationTracker(
        api_key=DUMMY_API_KEY,
        api_endpoint="http://127.0.0.1:9",
        spool_dir=str(spool),
        request_timeout=0.2,
        shutdown_timeout=0.3,
    ) as tracker:
        for i in range(5):
            await tracker.track_human_message(f"k{i}", conversation_id="kept")
    assert tracker.stats()["dropped"]["shutdown"] == 0
    assert spooled_rows(spool) == 5
    with LocalCollector(tmp_path / "c.db", api_keys=[DUMMY_API_KEY]) as collector:
        await deliver_from_spool(collector.url, spool, "ingest")
    assert stored_contents(tmp_path / "c.db", "kept") == [f"k{i}" for i in range(5)]


async def test_a_corrupt_spool_file_is_set_aside_and_reported(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "spool-1-dead.db").write_bytes(b"this is not a database" * 100)
    url = "memory://spool-corrupt"
    async with AsyncConversationTracker(api_endpoint=url, spool_dir=str(spool)) as tracker:
        await tracker.track_human_message("still works", conversation_id="c")
        assert await tracker.flush(timeout=10)
        stats = tracker.stats()
    assert stats["delivered"] == 1
    assert "set aside" in (stats["last_error"] or "")
    assert list(spool.glob("spool-1-dead.db.corrupt-*"))


async def test_replay_beyond_the_byte_cap_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    async with AsyncConversationTracker(
        api_key=DUMMY_API_KEY,
        api_endpoint="http://127.0.0.1:9",
        spool_dir=str(spool),
        request_timeout=0.2,
        shutdown_timeout=0.3,
    ) as tracker:
        for i in range(40):
            await tracker.track_human_message(f"r{i}", conversation_id="cap")
    assert spooled_rows(spool) == 40
    url = "memory://spool-cap"
    # room for a few events only: the rest of the replay is dropped, and leaves the spool
    async with AsyncConversationTracker(
        api_endpoint=url, spool_dir=str(spool), max_queue_bytes=4096, batch_bytes=1024
    ) as small:
        assert await small.flush(timeout=10)
        stats = small.stats()
    assert 0 < stats["delivered"] < 40
    assert stats["dropped"]["queue_full"] == 40 - stats["delivered"]
    assert spooled_rows(spool) == 0
    from agentsight_async.testing import recorded

    kept = [r["data"]["content"] for r in recorded(url, "cap")]
    assert kept == [f"r{i}" for i in range(len(kept))]  # the oldest, in order
