"""OpenAI capture: the real ``openai`` SDK against the fake server, into a local collector."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("openai")

import openai_scenario as scenario
from capture_support import (
    collector,
    conversation_totals,
    expected_totals,
    sync_tracker,
    usage_rows,
)
from fake_model_server import FakeModelServer

from agentsight_async import instrument, uninstrument

PROTOCOLS = ["ingest", "rest"]


def unpatched_sync() -> list[object]:
    uninstrument()
    with FakeModelServer() as server:
        return scenario.run_sync(server.openai_url)


def check_rows(rows: list[dict[str, object]], server: FakeModelServer, streamed: int) -> None:
    assert len(rows) == scenario.CALLS
    failed = [r for r in rows if r["error"]]
    assert sorted(str(r["error"]) for r in failed) == [
        "BadRequestError (400)",
        "RateLimitError (429)",
    ]
    assert all(r["total_tokens"] == 0 for r in failed)
    assert all(r["system"] == "openai" for r in rows)
    assert all((r["duration_ms"] or 0) > 0 for r in rows)
    assert sum(1 for r in rows if r["streamed"] == 1) == streamed
    assert sum(int(r["reasoning_tokens"]) for r in rows) == sum(
        r.reasoning for r in server.reported
    )
    chat = [r for r in rows if r["operation"] == "chat" and not r["error"]]
    # the model that answered is billed; the one asked for is kept beside it
    assert {r["model"] for r in chat} == {"gpt-test-2026-01-01", "flaky-429-2026-01-01"}
    assert {r["requested_model"] for r in chat} == {"gpt-test", "flaky-429"}
    assert {r["operation"] for r in rows} == {"chat", "embeddings", "text_completion"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_calls_are_captured_and_unchanged(
    model_server: FakeModelServer, protocol: str
) -> None:
    expected_seen = unpatched_sync()
    with collector() as server:
        tracker = sync_tracker(server, protocol)
        try:
            assert instrument("openai", tracker=tracker) == ["openai"]
            tracker.get_or_create_conversation("chat-openai")
            seen = scenario.run_sync(model_server.openai_url)
            usage = tracker.get_token_usage()
            assert tracker.flush(timeout=10)
        finally:
            tracker.close(timeout=5)
        rows = usage_rows(server, "chat-openai")
        totals = conversation_totals(server, "chat-openai")
    assert seen == expected_seen  # same objects, same chunks in the same order, same errors
    expected = expected_totals(model_server.reported)
    assert {k: totals[k] for k in expected} == expected
    check_rows(rows, model_server, streamed=4)
    assert usage["total_tokens"] == expected["total_tokens"]
    assert usage["cache_read_tokens"] == expected["cache_read_tokens"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_async_calls_are_captured_and_unchanged(
    model_server: FakeModelServer, protocol: str
) -> None:
    with FakeModelServer() as plain:
        expected_seen = asyncio.run(scenario.run_async(plain.openai_url))

    async def main(server_url: str, key: str) -> tuple[list[object], dict[str, int]]:
        async with async_tracker_for(server_url, key, protocol) as tracker:
            instrument("openai", tracker=tracker)
            async with tracker.conversation("chat-openai-async"):
                seen = await scenario.run_async(model_server.openai_url)
                usage = await tracker.get_token_usage()
            assert await tracker.flush(timeout=10)
        return seen, usage

    with collector() as server:
        seen, usage = asyncio.run(main(server.url, server.api_key))
        rows = usage_rows(server, "chat-openai-async")
        totals = conversation_totals(server, "chat-openai-async")
    assert seen == expected_seen
    expected = expected_totals(model_server.reported)
    assert {k: totals[k] for k in expected} == expected
    check_rows(rows, model_server, streamed=4)
    assert usage["prompt_tokens"] == sum(r.prompt for r in model_server.reported)


def async_tracker_for(url: str, key: str, protocol: str):  # type: ignore[no-untyped-def]
    from agentsight_async import AsyncConversationTracker

    return AsyncConversationTracker(
        api_key=key, endpoint=url, protocol=protocol, flush_interval=0.05
    )
