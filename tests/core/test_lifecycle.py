"""Lifecycle: the sync facade across threads and loops, exit flush, fork, close twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agentsight_async import (
    AsyncConversationTracker,
    ConversationTracker,
    NoDataToSendException,
    conversation_tracker,
)
from agentsight_async.testing import recorded


def test_blocking_calls_inside_a_running_event_loop(memory_singleton: str) -> None:
    async def handler() -> dict:
        # A FastAPI/Jupyter style call of the blocking API from inside a loop.
        conversation_tracker.get_or_create_conversation(conversation_id="in-loop")
        conversation_tracker.track_human_message("from a coroutine")
        return conversation_tracker.send_tracked_data(timeout=10)

    result = asyncio.run(handler())
    assert [i["type"] for i in result["items"]] == ["conversation", "question"]
    assert all(i["success"] for i in result["items"])


def test_blocking_call_from_the_trackers_own_loop_thread_raises(memory_singleton: str) -> None:
    conversation_tracker.track_human_message("warm up", conversation_id="x")
    loop = conversation_tracker._pipeline.loop
    assert loop is not None
    outcome: list[BaseException | bool] = []

    def on_loop() -> None:
        try:
            outcome.append(conversation_tracker.flush(timeout=1))
        except RuntimeError as exc:
            outcome.append(exc)

    done = threading.Event()
    loop.call_soon_threadsafe(lambda: (on_loop(), done.set()))
    assert done.wait(10)
    assert isinstance(outcome[0], RuntimeError)
    assert "own event-loop thread" in str(outcome[0])
    assert conversation_tracker.flush(timeout=10)  # still healthy afterwards


def test_async_tracker_survives_several_asyncio_runs() -> None:
    url = "memory://several-runs"
    tracker = AsyncConversationTracker(api_endpoint=url, flush_interval=30)

    async def step(i: int) -> None:
        await tracker.track_human_message(f"run {i}", conversation_id="runs")

    for i in range(3):
        asyncio.run(step(i))  # each run ends with the events still queued
    asyncio.run(tracker.flush(timeout=10))
    assert [r["data"]["content"] for r in recorded(url, "runs")] == ["run 0", "run 1", "run 2"]
    asyncio.run(tracker.aclose())
    asyncio.run(tracker.aclose())  # twice is safe
    assert tracker.stats()["dropped_total"] == 0


async def test_aclose_twice_and_use_after_close_is_safe() -> None:
    tracker = AsyncConversationTracker(api_endpoint="memory://close-twice")
    await tracker.track_human_message("one", conversation_id="c")
    await tracker.aclose()
    await tracker.aclose()
    assert tracker.stats()["delivered"] == 1


def test_send_tracked_data_reports_only_new_items(memory_singleton: str) -> None:
    conversation_tracker.get_or_create_conversation(conversation_id="twice")
    conversation_tracker.track_human_message("first")
    first = conversation_tracker.send_tracked_data()
    conversation_tracker.track_agent_message("second")
    second = conversation_tracker.send_tracked_data()
    assert [i["type"] for i in first["items"]] == ["conversation", "question"]
    assert [i["type"] for i in second["items"]] == ["answer"]
    assert second["items"][0]["index"] == 0
    with pytest.raises(NoDataToSendException):
        conversation_tracker.send_tracked_data()


def test_send_tracked_data_includes_items_the_background_already_sent(
    memory_singleton: str,
) -> None:
    conversation_tracker.get_or_create_conversation(conversation_id="bg")
    conversation_tracker.track_human_message("early")
    assert conversation_tracker.flush(timeout=10)  # delivered before the call below
    assert len(recorded(memory_singleton, "bg")) == 2
    result = conversation_tracker.send_tracked_data()
    assert [i["type"] for i in result["items"]] == ["conversation", "question"]


def _run_script(code: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def test_sync_facade_flushes_at_interpreter_exit(tmp_path: Path) -> None:
    db = tmp_path / "exit.db"
    out = _run_script(
        f"""
        from agentsight_async import ConversationTracker
        t = ConversationTracker(endpoint="sqlite:///{db}", flush_interval=3600)
        for i in range(50):
            t.track_human_message(f"m{{i}}", conversation_id="exit")
        # no flush, no close: the exit hook must deliver within shutdown_timeout
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    from agentsight_collector import Storage

    with Storage(db) as storage:
        pk = storage.list_conversations(conversation_id="exit")["results"][0]["id"]
        got = [i["content"] for i in storage.get_conversation(pk)["transcript"]]
    assert got == [f"m{i}" for i in range(50)]


def test_async_tracker_left_open_is_flushed_at_exit(tmp_path: Path) -> None:
    db = tmp_path / "exit-async.db"
    out = _run_script(
        f"""
        import asyncio
        from agentsight_async import AsyncConversationTracker
        tracker = AsyncConversationTracker(api_endpoint="sqlite:///{db}", flush_interval=3600)
        async def main():
            for i in range(10):
                await tracker.track_human_message(f"a{{i}}", conversation_id="exit-async")
        asyncio.run(main())   # the loop is gone; the events are still queued
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    from agentsight_collector import Storage

    with Storage(db) as storage:
        pk = storage.list_conversations(conversation_id="exit-async")["results"][0]["id"]
        assert len(storage.get_conversation(pk)["transcript"]) == 10


def test_exit_reports_what_could_not_be_sent(tmp_path: Path) -> None:
    out = _run_script(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        from agentsight_async import ConversationTracker
        from agentsight_async.testing import DUMMY_API_KEY
        t = ConversationTracker(api_key=DUMMY_API_KEY, endpoint="http://127.0.0.1:9",
                                shutdown_timeout=1, flush_interval=3600, request_timeout=0.5)
        for i in range(5):
            t.track_human_message(f"lost {i}", conversation_id="unreachable")
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "not delivered" in out.stderr
    assert "shutdown" in out.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_starts_fresh_and_does_not_resend_parent_events(tmp_path: Path) -> None:
    out = _run_script(
        """
        import os
        from agentsight_async import ConversationTracker
        from agentsight_async.testing import recorded
        t = ConversationTracker(endpoint="memory://fork", flush_interval=3600)
        t.track_human_message("parent", conversation_id="p")
        pid = os.fork()
        if pid == 0:
            assert t.stats()["queued_events"] == 0, t.stats()
            t.track_human_message("child", conversation_id="c")
            assert t.flush(timeout=10)
            contents = [r["data"]["content"] for r in recorded("memory://fork")]
            os._exit(0 if contents == ["child"] else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert t.flush(timeout=10)
        assert [r["data"]["content"] for r in recorded("memory://fork")] == ["parent"]
        print("ok")
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_on_error_gets_background_failures_and_never_raises_into_user_code() -> None:
    seen: list[tuple[str, dict]] = []

    def on_error(exc: BaseException, context: dict) -> None:
        seen.append((type(exc).__name__, context))
        raise ValueError("a broken callback must not break the pipeline")

    from agentsight_async.testing import DUMMY_API_KEY

    tracker = ConversationTracker(
        api_key=DUMMY_API_KEY,
        endpoint="http://127.0.0.1:9",
        on_error=on_error,
        retry_budget=0.3,
        request_timeout=0.2,
    )
    tracker.track_human_message("will fail", conversation_id="err")
    result = tracker.flush(timeout=10)
    assert not result  # nothing was delivered ...
    assert result.dropped == {"retries_exhausted": 1}  # ... it was dropped, not left pending
    assert result.pending == 0
    stats = tracker.stats()
    assert stats["dropped"]["retries_exhausted"] == 1
    assert stats["last_error"]
    assert seen
    tracker.close()


def test_configure_switches_endpoint_and_keeps_queued_events(tmp_path: Path) -> None:
    first, second = "memory://configure-a", "memory://configure-b"
    tracker = ConversationTracker(endpoint=first, flush_interval=3600)
    tracker.track_human_message("before", conversation_id="cfg")
    assert tracker.flush(timeout=10)
    tracker.track_human_message("queued across the switch", conversation_id="cfg")
    tracker.configure(endpoint=second)
    tracker.track_human_message("after", conversation_id="cfg")
    assert tracker.flush(timeout=10)
    assert [r["data"]["content"] for r in recorded(first)] == ["before"]
    assert [r["data"]["content"] for r in recorded(second)] == [
        "queued across the switch",
        "after",
    ]
    with pytest.raises(Exception, match="AGENTSIGHT_API_ENDPOINT"):
        tracker.configure(endpoint="ftp://nowhere")
    tracker.close()


async def test_await_waits_for_room_while_sync_calls_drop() -> None:
    url = "memory://backpressure"
    async with AsyncConversationTracker(
        api_endpoint=url, max_queue_events=20, batch_size=10, backpressure_timeout=10
    ) as tracker:
        for i in range(500):
            await tracker.track_human_message(f"b{i}", conversation_id="bp")
        assert await tracker.flush(timeout=10)
        waited = tracker.stats()
    assert waited["dropped_total"] == 0
    assert [r["data"]["content"] for r in recorded(url, "bp")] == [f"b{i}" for i in range(500)]

    sync = ConversationTracker(
        endpoint="memory://backpressure-sync",
        max_queue_events=20,
        flush_interval=3600,
        batch_size=1000,
    )
    for i in range(50):
        sync.track_human_message(f"s{i}", conversation_id="bp")
    assert sync.stats()["dropped"]["queue_full"] == 30  # never blocks: drops and counts
    sync.close()


def test_a_forked_child_takes_ids_of_its_own() -> None:
    """Workers forked after import (gunicorn, Celery) must not repeat the parent's ids:
    a server that dedupes by event id would drop one of two colliding events."""
    import os

    from agentsight_async._queues import Queues
    from agentsight_async._stats import Stats

    def seqs(n: int) -> list[int]:
        q = Queues(Stats(), batch_size=500, batch_bytes=1 << 20, max_events=10**6,
                   max_bytes=1 << 30)
        for i in range(n):
            q.push("question", "c", i, "x", 161)
        with q.locked():
            pass
        return [ev.seq for ev in q.convs["c"].pending]

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, as text, then exit at once
        try:
            os.write(write, ",".join(map(str, seqs(50))).encode())
        finally:
            os._exit(0)
    os.close(write)
    parent = seqs(50)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = [int(s) for s in b"".join(chunks).decode().split(",")]
    assert len(child) == 50
    assert not set(parent) & set(child)
