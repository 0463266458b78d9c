"""``sqlite:///``: the tracker records into a real SQLite file through the collector's storage."""

from __future__ import annotations

import base64
from pathlib import Path

from agentsight_async import AsyncConversationTracker, ConversationTracker
from agentsight_collector import Storage


def transcript(db: Path, conversation_id: str) -> tuple[dict, list[dict]]:
    with Storage(db) as storage:
        found = storage.list_conversations(conversation_id=conversation_id)["results"]
        assert len(found) == 1
        conv = storage.get_conversation(found[0]["id"])
        assert conv is not None
        return found[0], conv["transcript"]


def test_sync_tracker_records_a_whole_conversation(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "record.db"
    pdf = b"%PDF-1.4 recorded"
    tracker = ConversationTracker(endpoint=f"sqlite:///{db}")
    tracker.get_or_create_conversation("rec-1", name="Recorded", customer_id="cust-9")
    tracker.track_human_message(
        "Hello <script>x</script>",
        attachments=[
            {
                "filename": "a.txt",
                "mime_type": "text/plain",
                "data": base64.b64encode(b"hi").decode(),
            }
        ],
    )
    tracker.track_action("lookup", duration_ms=12, tools_used={"db": "orders"}, response="ok")
    tracker.track_agent_message("Found it")
    tracker.track_button("feedback", "Yes", "yes")
    tracker.track_attachments([{"data": pdf, "filename": "r.pdf"}], mode="form_data")
    tracker.track_token_usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    result = tracker.send_tracked_data()
    tracker.close()
    assert result["summary"] == {
        "questions": 1,
        "answers": 1,
        "attachments": 1,
        "actions": 2,
        "buttons": 1,
        "errors": 0,
    }
    row, items = transcript(db, "rec-1")
    assert row["name"] == "Recorded"
    assert row["customer_id"] == "cust-9"
    assert row["is_used"] is True
    assert row["token_usage"]["total_tokens"] == 15
    kinds = [
        (
            i["type"],
            i.get("content")
            or i.get("action_name")
            or i.get("label")
            or [f["filename"] for f in i.get("files", [])],
        )
        for i in items
    ]
    assert kinds == [
        ("message", "Hello <script>x</script>"),
        ("attachment", ["a.txt"]),
        ("action", "lookup"),
        ("message", "Found it"),
        ("button", "Yes"),
        ("attachment", ["r.pdf"]),
        ("token_usage", []),
    ]
    with Storage(db) as storage:
        file_id = items[5]["files"][0]["id"]
        assert storage.get_attachment(file_id) == ("r.pdf", "application/pdf", pdf)


async def test_replayed_batches_do_not_duplicate(tmp_path: Path) -> None:
    db = tmp_path / "dedupe.db"
    async with AsyncConversationTracker(api_endpoint=f"sqlite:///{db}") as tracker:
        for i in range(20):
            await tracker.track_human_message(f"m{i}", conversation_id="d")
        await tracker.flush(timeout=10)
        # Export the same events again, as a retry after a lost answer would.
        from agentsight_async._events import Batch, ConversationBatch
        from agentsight_async._exporters._sqlite import SqliteExporter

        events = tracker._pipeline.queues.tracked_events("d")
        assert len(events) == 20
        exporter = SqliteExporter(tracker.settings, tracker._pipeline.stats)
        outcomes = await exporter.export(Batch([ConversationBatch("d", events)]), 0)
        await exporter.aclose()
        assert all(o.ok for o in outcomes[0])
    _, items = transcript(db, "d")
    assert [i["content"] for i in items] == [f"m{i}" for i in range(20)]


def test_send_tracked_data_over_ingest_reports_the_conversation_pk(tmp_path: Path) -> None:
    from agentsight_async.testing import DUMMY_API_KEY
    from agentsight_collector import LocalCollector

    with LocalCollector(tmp_path / "c.db", api_keys=[DUMMY_API_KEY]) as collector:
        tracker = ConversationTracker(api_key=DUMMY_API_KEY, endpoint=collector.url)
        tracker.get_or_create_conversation("pk-1", name="With pk")
        tracker.track_human_message("hello")
        result = tracker.send_tracked_data()
        tracker.close()
        pk = collector.storage.lookup("pk-1")
    assert pk is not None
    assert [item["response"]["id"] for item in result["items"]] == [pk, pk]
    assert all(item["response"]["conversation_id"] == "pk-1" for item in result["items"])


async def test_many_conversations_at_once_into_a_new_file(tmp_path: Path) -> None:
    """Several export threads open the new file together: one creates it, none fails."""
    db = tmp_path / "fresh.db"
    async with AsyncConversationTracker(
        api_endpoint=f"sqlite:///{db}", batch_size=5, max_concurrency=8
    ) as tracker:
        for i in range(200):
            await tracker.track_human_message(f"m{i}", conversation_id=f"c{i % 40}")
        result = await tracker.flush(timeout=30)
    assert result
    assert result.dropped == {}
