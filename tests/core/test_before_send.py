"""before_send: each event as plain data, once, before the spool and the exporter see it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from agentsight_async import AsyncConversationTracker, ConversationTracker
from agentsight_async.testing import recorded


def contents(url: str, cid: str) -> list[Any]:
    return [r["data"].get("content") for r in recorded(url, cid) if r["type"] == "question"]


async def test_it_sees_each_event_once_and_can_change_or_withhold_it() -> None:
    url = "memory://before-send-basic"
    seen: list[dict[str, Any]] = []
    threads: set[str] = set()

    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(event)
        threads.add(threading.current_thread().name)
        if event["kind"] == "question" and "secret" in event["data"]["content"]:
            return None
        if event["kind"] == "question":
            return {**event, "data": {**event["data"], "content": event["data"]["content"].upper()}}
        return event

    async with AsyncConversationTracker(api_endpoint=url, before_send=before_send) as tracker:
        await tracker.track_human_message("hello", conversation_id="c")
        await tracker.track_human_message("my secret", conversation_id="c")
        await tracker.track_agent_message("hi", conversation_id="c")
        result = await tracker.flush(timeout=10)
        stats = tracker.stats()
    assert contents(url, "c") == ["HELLO"]
    assert [r["data"]["content"] for r in recorded(url, "c") if r["type"] == "answer"] == ["hi"]
    assert sorted(e["kind"] for e in seen) == ["answer", "question", "question"]
    assert all(set(e) == {"kind", "conversation_id", "timestamp", "data"} for e in seen)
    assert stats["dropped"]["filtered"] == 1
    assert result  # withheld on purpose is not a failure...
    assert result.filtered == 1  # ...but it is said
    assert result.delivered == 2


def test_it_runs_off_the_callers_thread_for_the_sync_tracker() -> None:
    url = "memory://before-send-thread"
    where: list[str] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        where.append(threading.current_thread().name)
        return event

    tracker = ConversationTracker(endpoint=url, before_send=before_send)
    try:
        tracker.track_human_message("x", conversation_id="c")
        assert tracker.flush(timeout=10)
    finally:
        tracker.close()
    assert where == ["agentsight-async-loop"]  # the tracker's loop, not the caller's


async def test_an_exception_drops_the_event_logged_once_never_sent_unredacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "memory://before-send-raises"

    def before_send(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError(f"cannot handle {event['data'].get('content')}")

    with caplog.at_level(logging.ERROR, logger="agentsight_async"):
        async with AsyncConversationTracker(api_endpoint=url, before_send=before_send) as tracker:
            for i in range(3):
                text = f"card 4111 1111 1111 1111 #{i}"
                await tracker.track_human_message(text, conversation_id="c")
            result = await tracker.flush(timeout=10)
            stats = tracker.stats()
    assert recorded(url, "c") == []
    assert stats["dropped"]["before_send_error"] == 3
    assert not result
    assert result.dropped == {"before_send_error": 3}
    errors = [r for r in caplog.records if "before_send raised" in r.getMessage()]
    assert len(errors) == 1
    assert "4111" not in caplog.text  # the content stays out of the log


@pytest.mark.parametrize("bad", [42, {"kind": "question"}, {"data": "text"}])
async def test_an_unusable_answer_is_an_error_not_a_send(bad: Any) -> None:
    url = f"memory://before-send-bad-{type(bad).__name__}-{len(str(bad))}"
    async with AsyncConversationTracker(api_endpoint=url, before_send=lambda e: bad) as tracker:
        await tracker.track_human_message("x", conversation_id="c")
        await tracker.flush(timeout=10)
        stats = tracker.stats()
    assert recorded(url, "c") == []
    assert stats["dropped"]["before_send_error"] == 1


async def test_order_is_kept_around_withheld_events() -> None:
    url = "memory://before-send-order"

    def drop_odd(event: dict[str, Any]) -> dict[str, Any] | None:
        text = event["data"].get("content", "")
        return None if text.endswith(("1", "3", "5", "7", "9")) else event

    async with AsyncConversationTracker(
        api_endpoint=url, before_send=drop_odd, batch_size=3
    ) as tracker:
        for i in range(40):
            await tracker.track_human_message(f"m{i}", conversation_id="c")
            if i % 7 == 0:
                await asyncio.sleep(0)
        result = await tracker.flush(timeout=10)
        stats = tracker.stats()
    assert contents(url, "c") == [f"m{i}" for i in range(0, 40, 2)]
    assert result  # (it counts what was still queued at the call: some went out before)
    assert result.pending == 0
    assert (stats["delivered"], stats["dropped"]["filtered"]) == (20, 20)


def test_nothing_unredacted_reaches_the_spool(tmp_path: Path) -> None:
    import sqlite3

    spool = tmp_path / "spool"
    tracker = ConversationTracker(
        api_key="ags_" + "0" * 32 + "_000000",
        endpoint="http://127.0.0.1:9",  # nothing listens: everything waits in the spool
        spool_dir=str(spool),
        request_timeout=0.2,
        shutdown_timeout=0.5,
        before_send=lambda e: (
            {**e, "data": {**e["data"], "content": "[redacted]"}} if e["kind"] == "question" else e
        ),
    )
    tracker.track_human_message("alice@example.com", conversation_id="c")
    tracker.close()
    rows = []
    for db in spool.glob("spool-*.db"):
        with sqlite3.connect(db) as conn:
            rows += [r[0] for r in conn.execute("SELECT data FROM events")]
    assert rows, "the event should wait in the spool"
    assert all("alice@example.com" not in r for r in rows)
    assert any("[redacted]" in r for r in rows)


async def test_conversation_fields_are_processed_too() -> None:
    url = "memory://before-send-fields"

    def scrub_customer(event: dict[str, Any]) -> dict[str, Any]:
        if event["kind"] == "conversation":
            return {**event, "data": {**event["data"], "customer_id": "anonymous"}}
        return event

    async with AsyncConversationTracker(api_endpoint=url, before_send=scrub_customer) as tracker:
        async with tracker.conversation("c", customer_id="alice@example.com"):
            await tracker.track_human_message("hi")
        await tracker.flush(timeout=10)
    records = recorded(url, "c")
    conv = [r for r in records if r["type"] == "conversation"]
    assert conv[0]["data"]["customer_id"] == "anonymous"
    assert "alice@example.com" not in repr(records)
