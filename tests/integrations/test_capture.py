"""How a capture finds its tracker, @tool/@task, settings, and never breaking the call."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fake_model_server import FAKE_KEY, FakeModelServer

import agentsight_async
from agentsight_async import (
    AsyncConversationTracker,
    ConfigurationError,
    ConversationTracker,
    instrument,
    task,
    tool,
    uninstrument,
)
from agentsight_async.integrations import _capture, instrumented
from agentsight_async.testing import recorded

openai = pytest.importorskip("openai")
MESSAGES = [{"role": "user", "content": "hi"}]


def memory_tracker(name: str) -> ConversationTracker:
    return ConversationTracker(endpoint=f"memory://{name}")


def token_events(url: str) -> list[dict[str, object]]:
    return [e for e in recorded(url) if e["kind"] == "token_usage"]


_open_clients: list[object] = []


def client(server: FakeModelServer) -> object:
    """A new OpenAI client; the test's teardown closes it (its sockets are not left to gc)."""
    made = openai.OpenAI(base_url=server.openai_url, api_key=FAKE_KEY, max_retries=0)
    _open_clients.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open_clients:
        _open_clients.pop().close()  # type: ignore[attr-defined]


def test_instrument_is_idempotent_and_reversible() -> None:
    original = openai.resources.chat.completions.Completions.create
    assert instrument("openai") == ["openai"]
    patched = openai.resources.chat.completions.Completions.create
    assert patched is not original
    assert instrument("openai", "openai") == ["openai"]
    assert openai.resources.chat.completions.Completions.create is patched  # never stacked
    uninstrument()
    assert openai.resources.chat.completions.Completions.create is original
    assert instrumented() == []


def test_instrument_without_targets_installs_what_is_there_and_rejects_unknown_names() -> None:
    done = instrument()
    assert "openai" in done
    with pytest.raises(ValueError, match="unknown target"):
        instrument("cohere")


def test_importing_the_sdk_imports_no_instrumented_library() -> None:
    code = (
        "import sys, agentsight_async\n"
        "libs = ('openai', 'anthropic', 'langchain_core', 'llama_index')\n"
        "print([m for m in sys.modules if m.split('.')[0] in libs])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_call_goes_to_the_one_tracker_with_a_conversation(model_server: FakeModelServer) -> None:
    gc.collect()
    busy, idle = memory_tracker("route-busy"), memory_tracker("route-idle")
    try:
        instrument("openai")
        with busy.conversation("mine"):
            client(model_server).chat.completions.create(model="m", messages=MESSAGES)
        # nowhere to go: not recorded, counted
        client(model_server).chat.completions.create(model="m", messages=MESSAGES)
        assert busy.flush(timeout=5)
        assert len(token_events("memory://route-busy")) == 1
        assert token_events("memory://route-idle") == []
        assert busy.stats()["capture"]["unattributed"] == 1
    finally:
        busy.close(timeout=5)
        idle.close(timeout=5)


def test_two_trackers_with_a_conversation_is_ambiguous(
    model_server: FakeModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    gc.collect()
    first, second = memory_tracker("amb-1"), memory_tracker("amb-2")
    try:
        instrument("openai")
        with first.conversation("a"), second.conversation("b"), caplog.at_level(logging.WARNING):
            for _ in range(2):
                client(model_server).chat.completions.create(model="m", messages=MESSAGES)
        assert first.stats()["capture"]["ambiguous"] == 2
        assert sum("more than one tracker" in r.getMessage() for r in caplog.records) == 1
        # tracker= settles it
        instrument("openai", tracker=second)
        with first.conversation("a"), second.conversation("b"):
            client(model_server).chat.completions.create(model="m", messages=MESSAGES)
        assert second.flush(timeout=5)
        assert [e["conversation_id"] for e in token_events("memory://amb-2")] == ["b"]
        assert token_events("memory://amb-1") == []
    finally:
        first.close(timeout=5)
        second.close(timeout=5)


def test_concurrent_tasks_each_capture_into_their_own_conversation(
    model_server: FakeModelServer,
) -> None:
    async def main() -> list[str]:
        aclient = openai.AsyncOpenAI(base_url=model_server.openai_url, api_key=FAKE_KEY)
        async with AsyncConversationTracker(endpoint="memory://tasks") as tracker:
            instrument("openai", tracker=tracker)

            async def chat(cid: str) -> None:
                async with tracker.conversation(cid):
                    await aclient.chat.completions.create(model="m", messages=MESSAGES)

            await asyncio.gather(*(chat(f"task-{i}") for i in range(5)))
            await tracker.flush(timeout=5)
        await aclient.close()
        return sorted(str(e["conversation_id"]) for e in token_events("memory://tasks"))

    assert asyncio.run(main()) == [f"task-{i}" for i in range(5)]


def test_capture_failures_never_reach_the_call(
    model_server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = memory_tracker("broken")
    try:
        instrument("openai", tracker=tracker)

        def broken(**kwargs: object) -> None:
            raise RuntimeError("capture bug")

        monkeypatch.setattr(tracker, "record_model_call", broken)
        with tracker.conversation("c"):
            answer = client(model_server).chat.completions.create(model="m", messages=MESSAGES)
            chunks = list(
                client(model_server).chat.completions.create(
                    model="m", messages=MESSAGES, stream=True
                )
            )
        assert answer.choices[0].message.content == "Answer 1."
        assert all(c.choices for c in chunks)  # the usage chunk we asked for stayed hidden
        assert tracker.stats()["capture"]["failed"] == 2
    finally:
        tracker.close(timeout=5)


def test_an_abandoned_stream_is_recorded_once_without_usage(model_server: FakeModelServer) -> None:
    tracker = memory_tracker("abandoned")
    try:
        instrument("openai", tracker=tracker)
        with tracker.conversation("c"):
            stream = client(model_server).chat.completions.create(
                model="m", messages=MESSAGES, stream=True
            )
            next(iter(stream))
            stream.close()
            del stream
            gc.collect()
        assert tracker.flush(timeout=5)
        (event,) = token_events("memory://abandoned")
        data = event["data"]
        assert isinstance(data, dict)
        assert data["streamed"] is True
        assert data["usage_reported"] is False
    finally:
        tracker.close(timeout=5)


def test_tool_and_task_decorators_time_calls_and_reraise() -> None:
    tracker = memory_tracker("tools")

    @tool
    def lookup(order_id: str, verbose: bool = False) -> dict[str, str]:
        return {"order": order_id}

    @tool(name="refund", capture_args=False, capture_result=False)
    def refund(order_id: str) -> str:
        raise KeyError(order_id)

    @task
    async def plan(goal: str) -> str:
        await asyncio.sleep(0.01)
        return f"plan for {goal}"

    class Agent:
        @tracker.tool
        def search(self, query: str) -> str:
            return query.upper()

    try:
        assert lookup.__name__ == "lookup"
        with tracker.conversation("c"):
            assert lookup("A1") == {"order": "A1"}
            with pytest.raises(KeyError) as raised:
                refund("secret-order")
            assert asyncio.run(plan("trip")) == "plan for trip"
            assert Agent().search("q") == "Q"
        lookup("outside")  # no conversation: runs, unrecorded
        assert tracker.flush(timeout=5)
        actions = [e["data"] for e in recorded("memory://tools") if e["kind"] == "action"]
        names = [a["action_name"] for a in actions]  # type: ignore[index]
        assert names == ["lookup", "refund", "plan", "search"]
        first, failed, planned, method = actions
        assert first["tools_used"] == {"order_id": "A1"}  # type: ignore[index]
        assert first["response"] == '{"order": "A1"}'  # type: ignore[index]
        assert "tools_used" not in failed  # type: ignore[operator]
        assert failed["error_msg"] == "KeyError"  # type: ignore[index]
        assert "secret-order" not in str(failed)
        assert raised.type is KeyError
        assert planned["duration_ms"] >= 10  # type: ignore[index,operator]
        assert planned["metadata"] == {"kind": "task"}  # type: ignore[index]
        assert method["tools_used"] == {"query": "q"}  # type: ignore[index]
    finally:
        tracker.close(timeout=5)


def test_decorating_a_generator_is_refused() -> None:
    with pytest.raises(TypeError, match="generator"):

        @tool
        def numbers() -> object:
            yield 1


def test_agentsight_instrument_applies_on_first_use(
    monkeypatch: pytest.MonkeyPatch, model_server: FakeModelServer
) -> None:
    monkeypatch.setenv("AGENTSIGHT_INSTRUMENT", "openai")
    lazy = ConversationTracker(lazy=True, endpoint="memory://env")
    try:
        assert instrumented() == []  # nothing until the tracker is used
        assert lazy.enabled
        assert instrumented() == ["openai"]
        with lazy.conversation("c"):
            client(model_server).chat.completions.create(model="m", messages=MESSAGES)
        assert lazy.flush(timeout=5)
        assert len(token_events("memory://env")) == 1
    finally:
        lazy.close(timeout=5)


def test_token_handler_type_llamaindex_installs_the_llama_index_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("llama_index.core")
    monkeypatch.setenv("AGENTSIGHT_TOKEN_HANDLER_TYPE", "llamaindex")
    tracker = AsyncConversationTracker(endpoint="memory://handler")
    assert "llama_index" in instrumented()
    del tracker


@pytest.mark.parametrize("value", ["cohere", "openai,nope"])
def test_invalid_instrument_settings_raise(value: str) -> None:
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_INSTRUMENT"):
        AsyncConversationTracker(endpoint="memory://bad", instrument=value)


def test_public_names() -> None:
    for name in ("instrument", "uninstrument", "tool", "task"):
        assert name in agentsight_async.__all__
    assert _capture.counters()["recorded"] == 0
