"""The legacy per-item REST writes (protocol §2.3), on validated data.

Each function runs inside one write transaction and returns the 201 body.
The published clients read only ``id``; the rest is there for humans and tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from .._events import TOKEN_KEYS
from . import _rows, _timeutil
from ._rows import dumps, new_id


def _at(data: Mapping[str, Any]) -> tuple[str, int]:
    return str(data["timestamp"]), int(data["ts_us"])


def conversation(
    conn: sqlite3.Connection, agent_id: int, data: Mapping[str, Any]
) -> dict[str, Any]:
    pk, created = _rows.upsert_conversation(
        conn,
        agent_id,
        data["conversation_id"],
        data["fields"],
        first=_at(data),
        used=data["is_used"],
        touch_existing=data["timed"],
    )
    row = conn.execute(
        "SELECT conversation_id, name, environment, is_used FROM conversations WHERE id = ?", (pk,)
    ).fetchone()
    return {
        "id": pk,
        "conversation_id": row[0],
        "name": row[1],
        "environment": row[2],
        "is_used": bool(row[3]),
        "created": created,
    }


def message(conn: sqlite3.Connection, agent_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    at = _at(data)
    conv = _rows.resolve_conversation(conn, agent_id, data["ref"], at=at, used=True)
    pk = new_id(conn, "message")
    conn.execute(
        "INSERT INTO messages (id, conversation, sender, content, metadata, timestamp, ts_us, "
        "span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
        (
            pk,
            conv,
            data["sender"],
            data["content"],
            dumps(data["metadata"]),
            at[0],
            at[1],
            _timeutil.now_iso(),
        ),
    )
    return {"id": pk, "conversation": conv, "sender": data["sender"], "timestamp": at[0]}


def action(
    conn: sqlite3.Connection, agent_id: int, data: Mapping[str, Any], *, cumulative_tokens: bool
) -> dict[str, Any]:
    """``POST /api/action_logs/``; a synthetic ``token_usage`` action also records usage.

    *cumulative_tokens* says how to read a ``token_usage`` action's counters:
    as a legacy cumulative snapshot (0.0.44) or as one call's usage.
    """
    at = _at(data)
    conv = _rows.resolve_conversation(conn, agent_id, data["ref"], at=at, used=True)
    pk = new_id(conn, "action")
    tokens = data["tokens"]
    token_kind = 0 if tokens is None else (TOKENS_CUMULATIVE if cumulative_tokens else TOKENS_CALL)
    conn.execute(
        """
        INSERT INTO actions (id, conversation, action_name, started_at, ended_at, duration_ms,
            tools_used, response, error_msg, status, metadata, is_token_usage, timestamp, ts_us,
            span_id, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
        """,
        (
            pk,
            conv,
            data["action_name"],
            data["started_at"],
            data["ended_at"],
            data["duration_ms"],
            dumps(data["tools_used"]),
            data["response"],
            data["error_msg"],
            data["status"],
            dumps(data["metadata"]),
            token_kind,
            at[0],
            at[1],
            _timeutil.now_iso(),
        ),
    )
    if tokens is not None:
        counts = _snapshot_growth(conn, conv, pk, tokens) if cumulative_tokens else tokens
        if counts is not None:
            _record_action_tokens(conn, conv, pk, counts, data, at)
    return {"id": pk, "conversation": conv, "action_name": data["action_name"]}


#: ``actions.is_token_usage``: 0 a real action; 1 one call's usage; 2 a cumulative snapshot.
TOKENS_CALL = 1
TOKENS_CUMULATIVE = 2


def _snapshot_growth(
    conn: sqlite3.Connection, conv: int, action_pk: int, counts: Mapping[str, int]
) -> dict[str, int] | None:
    """The growth of a legacy cumulative snapshot since the conversation's previous one.

    0.0.44 sends its process-wide counters, cumulative and never reset, with
    every ``send_tracked_data()`` (protocol §2.3), so re-sent totals must not
    count twice.  A snapshot smaller than the previous one means the counters
    were reset; it counts in full.  ``None`` when nothing grew.
    """
    previous = conn.execute(
        "SELECT metadata FROM actions WHERE conversation = ? AND is_token_usage = ? AND id < ? "
        "ORDER BY id DESC LIMIT 1",
        (conv, TOKENS_CUMULATIVE, action_pk),
    ).fetchone()
    before = _rows.loads(previous[0]) if previous else {}
    snapshot = {k: int(counts.get(k, 0)) for k in TOKEN_KEYS}
    prior = {k: int(before.get(k, 0) or 0) for k in TOKEN_KEYS}
    if any(snapshot[k] < prior[k] for k in snapshot):
        prior = dict.fromkeys(prior, 0)
    delta = {k: snapshot[k] - prior[k] for k in snapshot if k in counts}
    return delta if any(delta.values()) else None


def _record_action_tokens(
    conn: sqlite3.Connection,
    conv: int,
    action_pk: int,
    counts: Mapping[str, int],
    action: Mapping[str, Any],
    at: tuple[str, int],
) -> None:
    """One ``token_usage`` row from a token-usage action's counters.

    ``prompt_tokens`` counts every input token; the row's ``input_tokens`` is
    the uncached part, as on an ingest ``llm`` span, so both paths store the
    same call alike.  What a captured call adds travels in the metadata (and
    its duration in the action's own ``duration_ms``).
    """
    metadata: Mapping[str, Any] = action["metadata"]
    prompt, completion = counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0)
    cache_read = counts.get("cache_read_tokens", 0)
    cache_write = counts.get("cache_write_tokens", 0)

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) else None

    streamed = metadata.get("streamed")
    _rows.insert_token_usage(
        conn,
        conv,
        {
            "input_tokens": max(prompt - cache_read - cache_write, 0),
            "output_tokens": completion,
            "embedding_tokens": counts.get("embedding_tokens", 0),
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "reasoning_tokens": counts.get("reasoning_tokens", 0),
            "total_tokens": counts.get("total_tokens", prompt + completion),
        },
        model=text("model"),
        system=text("system"),
        origin="action",
        at=at,
        action=action_pk,
        call={
            "duration_ms": action.get("duration_ms"),
            "streamed": streamed if isinstance(streamed, bool) else None,
            "error": text("error"),
            "requested_model": text("requested_model"),
            "operation": text("operation"),
        },
    )


def button(conn: sqlite3.Connection, agent_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    at = _at(data)
    conv = _rows.resolve_conversation(conn, agent_id, data["ref"], at=at, used=True)
    pk = new_id(conn, "button")
    conn.execute(
        "INSERT INTO buttons (id, conversation, button_event, label, value, metadata, timestamp, "
        "ts_us, span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
        (
            pk,
            conv,
            data["button_event"],
            data["label"],
            data["value"],
            dumps(data["metadata"]),
            at[0],
            at[1],
            _timeutil.now_iso(),
        ),
    )
    return {"id": pk, "conversation": conv}


def attachments(conn: sqlite3.Connection, agent_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """Variants A-D; also completes a descriptor-only ingest ``attachment`` span.

    0.1.4 uploads the bytes over REST *and* emits an ``attachment`` span
    (``mode=base64``) describing them.  Whichever arrives second is merged
    into the first, so the transcript shows one attachment with its bytes.
    """
    at = _at(data)
    conv = _rows.resolve_conversation(
        conn, agent_id, data["ref"], at=at, used=False, message_pk=data["message"]
    )
    files: list[tuple[str, str | None, bytes]] = data["files"]
    merged = _complete_span_descriptor(conn, conv, data, files)
    if merged is not None:
        pk, file_ids = merged
    else:
        pk, file_ids = _rows.insert_attachment(
            conn,
            conv,
            message=data["message"],
            sender=data["sender"],
            mode=data["mode"],
            metadata=data["metadata"],
            origin="upload",
            at=at,
            files=[(name, mime, len(raw), raw) for name, mime, raw in files],
        )
    return {
        "id": pk,
        "conversation": conv,
        "message": data["message"],
        "files": [
            {"id": fid, "filename": name, "mime_type": mime, "size": len(raw)}
            for fid, (name, mime, raw) in zip(file_ids, files, strict=True)
        ],
    }


def _complete_span_descriptor(
    conn: sqlite3.Connection,
    conv: int,
    data: Mapping[str, Any],
    files: list[tuple[str, str | None, bytes]],
) -> tuple[int, list[int]] | None:
    if data["mode"] != "base64":
        return None
    names = sorted(name for name, _, _ in files)
    candidates = conn.execute(
        "SELECT a.id FROM attachments a WHERE a.conversation = ? AND a.origin = 'span' "
        "AND a.mode = 'base64' AND a.sender = ? AND NOT EXISTS (SELECT 1 FROM attachment_files f "
        "WHERE f.attachment = a.id AND f.data IS NOT NULL) ORDER BY a.id",
        (conv, data["sender"]),
    ).fetchall()
    for (candidate,) in candidates:
        if _rows.attachment_filenames(conn, candidate) != names:
            continue
        file_ids = []
        for name, mime, raw in files:
            row = conn.execute(
                "SELECT id FROM attachment_files WHERE attachment = ? AND filename = ? "
                "AND data IS NULL ORDER BY position LIMIT 1",
                (candidate, name),
            ).fetchone()
            conn.execute(
                "UPDATE attachment_files SET data = ?, size = ?, mime_type = COALESCE(?, mime_type)"
                " WHERE id = ?",
                (raw, len(raw), mime, row[0]),
            )
            file_ids.append(int(row[0]))
        conn.execute(
            "UPDATE attachments SET origin = 'upload', message = COALESCE(?, message) WHERE id = ?",
            (data["message"], candidate),
        )
        return int(candidate), file_ids
    return None


def feedback(
    conn: sqlite3.Connection,
    agent_id: int,
    data: Mapping[str, Any],
    *,
    route: str,
    source: str = "customer",
) -> dict[str, Any]:
    conv: int | None = None
    ref = data["ref"]
    if ref["pk"] is not None or ref["conversation_id"] is not None or data["message"] is not None:
        conv = _rows.resolve_conversation(
            conn,
            agent_id,
            ref,
            at=_timeutil.now_at(),
            used=False,
            message_pk=data["message"],
            touch_times=False,
        )
    pk = new_id(conn, "feedback")
    extra = dict(data["extra"])
    if data["message"] is not None:
        extra["message"] = data["message"]
    conn.execute(
        "INSERT INTO feedbacks (id, conversation, kind, sentiment, comment, metadata, extra, route,"
        " source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            pk,
            conv,
            data["kind"],
            data["sentiment"],
            data["comment"],
            dumps(data["metadata"]),
            dumps(extra or None),
            route,
            source,
            _timeutil.now_iso(),
        ),
    )
    return {
        "id": pk,
        "conversation": conv,
        "kind": data["kind"],
        "sentiment": data["sentiment"],
        "source": source,
    }
