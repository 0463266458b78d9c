"""Shared by the capture tests: trackers into a local collector, and reading it back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from agentsight_async import AsyncConversationTracker, ConversationTracker
from agentsight_collector import LocalCollector


@contextmanager
def collector() -> Iterator[LocalCollector]:
    with LocalCollector() as server:
        yield server


def sync_tracker(server: LocalCollector, protocol: str) -> ConversationTracker:
    return ConversationTracker(
        api_key=server.api_key, endpoint=server.url, protocol=protocol, flush_interval=0.05
    )


def async_tracker(server: LocalCollector, protocol: str) -> AsyncConversationTracker:
    return AsyncConversationTracker(
        api_key=server.api_key, endpoint=server.url, protocol=protocol, flush_interval=0.05
    )


def usage_rows(server: LocalCollector, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's token_usage rows, oldest first (every column)."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Api-Key {server.api_key}"}
    ) as http:
        page = http.get("/api/conversations/", params={"conversation_id": conversation_id}).json()
    assert page["count"] == 1, page
    pk = page["results"][0]["id"]
    conn = sqlite3.connect(server.db_path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM token_usage WHERE conversation = ? ORDER BY ts_us, id", (pk,)
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()


def conversation_totals(server: LocalCollector, conversation_id: str) -> dict[str, int]:
    """``token_usage`` of the conversation as the collector's read API sums it."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Api-Key {server.api_key}"}
    ) as http:
        page = http.get("/api/conversations/", params={"conversation_id": conversation_id}).json()
        detail = http.get(f"/api/conversations/{page['results'][0]['id']}/").json()
    return dict(detail["token_usage"])


def expected_totals(reported: list[Any]) -> dict[str, int]:
    """What the collector should sum for these reported usages (input = uncached)."""
    return {
        "input_tokens": sum(r.prompt - r.cache_read - r.cache_write for r in reported),
        "output_tokens": sum(r.completion for r in reported),
        "cache_read_tokens": sum(r.cache_read for r in reported),
        "cache_write_tokens": sum(r.cache_write for r in reported),
        "embedding_tokens": sum(r.embedding for r in reported),
        "total_tokens": sum(r.prompt + r.completion for r in reported),
    }


def action_rows(server: LocalCollector, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's action rows that are not token usage, oldest first."""
    conn = sqlite3.connect(server.db_path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT a.* FROM actions a JOIN conversations c ON c.id = a.conversation "
            "WHERE c.conversation_id = ? AND a.is_token_usage = 0 ORDER BY a.ts_us, a.id",
            (conversation_id,),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()
