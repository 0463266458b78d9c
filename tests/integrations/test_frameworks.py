"""LangChain and LlamaIndex capture: their own chat-model classes against the fake server,
with a tool call; model usage counted once whether or not the provider patch is on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from capture_support import (
    action_rows,
    async_tracker,
    collector,
    conversation_totals,
    expected_totals,
    sync_tracker,
    usage_rows,
)
from fake_model_server import FAKE_KEY, FakeModelServer

from agentsight_async import instrument

TARGET_SETS = [("langchain",), ("openai", "langchain")]


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


# --- LangChain --------------------------------------------------------------------------


def langchain_sync(base_url: str) -> list[Any]:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    weather = tool(get_weather)
    llm = ChatOpenAI(model="gpt-test", base_url=base_url, api_key=FAKE_KEY, max_retries=0)
    messages: list[Any] = [HumanMessage("What is the weather in Paris?")]
    first = llm.bind_tools([weather]).invoke(messages)
    messages.append(first)
    for call in first.tool_calls:
        messages.append(weather.invoke(call))
    final = llm.bind_tools([weather]).invoke(messages)
    streamed = "".join(str(chunk.content) for chunk in llm.stream("hi"))
    return [first.tool_calls, final.content, streamed]


async def langchain_async(base_url: str) -> list[Any]:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    weather = tool(get_weather)
    llm = await asyncio.to_thread(
        ChatOpenAI, model="gpt-test", base_url=base_url, api_key=FAKE_KEY, max_retries=0
    )
    messages: list[Any] = [HumanMessage("What is the weather in Paris?")]
    first = await llm.bind_tools([weather]).ainvoke(messages)
    messages.append(first)
    for call in first.tool_calls:
        messages.append(await weather.ainvoke(call))
    final = await llm.bind_tools([weather]).ainvoke(messages)
    streamed = "".join([str(chunk.content) async for chunk in llm.astream("hi")])
    return [first.tool_calls, final.content, streamed]


def check(server: Any, model_server: FakeModelServer, conversation_id: str) -> None:
    rows = usage_rows(server, conversation_id)
    assert len(rows) == 3  # two tool-calling turns and a stream: each counted once
    totals = conversation_totals(server, conversation_id)
    expected = expected_totals(model_server.reported)
    assert {k: totals[k] for k in expected} == expected
    actions = action_rows(server, conversation_id)
    assert [a["action_name"] for a in actions] == ["get_weather"]
    assert json.loads(actions[0]["tools_used"]) == {"city": "Paris"}
    assert actions[0]["response"] == "Sunny in Paris"
    assert actions[0]["duration_ms"] >= 0


@pytest.mark.parametrize("targets", TARGET_SETS, ids="+".join)
def test_langchain_sync(model_server: FakeModelServer, targets: tuple[str, ...]) -> None:
    pytest.importorskip("langchain_openai")
    with FakeModelServer() as plain:
        expected_seen = langchain_sync(plain.openai_url)
    with collector() as server:
        tracker = sync_tracker(server, "ingest")
        try:
            assert instrument(*targets, tracker=tracker) == list(targets)
            with tracker.conversation("lc-sync"):
                seen = langchain_sync(model_server.openai_url)
            assert tracker.flush(timeout=10)
        finally:
            tracker.close(timeout=5)
        assert seen == expected_seen
        check(server, model_server, "lc-sync")


@pytest.mark.parametrize("targets", TARGET_SETS, ids="+".join)
def test_langchain_async(model_server: FakeModelServer, targets: tuple[str, ...]) -> None:
    pytest.importorskip("langchain_openai")
    with collector() as server:

        async def main() -> list[Any]:
            async with async_tracker(server, "rest") as tracker:
                instrument(*targets, tracker=tracker)
                async with tracker.conversation("lc-async"):
                    seen = await langchain_async(model_server.openai_url)
                assert await tracker.flush(timeout=10)
            return seen

        seen = asyncio.run(main())
        assert seen[1] == "Answer 2."
        check(server, model_server, "lc-async")


# --- LlamaIndex ---------------------------------------------------------------------------


def llama_sync(base_url: str) -> list[Any]:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    weather = FunctionTool.from_defaults(fn=get_weather)
    llm = OpenAI(model="gpt-4o-mini", api_base=base_url, api_key=FAKE_KEY, max_retries=0)
    first = llm.chat_with_tools([weather], user_msg="What is the weather in Paris?")
    calls = llm.get_tool_calls_from_response(first, error_on_no_tool_call=False)
    outputs = [weather.call(**call.tool_kwargs) for call in calls]
    history = [
        ChatMessage(role="user", content="What is the weather in Paris?"),
        first.message,
        *[
            ChatMessage(
                role="tool",
                content=str(out.content),
                additional_kwargs={"tool_call_id": call.tool_id, "name": call.tool_name},
            )
            for call, out in zip(calls, outputs, strict=True)
        ],
    ]
    final = llm.chat(history)
    streamed = "".join(
        r.delta or "" for r in llm.stream_chat([ChatMessage(role="user", content="hi")])
    )
    return [[c.tool_kwargs for c in calls], str(final.message.content), streamed]


async def llama_async(base_url: str) -> list[Any]:
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    weather = FunctionTool.from_defaults(fn=get_weather)
    async with httpx.AsyncClient() as http:  # ours, so that it is closed at the end
        llm = await asyncio.to_thread(
            OpenAI,
            model="gpt-4o-mini",
            api_base=base_url,
            api_key=FAKE_KEY,
            max_retries=0,
            async_http_client=http,
        )
        first = await llm.achat_with_tools([weather], user_msg="What is the weather in Paris?")
        calls = llm.get_tool_calls_from_response(first, error_on_no_tool_call=False)
        outputs = [await weather.acall(**call.tool_kwargs) for call in calls]
    return [[c.tool_kwargs for c in calls], [str(o.content) for o in outputs]]


LLAMA_TARGETS = [("llama_index",), ("openai", "llama_index")]


@pytest.mark.parametrize("targets", LLAMA_TARGETS, ids="+".join)
def test_llama_index_sync(model_server: FakeModelServer, targets: tuple[str, ...]) -> None:
    pytest.importorskip("llama_index.llms.openai")
    with FakeModelServer() as plain:
        expected_seen = llama_sync(plain.openai_url)
    with collector() as server:
        tracker = sync_tracker(server, "ingest")
        try:
            assert instrument(*targets, tracker=tracker) == list(targets)
            with tracker.conversation("li-sync"):
                seen = llama_sync(model_server.openai_url)
            assert tracker.flush(timeout=10)
        finally:
            tracker.close(timeout=5)
        assert seen == expected_seen
        check(server, model_server, "li-sync")


@pytest.mark.parametrize("targets", LLAMA_TARGETS, ids="+".join)
def test_llama_index_async(model_server: FakeModelServer, targets: tuple[str, ...]) -> None:
    pytest.importorskip("llama_index.llms.openai")
    with collector() as server:

        async def main() -> list[Any]:
            async with async_tracker(server, "ingest") as tracker:
                instrument(*targets, tracker=tracker)
                async with tracker.conversation("li-async"):
                    seen = await llama_async(model_server.openai_url)
                assert await tracker.flush(timeout=10)
            return seen

        seen = asyncio.run(main())
        assert seen == [[{"city": "Paris"}], ["Sunny in Paris"]]
        rows = usage_rows(server, "li-async")
        assert len(rows) == 1
        totals = conversation_totals(server, "li-async")
        expected = expected_totals(model_server.reported)
        assert {k: totals[k] for k in expected} == expected
        assert [a["action_name"] for a in action_rows(server, "li-async")] == ["get_weather"]
