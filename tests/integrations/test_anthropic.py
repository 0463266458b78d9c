"""Anthropic capture: the real ``anthropic`` SDK against the fake server, into a local collector."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("anthropic")

import anthropic_scenario as scenario
from capture_support import (
    async_tracker,
    collector,
    conversation_totals,
    expected_totals,
    sync_tracker,
    usage_rows,
)
from fake_model_server import FakeModelServer

from agentsight_async import instrument


def check(rows: list[dict[str, object]], server: FakeModelServer, totals: dict[str, int]) -> None:
    expected = expected_totals(server.reported)
    assert {k: totals[k] for k in expected} == expected
    assert len(rows) == scenario.CALLS
    assert sorted(str(r["error"]) for r in rows if r["error"]) == [
        "BadRequestError (400)",
        "RateLimitError (429)",
    ]
    assert sum(1 for r in rows if r["streamed"] == 1) == 3
    assert all(r["system"] == "anthropic" for r in rows)
    assert sum(int(r["reasoning_tokens"]) for r in rows) == sum(
        r.reasoning for r in server.reported
    )
    ok = [r for r in rows if not r["error"]]
    assert {r["model"] for r in ok} == {"claude-test-20260101", "flaky-429-20260101"}
    assert all((r["duration_ms"] or 0) > 0 for r in rows)


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_sync_calls_are_captured_and_unchanged(
    model_server: FakeModelServer, protocol: str
) -> None:
    with FakeModelServer() as plain:
        expected_seen = scenario.run_sync(plain.anthropic_url)
    with collector() as server:
        tracker = sync_tracker(server, protocol)
        try:
            instrument("anthropic", tracker=tracker)
            with tracker.conversation("chat-anthropic"):
                seen = scenario.run_sync(model_server.anthropic_url)
                usage = tracker.get_token_usage()
            assert tracker.flush(timeout=10)
        finally:
            tracker.close(timeout=5)
        rows = usage_rows(server, "chat-anthropic")
        totals = conversation_totals(server, "chat-anthropic")
    assert seen == expected_seen
    check(rows, model_server, totals)
    assert usage["cache_write_tokens"] == sum(r.cache_write for r in model_server.reported)


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_async_calls_are_captured_and_unchanged(
    model_server: FakeModelServer, protocol: str
) -> None:
    with FakeModelServer() as plain:
        expected_seen = asyncio.run(scenario.run_async(plain.anthropic_url))

    with collector() as server:

        async def main() -> list[object]:
            async with async_tracker(server, protocol) as tracker:
                instrument("anthropic", tracker=tracker)
                async with tracker.conversation("chat-anthropic-async"):
                    seen = await scenario.run_async(model_server.anthropic_url)
                assert await tracker.flush(timeout=10)
            return seen

        seen = asyncio.run(main())
        rows = usage_rows(server, "chat-anthropic-async")
        totals = conversation_totals(server, "chat-anthropic-async")
    assert seen == expected_seen
    check(rows, model_server, totals)
