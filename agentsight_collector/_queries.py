"""Read queries: the conversation list, one transcript, attachment bytes."""

from __future__ import annotations

import sqlite3
from typing import Any

from agentsight_async._store import FieldValidationError, NotFoundError, loads, us_from_iso

MAX_PAGE_SIZE = 1000

_CONVERSATION_COLUMNS = (
    "id, conversation_id, name, customer_id, customer_ip_address, device, source, language, "
    "environment, metadata, is_used, started_at, last_activity, created_at, updated_at"
)
_USAGE_SUM_SQL = (
    "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
    "COALESCE(SUM(embedding_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), "
    "COALESCE(SUM(cache_write_tokens), 0), COALESCE(SUM(total_tokens), 0)"
)
_TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "embedding_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "total_tokens",
)


def _bound(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return us_from_iso(value)
    except ValueError:
        raise FieldValidationError({name: ["Enter a valid date/time (ISO 8601)."]}) from None


def list_conversations(
    conn: sqlite3.Connection,
    *,
    conversation_id: str | None,
    customer_id: str | None,
    started_at_after: str | None,
    started_at_before: str | None,
    environment: str | None,
    name: str | None,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    """DRF-style page; ``next``/``previous`` are page numbers (the app makes URLs)."""
    if page < 1:
        raise NotFoundError("Invalid page.")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise FieldValidationError({"page_size": [f"Must be between 1 and {MAX_PAGE_SIZE}."]})
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    for column, value in (
        ("conversation_id", conversation_id),
        ("customer_id", customer_id),
        ("environment", environment),
    ):
        if value is not None and value != "":
            where.append(f"{column} = ?")
            params.append(value)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("name LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    after, before = (
        _bound(started_at_after, "started_at_after"),
        _bound(started_at_before, "started_at_before"),
    )
    if after is not None:
        where.append("started_us >= ?")
        params.append(after)
    if before is not None:
        where.append("started_us <= ?")
        params.append(before)
    clause = " AND ".join(where)
    count = int(
        conn.execute(f"SELECT COUNT(*) FROM conversations WHERE {clause}", params).fetchone()[0]
    )
    if page > 1 and (page - 1) * page_size >= count:
        raise NotFoundError("Invalid page.")
    rows = conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE {clause} "
        "ORDER BY last_activity_us DESC, id DESC LIMIT ? OFFSET ?",
        (*params, page_size, (page - 1) * page_size),
    ).fetchall()
    return {
        "count": count,
        "next": page + 1 if page * page_size < count else None,
        "previous": page - 1 if page > 1 else None,
        "results": [_conversation_summary(conn, row) for row in rows],
    }


def _conversation_summary(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    pk = int(row["id"])
    out = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    out["metadata"] = loads(row["metadata"])
    out["is_used"] = bool(row["is_used"])
    out["message_count"] = int(
        conn.execute("SELECT COUNT(*) FROM messages WHERE conversation = ?", (pk,)).fetchone()[0]
    )
    sums = conn.execute(
        f"SELECT {_USAGE_SUM_SQL} FROM token_usage WHERE conversation = ?", (pk,)
    ).fetchone()
    out["token_usage"] = {key: int(value) for key, value in zip(_TOKEN_KEYS, sums, strict=True)}
    out["total_tokens"] = out["token_usage"]["total_tokens"]
    return out


def lookup(conn: sqlite3.Connection, agent_id: int, conversation_id: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM conversations WHERE agent_id = ? AND conversation_id = ?",
        (agent_id, conversation_id),
    ).fetchone()
    return None if row is None else int(row[0])


def get_conversation(conn: sqlite3.Connection, pk: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (pk,)
    ).fetchone()
    if row is None:
        return None
    out = _conversation_summary(conn, row)
    items = [
        *_messages(conn, pk),
        *_actions(conn, pk),
        *_buttons(conn, pk),
        *attachments(conn, pk),
        *_token_usage(conn, pk),
    ]
    items.sort(key=lambda item: (item.pop("_ts_us"), item["id"]))
    out["transcript"] = items
    out["messages"] = [item for item in items if item["type"] == "message"]
    out["feedbacks"] = _feedbacks(conn, pk)
    return out


def _messages(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, sender, content, metadata, timestamp, ts_us, span_id FROM messages "
        "WHERE conversation = ?",
        (pk,),
    ).fetchall()
    return [
        {
            "type": "message",
            "id": r["id"],
            "sender": r["sender"],
            "content": r["content"],
            "metadata": loads(r["metadata"]),
            "timestamp": r["timestamp"],
            "span_id": r["span_id"],
            "_ts_us": r["ts_us"],
        }
        for r in rows
    ]


def _actions(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    # Synthetic legacy ``token_usage`` actions appear as their token_usage rows.
    rows = conn.execute(
        "SELECT * FROM actions WHERE conversation = ? AND is_token_usage = 0", (pk,)
    ).fetchall()
    return [
        {
            "type": "action",
            "id": r["id"],
            "action_name": r["action_name"],
            "started_at": r["started_at"],
            "ended_at": r["ended_at"],
            "duration_ms": r["duration_ms"],
            "tools_used": loads(r["tools_used"]),
            "response": r["response"],
            "error_msg": r["error_msg"],
            "status": r["status"],
            "metadata": loads(r["metadata"]),
            "timestamp": r["timestamp"],
            "span_id": r["span_id"],
            "_ts_us": r["ts_us"],
        }
        for r in rows
    ]


def _buttons(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM buttons WHERE conversation = ?", (pk,)).fetchall()
    return [
        {
            "type": "button",
            "id": r["id"],
            "button_event": r["button_event"],
            "label": r["label"],
            "value": r["value"],
            "metadata": loads(r["metadata"]),
            "timestamp": r["timestamp"],
            "span_id": r["span_id"],
            "_ts_us": r["ts_us"],
        }
        for r in rows
    ]


def attachments(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    """Attachment groups with their files (no bytes); ``_ts_us`` is a sort key."""
    rows = conn.execute("SELECT * FROM attachments WHERE conversation = ?", (pk,)).fetchall()
    out = []
    for r in rows:
        files = conn.execute(
            "SELECT id, filename, mime_type, size, data IS NOT NULL AS stored "
            "FROM attachment_files WHERE attachment = ? ORDER BY position",
            (r["id"],),
        ).fetchall()
        out.append(
            {
                "type": "attachment",
                "id": r["id"],
                "sender": r["sender"],
                "mode": r["mode"],
                "message": r["message"],
                "metadata": loads(r["metadata"]),
                "origin": r["origin"],
                "timestamp": r["timestamp"],
                "span_id": r["span_id"],
                "_ts_us": r["ts_us"],
                "files": [
                    {
                        "id": f["id"],
                        "filename": f["filename"],
                        "mime_type": f["mime_type"],
                        "size": f["size"],
                        "downloadable": bool(f["stored"]),
                    }
                    for f in files
                ],
            }
        )
    return out


def _token_usage(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM token_usage WHERE conversation = ?", (pk,)).fetchall()
    return [
        {
            "type": "token_usage",
            "id": r["id"],
            **{k: r[k] for k in _TOKEN_KEYS},
            "model": r["model"],
            "system": r["system"],
            "origin": r["origin"],
            "timestamp": r["timestamp"],
            "span_id": r["span_id"],
            "_ts_us": r["ts_us"],
        }
        for r in rows
    ]


def _feedbacks(conn: sqlite3.Connection, pk: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, kind, sentiment, comment, metadata, extra, route, created_at FROM feedbacks "
        "WHERE conversation = ? ORDER BY id",
        (pk,),
    ).fetchall()
    return [
        {
            "id": r["id"],
            "kind": r["kind"],
            "sentiment": r["sentiment"],
            "comment": r["comment"],
            "metadata": loads(r["metadata"]),
            "extra": loads(r["extra"]),
            "route": r["route"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def get_attachment(conn: sqlite3.Connection, file_pk: int) -> tuple[str, str, bytes] | None:
    row = conn.execute(
        "SELECT filename, mime_type, data FROM attachment_files WHERE id = ?", (file_pk,)
    ).fetchone()
    if row is None or row["data"] is None:
        return None
    return (
        str(row["filename"]),
        str(row["mime_type"] or "application/octet-stream"),
        bytes(row["data"]),
    )
