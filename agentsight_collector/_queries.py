"""Read queries: conversation and feedback lists, one transcript, attachment bytes."""

from __future__ import annotations

import sqlite3
from typing import Any

from agentsight_async._store import FieldValidationError, NotFoundError, loads

from ._filters import ConversationFilters, FeedbackFilters, register_functions

MAX_PAGE_SIZE = 1000

_CONVERSATION_COLUMNS = (
    "id, conversation_id, name, customer_id, customer_ip_address, device, source, language, "
    "environment, metadata, is_used, is_marked, deleted_at, started_at, last_activity, "
    "created_at, updated_at"
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
_FEEDBACK_COLUMNS = (
    "f.id, f.conversation, f.kind, f.sentiment, f.comment, f.metadata, f.extra, f.route, "
    "f.source, f.created_at, c.conversation_id AS conversation_id"
)
_FEEDBACK_SOURCE = "feedbacks f LEFT JOIN conversations c ON c.id = f.conversation"


def _paginate(
    conn: sqlite3.Connection,
    source: str,
    where: tuple[str, list[Any]],
    *,
    columns: str,
    order: str,
    page: int,
    page_size: int,
) -> tuple[dict[str, Any], list[sqlite3.Row]]:
    """Count and fetch one page of ``SELECT columns FROM source WHERE ...``.

    Returns the envelope without ``results`` - DRF's ``count``, ``next``,
    ``previous`` plus the backend's ``page_size``, ``total_pages``,
    ``current_page``; ``next``/``previous`` are page numbers here (the app
    makes URLs) - and the page's rows.

    Raises:
        NotFoundError: *page* is below 1 or past the last page (DRF's ``Invalid page.``).
        FieldValidationError: *page_size* outside 1..:data:`MAX_PAGE_SIZE`.
    """
    if page < 1:
        raise NotFoundError("Invalid page.")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise FieldValidationError({"page_size": [f"Must be between 1 and {MAX_PAGE_SIZE}."]})
    clause, params = where
    register_functions(conn)
    count = int(conn.execute(f"SELECT COUNT(*) FROM {source} WHERE {clause}", params).fetchone()[0])
    if page > 1 and (page - 1) * page_size >= count:
        raise NotFoundError("Invalid page.")
    rows = conn.execute(
        f"SELECT {columns} FROM {source} WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, page_size, (page - 1) * page_size),
    ).fetchall()
    envelope: dict[str, Any] = {
        "count": count,
        "next": page + 1 if page * page_size < count else None,
        "previous": page - 1 if page > 1 else None,
        "page_size": page_size,
        "total_pages": max(1, -(-count // page_size)),
        "current_page": page,
    }
    return envelope, rows


def list_conversations(
    conn: sqlite3.Connection,
    filters: ConversationFilters,
    *,
    page: int,
    page_size: int,
    full: bool,
) -> dict[str, Any]:
    """A page of conversations, newest activity first (see :func:`_paginate`).

    With *full* each row also carries what :func:`get_conversation` adds
    (``transcript``, ``messages``, ``feedbacks``), as the backend's default
    ``full=true`` does.
    """
    envelope, rows = _paginate(
        conn,
        "conversations c",
        filters.where(),
        columns=", ".join(f"c.{name.strip()}" for name in _CONVERSATION_COLUMNS.split(",")),
        order="c.last_activity_us DESC, c.id DESC",
        page=page,
        page_size=page_size,
    )
    summaries = [_conversation_summary(conn, row) for row in rows]
    envelope["results"] = [_add_transcript(conn, s) for s in summaries] if full else summaries
    return envelope


def list_feedbacks(
    conn: sqlite3.Connection, filters: FeedbackFilters, *, page: int, page_size: int
) -> dict[str, Any]:
    """A page of feedback, newest first, with ``counts: {"all": N}`` as 0.1.4 reads it."""
    envelope, rows = _paginate(
        conn,
        _FEEDBACK_SOURCE,
        filters.where(),
        columns=_FEEDBACK_COLUMNS,
        order="f.id DESC",
        page=page,
        page_size=page_size,
    )
    envelope["counts"] = {"all": envelope["count"]}
    envelope["results"] = [_feedback(row) for row in rows]
    return envelope


def get_feedback(conn: sqlite3.Connection, pk: int) -> dict[str, Any] | None:
    """Feedback *pk* as the list shows it, or ``None``."""
    row = conn.execute(f"SELECT {_FEEDBACK_COLUMNS} FROM {_FEEDBACK_SOURCE} WHERE f.id = ?", (pk,))
    row = row.fetchone()
    return None if row is None else _feedback(row)


def _feedback(row: sqlite3.Row) -> dict[str, Any]:
    extra = loads(row["extra"]) or {}
    return {
        "id": row["id"],
        "kind": row["kind"],
        "sentiment": row["sentiment"],
        "comment": row["comment"],
        "source": row["source"],
        "conversation": row["conversation"],
        "conversation_id": row["conversation_id"],
        "message": extra.get("message"),
        "topic": extra.get("topic"),
        "reason": extra.get("reason"),
        "agent": extra.get("agent"),
        "environment": extra.get("environment"),
        "metadata": loads(row["metadata"]),
        "extra": extra or None,
        "route": row["route"],
        "created_at": row["created_at"],
    }


def _conversation_summary(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    pk = int(row["id"])
    out = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    out["metadata"] = loads(row["metadata"])
    out["is_used"] = bool(row["is_used"])
    out["is_marked"] = bool(row["is_marked"])
    out["is_deleted"] = row["deleted_at"] is not None
    out["message_count"] = int(
        conn.execute("SELECT COUNT(*) FROM messages WHERE conversation = ?", (pk,)).fetchone()[0]
    )
    sums = conn.execute(
        f"SELECT {_USAGE_SUM_SQL} FROM token_usage WHERE conversation = ?", (pk,)
    ).fetchone()
    out["token_usage"] = {key: int(value) for key, value in zip(_TOKEN_KEYS, sums, strict=True)}
    out["total_tokens"] = out["token_usage"]["total_tokens"]
    return out


def lookup(
    conn: sqlite3.Connection, agent_id: int, conversation_id: str, *, include_deleted: bool
) -> int | None:
    row = conn.execute(
        "SELECT id FROM conversations WHERE agent_id = ? AND conversation_id = ?"
        + ("" if include_deleted else " AND deleted_at IS NULL"),
        (agent_id, conversation_id),
    ).fetchone()
    return None if row is None else int(row[0])


def get_conversation(
    conn: sqlite3.Connection, pk: int, *, full: bool = True
) -> dict[str, Any] | None:
    """Conversation *pk* (deleted or not); with *full*, its transcript too."""
    row = conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (pk,)
    ).fetchone()
    if row is None:
        return None
    out = _conversation_summary(conn, row)
    return _add_transcript(conn, out) if full else out


def _add_transcript(conn: sqlite3.Connection, out: dict[str, Any]) -> dict[str, Any]:
    pk = int(out["id"])
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
        f"SELECT {_FEEDBACK_COLUMNS} FROM {_FEEDBACK_SOURCE} "
        "WHERE f.conversation = ? ORDER BY f.id",
        (pk,),
    ).fetchall()
    return [_feedback(r) for r in rows]


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
