"""Storage without a server: migrations, idempotency, upserts, validation, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from agentsight_async._store import _schema
from agentsight_collector import (
    FieldValidationError,
    IngestValidationError,
    NotFoundError,
    SchemaVersionError,
    Storage,
)


def _msg(content: str, **extra: Any) -> dict[str, Any]:
    return {"conversation_id": "c1", "content": content, "sender": "end_user", **extra}


def _block(conversation_id: str = "c1", **fields: Any) -> dict[str, Any]:
    span = {
        "span_id": "0123456789abcdef",
        "kind": "button",
        "started_at": "2026-01-01T00:00:00+00:00",
        "attributes": {
            "agentsight.button.event": "e",
            "agentsight.button.label": "l",
            "agentsight.button.value": "v",
        },
    }
    return {"conversation_id": conversation_id, "spans": [span], **fields}


def test_new_database_is_wal_and_at_latest_version(tmp_path: Path) -> None:
    with Storage(tmp_path / "db.sqlite") as storage:
        assert storage.schema_version == _schema.LATEST_VERSION
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _schema.LATEST_VERSION
    finally:
        conn.close()


def test_old_version_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    _schema.migrate(conn, _schema.MIGRATIONS[:1])  # a database written by schema v1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    with Storage(path) as storage:
        first = storage.create_message(_msg("before"))
    # Now a v1 file that already holds a row written by the v1 code.
    path2 = tmp_path / "old2.sqlite"
    conn = sqlite3.connect(path2, isolation_level=None)
    _schema.migrate(conn, _schema.MIGRATIONS[:1])
    conn.execute(
        "INSERT INTO conversations (id, agent_id, conversation_id, environment, started_at, "
        "started_us, last_activity, last_activity_us, created_at, updated_at) "
        "VALUES (7, 1, 'legacy-row', 'development', 't', 0, 't', 0, 't', 't')"
    )
    conn.execute("INSERT INTO object_ids (id, kind) VALUES (7, 'conversation')")
    conn.close()
    with Storage(path2) as storage:
        assert storage.schema_version == _schema.LATEST_VERSION
        assert storage.lookup("legacy-row") == 7
        # the v2 feature works on the upgraded file
        a = storage.create_message(_msg("x", conversation=7), idempotency_key="k")
        b = storage.create_message(_msg("x", conversation=7), idempotency_key="k")
        assert a == b
        assert a["id"] > 7
    assert first["id"] > 0


def test_a_v2_database_upgrades_to_v3_in_place(tmp_path: Path) -> None:
    """Rows written before marks, soft delete and feedback sources keep working."""
    path = tmp_path / "v2.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    _schema.migrate(conn, _schema.MIGRATIONS[:2])
    for pk, cid in ((7, "old-a"), (8, "old-b")):
        conn.execute(
            "INSERT INTO conversations (id, agent_id, conversation_id, name, environment, "
            "metadata, started_at, started_us, last_activity, last_activity_us, created_at, "
            "updated_at) VALUES (?, 1, ?, 'Old', 'development', '{\"plan\":\"pro\"}', "
            "'2026-01-01T00:00:00+00:00', 1767225600000000, '2026-01-01T00:00:00+00:00', "
            "1767225600000000, 't', 't')",
            (pk, cid),
        )
        conn.execute("INSERT INTO object_ids (id, kind) VALUES (?, 'conversation')", (pk,))
    conn.execute(
        "INSERT INTO feedbacks (id, conversation, kind, sentiment, route, created_at) "
        "VALUES (9, 7, 'conversation', 'positive', 'feedbacks', '2026-01-01T00:00:00+00:00')"
    )
    conn.execute("INSERT INTO object_ids (id, kind) VALUES (9, 'feedback')")
    conn.close()
    with Storage(path) as storage:
        assert storage.schema_version == _schema.LATEST_VERSION == 4
        page = storage.list_conversations(metadata="plan:pro")
        assert {
            (c["conversation_id"], c["is_marked"], c["is_deleted"]) for c in page["results"]
        } == {
            ("old-a", False, False),
            ("old-b", False, False),
        }
        assert storage.list_conversations(feedback_source="customer")["count"] == 1
        assert storage.mark_conversation(7, {"is_marked": True})["is_marked"] is True
        storage.delete_conversation(8)
        assert [c["id"] for c in storage.list_conversations()["results"]] == [7]
        assert storage.list_feedbacks()["results"][0]["source"] == "customer"
    conn = sqlite3.connect(path)
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(conversations)")}
        assert {"is_marked", "deleted_at"} <= columns
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"ix_feedbacks_conv", "ix_actions_name"} <= indexes
    finally:
        conn.close()


def test_database_from_a_newer_collector_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {_schema.LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer"):
        Storage(path)


def test_failed_migration_step_leaves_the_old_version(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    conn = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    try:
        with pytest.raises(RuntimeError):
            _schema.migrate(conn, [*_schema.MIGRATIONS, broken])
        assert _schema.schema_version(conn) == _schema.LATEST_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables
    finally:
        conn.close()


def test_idempotency_key_returns_the_original_and_writes_once(storage: Storage) -> None:
    first = storage.create_message(_msg("once"), idempotency_key="same-key")
    second = storage.create_message(_msg("once"), idempotency_key="same-key")
    assert first == second
    third = storage.create_message(_msg("once"), idempotency_key="other-key")
    assert third["id"] != first["id"]
    detail = storage.get_conversation(first["conversation"])
    assert detail is not None
    assert [m["content"] for m in detail["messages"]] == ["once", "once"]


def test_initialize_never_downgrades_a_used_conversation(storage: Storage) -> None:
    used = storage.create_conversation({"conversation_id": "c1", "is_used": True})
    again = storage.create_conversation({"conversation_id": "c1", "is_used": False, "name": "N"})
    assert again["id"] == used["id"]
    assert again["is_used"] is True
    assert again["name"] == "N"


def test_conversation_resolution_by_pk_string_none_and_id(storage: Storage) -> None:
    pk = storage.create_conversation({"conversation_id": "c1"})["id"]
    storage.create_message(_msg("int", conversation=pk))
    storage.create_message(_msg("str", conversation=str(pk)))
    storage.create_message(_msg("None", conversation="None"))
    storage.create_message(_msg("null", conversation=None))
    created = storage.create_message({**_msg("new"), "conversation_id": "c2"})
    assert created["conversation"] != pk
    with pytest.raises(FieldValidationError) as err:
        storage.create_message(_msg("bad", conversation=999_999))
    assert err.value.errors == {"conversation": ['Invalid pk "999999" - object does not exist.']}
    detail = storage.get_conversation(pk)
    assert detail is not None
    assert [m["content"] for m in detail["messages"]] == ["int", "str", "None", "null"]
    assert detail["is_used"] is True


def test_items_without_any_conversation_reference_are_refused(storage: Storage) -> None:
    with pytest.raises(FieldValidationError) as err:
        storage.create_message({"content": "x", "sender": "agent"})
    assert "conversation" in err.value.errors
    with pytest.raises(FieldValidationError) as err:
        storage.create_attachments(
            {"sender": "agent", "mode": "form_data", "metadata": "{}"},
            [("a.txt", "text/plain", b"a")],
        )
    assert "conversation" in err.value.errors


def test_message_linked_attachment_must_belong_to_the_conversation(storage: Storage) -> None:
    m = storage.create_message(_msg("hello"))
    other = storage.create_conversation({"conversation_id": "other"})["id"]
    body = {
        "attachments": [{"filename": "a", "mime_type": "text/plain", "data": "YQ=="}],
        "message": m["id"],
        "conversation": str(other),
    }
    with pytest.raises(NotFoundError):
        storage.create_attachments(body)
    ok = storage.create_attachments({**body, "conversation": "None"})
    assert ok["conversation"] == m["conversation"]


def test_field_errors_are_string_lists(storage: Storage) -> None:
    with pytest.raises(FieldValidationError) as err:
        storage.create_button({"conversation_id": "c", "label": "", "value": 3})
    errors = err.value.errors
    assert set(errors) == {"button_event", "label", "value"}
    assert all(isinstance(m, str) for msgs in errors.values() for m in msgs)


def test_token_usage_snapshots_and_per_call_usage(storage: Storage) -> None:
    snapshot = {
        "action_name": "token_usage",
        "conversation_id": "legacy",
        "metadata": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    storage.create_action(snapshot)
    storage.create_action(snapshot)  # re-sent cumulative counters
    storage.create_action(
        {**snapshot, "metadata": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}}
    )
    legacy = storage.get_conversation(storage.lookup("legacy") or 0)
    assert legacy is not None
    assert legacy["token_usage"]["total_tokens"] == 35
    assert legacy["token_usage"]["input_tokens"] == 30
    assert all(i["type"] != "action" for i in legacy["transcript"])

    per_call = {
        **snapshot,
        "conversation_id": "sdk",
        "metadata": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "model": "m1",
        },
    }
    storage.create_action(per_call, idempotency_key="call-1")
    storage.create_action(per_call, idempotency_key="call-2")
    storage.create_action(per_call, idempotency_key="call-2")  # a retry
    sdk = storage.get_conversation(storage.lookup("sdk") or 0)
    assert sdk is not None
    assert sdk["token_usage"]["total_tokens"] == 30
    assert {i["model"] for i in sdk["transcript"] if i["type"] == "token_usage"} == {"m1"}


def test_transcript_orders_by_time_then_insertion(storage: Storage) -> None:
    storage.create_message(_msg("late", timestamp="2026-01-01T12:00:00+02:00"))  # 10:00Z
    storage.create_message(_msg("early", timestamp="2026-01-01T09:59:59.5Z"))
    storage.create_message(_msg("tie-1", timestamp="2026-01-01T10:00:00+00:00"))
    storage.create_button(
        {
            "conversation_id": "c1",
            "button_event": "e",
            "label": "tie-2",
            "value": "v",
            "timestamp": "2026-01-01T10:00:00.000000+00:00",
        }
    )
    detail = storage.get_conversation(storage.lookup("c1") or 0)
    assert detail is not None
    names = [i.get("content") or i.get("label") for i in detail["transcript"]]
    assert names == ["early", "late", "tie-1", "tie-2"]
    assert detail["transcript"][1]["timestamp"] == "2026-01-01T12:00:00+02:00"  # as sent


def test_ingest_validation_lists_each_bad_block(storage: Storage) -> None:
    payload = {
        "conversations": [
            _block("ok"),
            _block("bad-env", environment="staging"),
            {**_block("bad-key"), "surprise": 1},
            _block("x" * 300),
            _block("bad-ip", customer_ip_address="999.1.1.1"),
        ]
    }
    with pytest.raises(IngestValidationError) as err:
        storage.ingest(payload)
    body = err.value.body
    assert body["truncated"] is False
    assert [(b["index"], b["conversation_id"]) for b in body["conversations"]] == [
        (1, "bad-env"),
        (2, "bad-key"),
        (3, "x" * 300),
        (4, "bad-ip"),
    ]
    errors = [b["errors"] for b in body["conversations"]]
    assert list(errors[0]) == ["environment"]
    assert list(errors[1]) == ["surprise"]
    assert list(errors[2]) == ["conversation_id"]
    assert list(errors[3]) == ["customer_ip_address"]
    assert isinstance(body["detail"], str)
    assert storage.lookup("ok") is None  # one bad block refuses the whole batch


def test_ingest_validation_truncates_after_twenty_blocks(storage: Storage) -> None:
    payload = {"conversations": [_block(f"c{i}", environment="nope") for i in range(25)]}
    with pytest.raises(IngestValidationError) as err:
        storage.ingest(payload)
    assert len(err.value.body["conversations"]) == 20
    assert err.value.body["truncated"] is True


@pytest.mark.parametrize("payload", [[], {"conversations": {}}, {"sdk": 1, "conversations": []}])
def test_ingest_top_level_errors_have_no_block_list(storage: Storage, payload: Any) -> None:
    with pytest.raises(IngestValidationError) as err:
        storage.ingest(payload)
    assert "conversations" not in err.value.body
    assert isinstance(err.value.body["detail"], str)


def test_ingest_fields_overwrite_and_conversation_spans_do_not_mark_used(
    storage: Storage,
) -> None:
    opened = {
        "span_id": "1" * 16,
        "kind": "conversation",
        "name": "conversation_opened",
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    storage.ingest({"conversations": [{"conversation_id": "c", "name": "A", "spans": [opened]}]})
    pk = storage.lookup("c")
    assert pk is not None
    first = storage.get_conversation(pk)
    assert first is not None
    assert (first["name"], first["is_used"]) == ("A", False)
    storage.ingest({"conversations": [{**_block("c"), "name": "B", "environment": "production"}]})
    second = storage.get_conversation(pk)
    assert second is not None
    assert (second["name"], second["environment"], second["is_used"]) == ("B", "production", True)


def _turn(span_id: str, content: str, at: str = "2026-01-01T00:00:00+00:00") -> dict[str, Any]:
    return {
        "span_id": span_id,
        "kind": "turn",
        "started_at": at,
        "ended_at": at,
        "attributes": {"agentsight.turn.complete": True},
        "events": [
            {
                "name": "agentsight.message",
                "timestamp": at,
                "attributes": {
                    "agentsight.message.sender": "end_user",
                    "agentsight.message.content": content,
                },
            }
        ],
    }


def _contents(storage: Storage, conversation_id: str) -> list[str]:
    detail = storage.get_conversation(storage.lookup(conversation_id) or 0)
    assert detail is not None
    return [i["content"] for i in detail["transcript"] if i["type"] == "message"]


def test_ingest_partial_replay_stores_only_the_new_spans(storage: Storage) -> None:
    first = storage.ingest(
        {"conversations": [{"conversation_id": "c", "spans": [_turn("a" * 16, "one")]}]}
    )
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    # a retried batch that grew: one old span, two new, one repeated within the block
    spans = [
        _turn("b" * 16, "two", "2026-01-01T00:00:01+00:00"),
        _turn("a" * 16, "one"),
        _turn("c" * 16, "three", "2026-01-01T00:00:02+00:00"),
        _turn("b" * 16, "two again", "2026-01-01T00:00:03+00:00"),
    ]
    again = storage.ingest({"conversations": [{"conversation_id": "c", "spans": spans}]})
    assert (again["accepted"], again["duplicates"]) == (2, 2)
    assert again["conversations"][0]["accepted"] == 2
    assert _contents(storage, "c") == ["one", "two", "three"]
    replay = storage.ingest({"conversations": [{"conversation_id": "c", "spans": spans}]})
    assert (replay["accepted"], replay["duplicates"]) == (0, 4)
    assert _contents(storage, "c") == ["one", "two", "three"]


def test_ingest_ids_follow_span_order_across_kinds_and_continue_over_rest(
    storage: Storage,
) -> None:
    at = "2026-01-01T00:00:00+00:00"
    spans = [
        _turn("1" * 16, "first"),
        {
            "span_id": "2" * 16,
            "kind": "attachment",
            "started_at": at,
            "attributes": {
                "agentsight.attachment.mode": "descriptor",
                "agentsight.attachment.files": '[{"filename": "a.txt", "size": 3}]',
            },
        },
        {**_block()["spans"][0], "span_id": "3" * 16, "started_at": at},
        {
            "span_id": "4" * 16,
            "kind": "llm",
            "started_at": at,
            "attributes": {"gen_ai.usage.input_tokens": 2, "gen_ai.usage.output_tokens": 3},
        },
        {
            "span_id": "5" * 16,
            "kind": "tool",
            "started_at": at,
            "ended_at": "2026-01-01T00:00:00.250000+00:00",
            "attributes": {"agentsight.tool.name": "search"},
        },
        _turn("6" * 16, "last"),
    ]
    # Two conversations in one payload, the second new: ids never collide across blocks.
    payload = {
        "conversations": [
            {"conversation_id": "k", "spans": spans},
            {"conversation_id": "k2", "spans": [_turn("7" * 16, "other")]},
        ]
    }
    assert storage.ingest(payload)["accepted"] == 7
    detail = storage.get_conversation(storage.lookup("k") or 0)
    assert detail is not None
    kinds = [i["type"] for i in detail["transcript"]]
    assert kinds == ["message", "attachment", "button", "token_usage", "action", "message"]
    ids = [i["id"] for i in detail["transcript"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert detail["id"] < ids[0]
    action = detail["transcript"][4]
    assert action["duration_ms"] == 250
    other = storage.get_conversation(storage.lookup("k2") or 0)
    assert other is not None
    assert other["id"] > ids[-1]
    assert other["transcript"][0]["id"] > other["id"]
    later = storage.create_message({"conversation_id": "k", "content": "rest", "sender": "agent"})
    assert later["id"] > other["transcript"][0]["id"]


def test_concurrent_writers_from_many_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    threads_n, per_thread = 8, 40
    with Storage(tmp_path / "busy.sqlite") as storage:
        # A second Storage on the same file: cross-connection locking, not just our lock.
        with Storage(tmp_path / "busy.sqlite") as other:

            def work(n: int) -> None:
                target = storage if n % 2 else other
                try:
                    for i in range(per_thread):
                        target.create_message(_msg(f"{n}-{i}", conversation_id=f"c{n % 3}"))
                        target.list_conversations(page_size=5)
                except BaseException as exc:  # collected and asserted below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not any(t.is_alive() for t in threads)
        assert errors == []
        page = storage.list_conversations()
        assert sum(r["message_count"] for r in page["results"]) == threads_n * per_thread


def test_memory_database_works_across_threads() -> None:
    with Storage(":memory:") as storage:
        result: dict[str, Any] = {}
        t = threading.Thread(target=lambda: result.update(storage.create_message(_msg("m"))))
        t.start()
        t.join(10)
        assert storage.get_conversation(result["conversation"]) is not None


def test_pagination_and_filters(storage: Storage) -> None:
    for i in range(7):
        storage.create_conversation(
            {
                "conversation_id": f"c{i}",
                "name": f"Chat {i}",
                "customer_id": f"u{i % 2}",
                "environment": "production" if i < 3 else "development",
                "timestamp": f"2026-01-0{i + 1}T00:00:00+00:00",
            }
        )
    page1 = storage.list_conversations(page_size=3)
    assert (page1["count"], page1["next"], page1["previous"]) == (7, 2, None)
    assert [r["conversation_id"] for r in page1["results"]] == ["c6", "c5", "c4"]
    page3 = storage.list_conversations(page=3, page_size=3)
    assert ([r["conversation_id"] for r in page3["results"]], page3["next"]) == (["c0"], None)
    with pytest.raises(NotFoundError):
        storage.list_conversations(page=4, page_size=3)
    assert storage.list_conversations(customer_id="u1")["count"] == 3
    assert storage.list_conversations(environment="production")["count"] == 3
    assert storage.list_conversations(name="chat 5")["count"] == 1
    assert storage.list_conversations(name="%")["count"] == 0
    window = storage.list_conversations(
        started_at_after="2026-01-02T00:00:00Z", started_at_before="2026-01-04"
    )
    assert sorted(r["conversation_id"] for r in window["results"]) == ["c1", "c2", "c3"]
    with pytest.raises(FieldValidationError):
        storage.list_conversations(started_at_after="yesterday")


def test_storage_imports_without_the_collector_extra() -> None:
    """The ``sqlite:///`` exporter's Store, and the Storage that reads its files back,
    work where starlette may be missing."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'jinja2', 'multipart', 'python_multipart'):\n"
        "    sys.modules[name] = None\n"
        "from agentsight_async._store import Store\n"
        "from agentsight_collector import Storage\n"
        "with Store(':memory:') as s:\n"
        "    assert s.create_message({'conversation_id': 'c', 'content': 'x', 'sender': 'agent'})\n"
        "with Storage(':memory:') as s:\n"
        "    s.create_message({'conversation_id': 'c', 'content': 'x', 'sender': 'agent'})\n"
        "    assert s.lookup('c') is not None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
