"""No misattribution, ever: an event goes to its own task's or thread's conversation,
to an explicit ``conversation_id=``, or to a default only while that is unambiguous.

Each test here failed before the rule existed (the event landed in another
task's, thread's or tracker's conversation, silently).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest

from agentsight_async import (
    AsyncConversationTracker,
    ConversationTracker,
    MissingConversationIdException,
    NoDataToSendException,
    conversation_tracker,
)
from agentsight_async.testing import recorded


def by_conversation(url: str) -> dict[str, list[str]]:
    got: dict[str, list[str]] = defaultdict(list)
    for rec in recorded(url):
        if rec["type"] in ("question", "answer"):
            got[rec["conversation_id"]].append(rec["data"]["content"])
    return dict(got)


async def test_a_sibling_task_never_lands_in_another_tasks_conversation() -> None:
    url = "memory://attr-tasks"
    async with AsyncConversationTracker(api_endpoint=url) as tracker:
        alice_ready = asyncio.Event()

        async def alice() -> None:
            await tracker.get_or_create_conversation("alice")
            await tracker.track_human_message("alice: hi")
            alice_ready.set()

        async def bob() -> BaseException | None:
            await alice_ready.wait()
            try:
                await tracker.track_human_message("bob: hello")  # bob set no conversation
            except MissingConversationIdException as exc:
                return exc
            return None

        _, error = await asyncio.gather(alice(), bob())
        assert await tracker.flush(timeout=10)
    assert isinstance(error, MissingConversationIdException)
    assert "conversation_id=" in str(error)
    assert "tracker.conversation" in str(error)
    assert by_conversation(url) == {"alice": ["alice: hi"]}


def test_a_thread_never_lands_in_another_threads_conversation(memory_singleton: str) -> None:
    alice_done = threading.Event()
    errors: list[BaseException] = []

    def alice() -> None:
        conversation_tracker.get_or_create_conversation("alice")
        conversation_tracker.track_human_message("alice: hi")
        alice_done.set()

    def bob() -> None:
        alice_done.wait(10)
        try:
            conversation_tracker.track_human_message("bob: hello")
        except MissingConversationIdException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=alice), threading.Thread(target=bob)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert conversation_tracker.flush(timeout=10)
    assert len(errors) == 1
    assert "thread" in str(errors[0])
    assert by_conversation(memory_singleton) == {"alice": ["alice: hi"]}


def test_trackers_never_see_each_others_conversations(memory_singleton: str) -> None:
    conversation_tracker.get_or_create_conversation("singleton-chat")  # the script's default
    other_url = "memory://attr-other-tracker"

    async def main() -> BaseException | None:
        async with AsyncConversationTracker(api_endpoint=other_url) as tracker:
            try:
                await tracker.track_human_message("which conversation?")
            except MissingConversationIdException as exc:
                return exc
        return None

    assert isinstance(asyncio.run(main()), MissingConversationIdException)
    assert by_conversation(other_url) == {}


def test_a_script_that_sets_its_conversation_once_tracks_from_worker_threads(
    memory_singleton: str,
) -> None:
    conversation_tracker.get_or_create_conversation("script-chat")

    def worker(n: int) -> None:
        for i in range(5):
            conversation_tracker.track_human_message(f"w{n}-{i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    result = conversation_tracker.send_tracked_data(timeout=10)
    assert result["summary"]["questions"] == 20
    got = by_conversation(memory_singleton)
    assert list(got) == ["script-chat"]
    assert sorted(got["script-chat"]) == sorted(f"w{n}-{i}" for n in range(4) for i in range(5))


def test_a_sequential_script_follows_its_latest_conversation(memory_singleton: str) -> None:
    conversation_tracker.get_or_create_conversation("first")
    conversation_tracker.track_human_message("one")
    conversation_tracker.get_or_create_conversation("second")
    t = threading.Thread(target=lambda: conversation_tracker.track_human_message("two"))
    t.start()
    t.join(10)
    assert conversation_tracker.flush(timeout=10)
    assert by_conversation(memory_singleton) == {"first": ["one"], "second": ["two"]}


def test_a_generated_conversation_is_announced_and_reported(
    memory_singleton: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentsight_async"):
        conversation_tracker.track_human_message("before any conversation")
    result = conversation_tracker.send_tracked_data(timeout=10)
    cid = result["conversation_id"]
    assert cid.startswith("conv_")
    assert result["conversation_generated"] is True
    assert any(cid in r.getMessage() for r in caplog.records)
    assert by_conversation(memory_singleton) == {cid: ["before any conversation"]}
    with pytest.raises(NoDataToSendException):
        conversation_tracker.send_tracked_data(timeout=10)  # nothing new: as the original


def test_a_named_conversation_is_not_reported_as_generated(memory_singleton: str) -> None:
    conversation_tracker.get_or_create_conversation("named")
    conversation_tracker.track_human_message("hi")
    result = conversation_tracker.send_tracked_data(timeout=10)
    assert result["conversation_id"] == "named"
    assert "conversation_generated" not in result


def test_a_worker_thread_with_nothing_set_anywhere_raises(memory_singleton: str) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            conversation_tracker.track_human_message("lost?")
        except MissingConversationIdException as exc:
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert len(errors) == 1
    assert conversation_tracker.stats()["tracked"] == 0


def test_configured_default_is_used_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "memory://attr-configured"
    tracker = ConversationTracker(endpoint=url, conversation_id="configured-chat")
    try:

        async def in_task() -> None:
            tracker.track_human_message("from a task")

        asyncio.run(in_task())
        t = threading.Thread(target=lambda: tracker.track_human_message("from a thread"))
        t.start()
        t.join(10)
        assert tracker.flush(timeout=10)
    finally:
        tracker.close()
    got = by_conversation(url)
    assert list(got) == ["configured-chat"]
    assert sorted(got["configured-chat"]) == ["from a task", "from a thread"]


# --- the FastAPI pattern: the documented sync singleton inside request handlers -----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_fastapi_handlers_never_mix_conversations(memory_singleton: str) -> None:
    fastapi = pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    app = fastapi.FastAPI()

    @app.post("/async/{chat_id}")
    async def async_chat(chat_id: str, text: str) -> dict[str, Any]:
        conversation_tracker.get_or_create_conversation(chat_id)
        conversation_tracker.track_human_message(f"{chat_id}: {text}")
        await asyncio.sleep(0.01)  # other requests run meanwhile
        conversation_tracker.track_agent_message(f"{chat_id}: answer")
        return {"ok": True}

    @app.post("/sync/{chat_id}")
    def sync_chat(chat_id: str, text: str) -> dict[str, Any]:  # runs in a worker thread
        conversation_tracker.get_or_create_conversation(chat_id)
        conversation_tracker.track_human_message(f"{chat_id}: {text}")
        time.sleep(0.01)
        conversation_tracker.track_agent_message(f"{chat_id}: answer")
        return {"ok": True}

    @app.post("/forgot")
    async def forgot(text: str) -> dict[str, Any]:
        try:
            conversation_tracker.track_human_message(f"nobody: {text}")
        except MissingConversationIdException:
            return {"ok": False}
        return {"ok": True}

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)

        async def clients() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                calls = [
                    client.post(f"/{kind}/{kind}-{n}", params={"text": "hi"})
                    for n in range(20)
                    for kind in ("async", "sync")
                ]
                calls += [client.post("/forgot", params={"text": "x"}) for _ in range(5)]
                return list(await asyncio.gather(*calls))

        responses = asyncio.run(clients())
    finally:
        server.should_exit = True
        thread.join(10)
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["ok"] for r in responses[-5:]] == [False] * 5
    assert conversation_tracker.flush(timeout=10)
    got = by_conversation(memory_singleton)
    assert set(got) == {f"{kind}-{n}" for n in range(20) for kind in ("async", "sync")}
    for cid, contents in got.items():
        assert contents == [f"{cid}: hi", f"{cid}: answer"], cid
