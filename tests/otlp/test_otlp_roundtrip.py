"""The same conversations over ``otlp`` and over ``ingest`` read back as the same transcripts.

The very same events (same ids, same times) go through the ingest exporter to
one collector and through the otlp exporter (content capture on) to another;
the read API must then answer the same conversations, item for item - only
row ids (and the download URLs built from them) may differ.  A tracker-level
run checks the same through the public API, times aside.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from otlp_support import API_KEY, EventFactory

from agentsight_async import AsyncConversationTracker
from agentsight_async._config import Settings
from agentsight_async._events import Batch, ConversationBatch, Event
from agentsight_async._exporters import create_exporter
from agentsight_async._stats import Stats

pytest.importorskip("starlette")
from agentsight_collector import LocalCollector

AUTH = {"Authorization": f"Api-Key {API_KEY}"}


def conversations(events: EventFactory) -> dict[str, list[Event]]:
    png = [{"filename": "receipt.png", "mime_type": "image/png", "data": "aGVsbG8gd29ybGQ="}]
    raw = [{"filename": "notes.txt", "mime_type": "text/plain", "data": b"plain bytes"}]
    return {
        "full": [
            events.conversation(
                "full",
                customer_id="cust-1",
                customer_ip_address="203.0.113.9",
                device="mobile",
                source="web",
                language="en",
                name="Support chat",
                metadata={"plan": "pro", "big": 2**70},
            ),
            events.question("Where is my order?", cid="full", metadata={"channel": "web"}),
            events.action(
                "lookup_order",
                cid="full",
                started_at="2026-11-18T10:00:00+00:00",
                ended_at="2026-11-18T10:00:00.250000+00:00",
                tools_used={"order": 12345, "nested": [1, {"a": None}]},
                response="shipped",
                metadata={"cache": "miss"},
            ),
            events.usage(cid="full", model="gpt-4o", system="openai"),
            events.answer("It ships tomorrow.", cid="full", metadata={"confidence": 0.9}),
            events.button(cid="full", metadata={"pos": 1}),
            events.question(
                "Here is the receipt", cid="full", attachments=png, attachment_mode="base64"
            ),
            events.action("refund", cid="full", duration_ms=12.5, error_msg="payment down"),
            events.files(cid="full", sender="agent", metadata={"kind": "label"}),
            events.files(cid="full", attachments=raw, mode="form_data"),
            events.usage(cid="full", embedding_tokens=7),
            events.usage(
                cid="full",
                prompt_tokens=500,
                completion_tokens=40,
                cache_read_tokens=300,
                cache_write_tokens=50,
                reasoning_tokens=10,
                model="gpt-4o-2024-08-06",
                requested_model="gpt-4o",
                system="openai",
                operation="chat",
                duration_ms=812.5,
                streamed=True,
            ),
            events.usage(
                cid="full",
                model="claude-sonnet",
                system="anthropic",
                duration_ms=40.0,
                streamed=False,
                usage_reported=False,
                error="rate limited",
            ),
            events.answer("Anything else?", cid="full"),
        ],
        "opened-only": [events.conversation("opened-only", opened=True, name="Never used")],
        "no-turn": [  # an agent that speaks first, then the user
            events.answer("Hello! How can I help?", cid="no-turn"),
            events.usage(cid="no-turn", model="m", system="anthropic"),
            events.question("Hi", cid="no-turn"),
        ],
    }


async def send(settings: Settings, batches: list[dict[str, list[Event]]]) -> None:
    exporter = create_exporter(settings, Stats())
    try:
        for part in batches:
            batch = Batch([ConversationBatch(cid, evs, {}) for cid, evs in part.items() if evs])
            outcomes = await exporter.export(batch, time.monotonic() + 30)
            assert all(o.ok for row in outcomes for o in row), outcomes
    finally:
        await exporter.aclose()


def read_back(url: str) -> dict[str, Any]:
    """Every conversation with its transcript, row ids and URLs left out."""
    out = {}
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as client:
        for summary in client.get("/api/conversations/").json()["results"]:
            conv = client.get(f"/api/conversations/{summary['id']}/").json()
            out[conv["conversation_id"]] = strip(conv)
    return out


def strip(value: Any) -> Any:
    # Row ids differ; so do the receive times: a conversation whose files come first is
    # created by the files' conversation upsert, which carries no time of its own.
    ignored = {"id", "created_at", "updated_at", "download_url", "message"}
    ignored |= {"started_at", "last_activity"}
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in ignored}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[tuple[LocalCollector, LocalCollector]]:
    with (
        LocalCollector(tmp_path / "ingest.db", api_keys=[API_KEY]) as a,
        LocalCollector(tmp_path / "otlp.db", api_keys=[API_KEY]) as b,
    ):
        yield a, b


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_otlp_and_ingest_give_the_same_transcripts(
    collectors: tuple[LocalCollector, LocalCollector], encoding: str
) -> None:
    via_ingest, via_otlp = collectors
    convs = conversations(EventFactory())
    # two batches per conversation, cut in the middle, as a flusher would
    batches = [
        {cid: evs[: len(evs) // 2] for cid, evs in convs.items()},
        {cid: evs[len(evs) // 2 :] for cid, evs in convs.items()},
    ]
    ingest = Settings(api_key=API_KEY, api_endpoint=via_ingest.url, _env_file=None)
    otlp = Settings(
        api_endpoint=via_otlp.url,
        protocol="otlp",
        otlp_encoding=encoding,
        otlp_capture_content=True,
        otlp_headers=f"Authorization=Api-Key {API_KEY}",
        _env_file=None,
    )
    await send(ingest, batches)
    await send(otlp, batches)
    await send(otlp, batches)  # a replay changes nothing
    expected = await asyncio.to_thread(read_back, via_ingest.url)
    got = await asyncio.to_thread(read_back, via_otlp.url)
    assert set(got) == set(expected) == set(convs)
    assert len(expected["full"]["transcript"]) == 14  # a message with files is two items
    for cid in convs:
        assert got[cid] == expected[cid], cid
    # the model calls' facts the read API does not show are the same too
    # (one difference by design: OTLP requires an operation name, and a call tracked
    # without one is a "chat" there, while ingest leaves it unset)
    ingested = [
        {**row, "operation": row["operation"] or "chat"} for row in usage_rows(via_ingest.db_path)
    ]
    assert usage_rows(via_otlp.db_path) == ingested
    assert len(usage_rows(via_otlp.db_path)) == 5


def usage_rows(db: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT * FROM token_usage ORDER BY ts_us").fetchall()
    finally:
        con.close()
    skip = {"id", "conversation", "created_at", "action"}
    return [{k: row[k] for k in row.keys() if k not in skip} for row in rows]  # noqa: SIM118


async def test_trackers_over_otlp_and_ingest_tell_the_same_story(
    collectors: tuple[LocalCollector, LocalCollector],
) -> None:
    via_ingest, via_otlp = collectors

    async def script(tracker: AsyncConversationTracker) -> None:
        async with tracker:
            await tracker.get_or_create_conversation("story", customer_id="c-7", name="Story")
            await tracker.track_human_message("I was charged twice")
            await tracker.track_action("find_charges", duration_ms=40, tools_used={"n": 2})
            await tracker.track_token_usage(120, 30, 150, model="gpt-4o-mini", system="openai")
            await tracker.track_agent_message("I see two charges; refunding one.")
            await tracker.track_button("resolved", "Yes", "true")
            assert await tracker.flush(20)

    await script(AsyncConversationTracker(api_key=API_KEY, endpoint=via_ingest.url, _env_file=None))
    await script(
        AsyncConversationTracker(
            endpoint=via_otlp.url,
            protocol="otlp",
            otlp_capture_content=True,
            otlp_headers=f"Authorization=Api-Key {API_KEY}",
            _env_file=None,
        )
    )
    times = {"timestamp", "started_at", "ended_at", "span_id", "last_activity"}

    def untimed(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: untimed(v) for k, v in value.items() if k not in times}
        if isinstance(value, list):
            return [untimed(v) for v in value]
        return value

    expected = untimed(await asyncio.to_thread(read_back, via_ingest.url))
    got = untimed(await asyncio.to_thread(read_back, via_otlp.url))
    assert got == expected
    assert [item["type"] for item in got["story"]["transcript"]] == [
        "message",
        "action",
        "token_usage",
        "message",
        "button",
    ]
