"""Both exporters against a real HTTP server on 127.0.0.1 that misbehaves for a while.

Proves: every event of many concurrent conversations arrives exactly once and in
tracking order, through 503s, a 429 with ``Retry-After: 1`` and dropped
connections; and a deadline is kept when the server never recovers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from agentsight_async import _events as ev_mod
from agentsight_async._events import Batch, ConversationBatch, Event, event_uuid, span_id
from agentsight_async._exporters import create_exporter

FAULTS = (
    ("status", 503),
    ("drop",),
    ("status", 429, {"Retry-After": "1"}),
    ("drop",),
    ("status", 502),
)


def conversation_events(make_event: Any, cid: str) -> list[Event]:
    return [
        make_event.conversation(cid, name=f"Chat {cid}"),
        make_event.question(f"q-{cid}", cid=cid),
        make_event(ev_mod.ACTION, cid, action_name="lookup", metadata={}),
        make_event.answer(f"a-{cid}", cid=cid),
        make_event(ev_mod.BUTTON, cid, button_event="e", label="Yes", value="y", metadata={}),
    ]


def batches(events: dict[str, list[Event]], part: slice, per_batch: int) -> list[Batch]:
    cids = sorted(events)
    return [
        Batch([ConversationBatch(cid, events[cid][part], {}) for cid in cids[i : i + per_batch]])
        for i in range(0, len(cids), per_batch)
    ]


async def deliver_in_two_rounds(exporter: Any, events: dict[str, list[Event]]) -> list[Any]:
    """First the first three events of every conversation, then the rest (as a flusher would)."""
    outcomes: list[Any] = []
    for part in (slice(0, 3), slice(3, None)):
        deadline = time.monotonic() + 20
        results = await asyncio.gather(
            *(exporter.export(b, deadline) for b in batches(events, part, 25))
        )
        outcomes.extend(o for result in results for row in result for o in row)
    return outcomes


@pytest.mark.parametrize("faulty", [False, True], ids=["healthy", "faulty"])
async def test_ingest_end_to_end(recording_server, make_settings, stats, make_event, faulty):
    server = recording_server
    exporter = create_exporter(make_settings(api_endpoint=server.url), stats)
    events = {f"conv-{i:03d}": conversation_events(make_event, f"conv-{i:03d}") for i in range(200)}
    if faulty:
        server.fail_next(*FAULTS)
    try:
        outcomes = await deliver_in_two_rounds(exporter, events)
    finally:
        await exporter.aclose()
    assert all(o.ok for o in outcomes)
    assert len(outcomes) == 1000

    arrived: dict[str, list[str]] = {}
    for rec in server.delivered("/api/ingest/"):
        for block in rec.body["conversations"]:
            arrived.setdefault(block["conversation_id"], []).extend(
                s["span_id"] for s in block["spans"]
            )
    for cid, evs in events.items():
        assert arrived[cid] == [span_id(e) for e in evs], cid  # exactly once, in order
    if faulty:
        statuses = [r.status for r in server.requests if r.path == "/api/ingest/"]
        assert statuses.count("dropped") == 2
        assert 429 in statuses
        assert stats.retried == 5
        plain = server.delivered("/api/ingest/")
        assert all("Content-Encoding" not in r.headers for r in plain)  # loopback: no gzip


@pytest.mark.parametrize("faulty", [False, True], ids=["healthy", "faulty"])
async def test_rest_end_to_end(recording_server, make_settings, stats, make_event, faulty):
    server = recording_server
    exporter = create_exporter(
        make_settings(api_endpoint=server.url, protocol="rest", max_concurrency=8), stats
    )
    events = {f"conv-{i:03d}": conversation_events(make_event, f"conv-{i:03d}") for i in range(60)}
    if faulty:
        server.fail_next(*FAULTS)
    try:
        outcomes = await deliver_in_two_rounds(exporter, events)
    finally:
        await exporter.aclose()
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]

    by_key: dict[str, int] = {}
    arrived: dict[str, list[str]] = {}
    for rec in server.delivered():
        key = rec.headers.get("Idempotency-Key")
        assert key is not None
        by_key[key] = by_key.get(key, 0) + 1
        arrived.setdefault(rec.body["conversation_id"], []).append(key)
    assert set(by_key.values()) == {1}  # exactly once
    for cid, evs in events.items():
        assert arrived[cid] == [event_uuid(e) for e in evs], cid  # in tracking order
    # the pk from the conversation item is threaded into every later item
    for rec in server.delivered():
        if rec.path != "/api/conversations/":
            assert rec.body["conversation"] == server.pks[rec.body["conversation_id"]]


async def test_deadline_kept_when_server_never_recovers(
    recording_server, make_settings, stats, make_event
):
    server = recording_server
    server.fail_next(*[("status", 503)] * 1000)
    exporter = create_exporter(make_settings(api_endpoint=server.url), stats)
    batch = Batch([ConversationBatch("c", [make_event.question(cid="c")], {})])
    started = time.monotonic()
    try:
        out = await exporter.export(batch, started + 1.5)
    finally:
        await exporter.aclose()
    elapsed = time.monotonic() - started
    assert out[0][0].drop_reason == "retries_exhausted"
    assert elapsed < 1.5 + 0.5
    assert stats.requests >= 2


async def test_multipart_over_real_socket(recording_server, make_settings, stats, make_event):
    server = recording_server
    exporter = create_exporter(make_settings(api_endpoint=server.url, protocol="rest"), stats)
    att = make_event(
        ev_mod.ATTACHMENTS,
        "c",
        mode="form_data",
        sender="agent",
        metadata={"a": 1},
        attachments=[{"filename": "r.csv", "mime_type": "text/csv", "data": b"a,b"}],
    )
    try:
        out = await exporter.export(
            Batch([ConversationBatch("c", [att], {})]), time.monotonic() + 10
        )
    finally:
        await exporter.aclose()
    assert out[0][0].ok
    rec = server.delivered("/api/attachments/")[0]
    assert rec.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="attachment_0"; filename="r.csv"' in rec.raw
    assert json.dumps({"a": 1}).encode() in rec.raw
