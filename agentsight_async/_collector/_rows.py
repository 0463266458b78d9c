"""Row helpers shared by the REST writes and the ingest projection.

Everything here runs inside a write transaction opened by :class:`Storage`;
nothing commits on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from . import _timeutil
from ._errors import FieldValidationError, NotFoundError
from ._validate import DEFAULT_ENVIRONMENT

#: The one agent this collector serves (``GET /api/me/`` reports it).
DEFAULT_AGENT_ID = 1


def dumps(value: Any) -> str | None:
    """JSON text for a column; ``None`` stays SQL NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def new_id(conn: sqlite3.Connection, kind: str) -> int:
    """Take the next id of the shared sequence (see ``_schema``)."""
    cur = conn.execute("INSERT INTO object_ids (kind) VALUES (?)", (kind,))
    assert cur.lastrowid is not None
    return cur.lastrowid


def upsert_conversation(
    conn: sqlite3.Connection,
    agent_id: int,
    conversation_id: str,
    fields: Mapping[str, Any],
    *,
    first: tuple[str, int],
    last: tuple[str, int] | None = None,
    used: bool,
    touch_existing: bool = True,
) -> tuple[int, bool]:
    """Create or update a conversation on ``(agent_id, conversation_id)``.

    Fields present in *fields* overwrite; absent ones are kept.  ``is_used``
    only ever goes from false to true, so a late ``initialize_conversation``
    (``is_used: false``) cannot downgrade an engaged conversation.  *first*
    and *last* widen the conversation's time span.  Returns ``(pk, created)``.
    """
    last = last or first
    row = conn.execute(
        "SELECT id FROM conversations WHERE agent_id = ? AND conversation_id = ?",
        (agent_id, conversation_id),
    ).fetchone()
    now = _timeutil.now_iso()
    values = {k: (dumps(v) if k == "metadata" else v) for k, v in fields.items()}
    if row is None:
        pk = new_id(conn, "conversation")
        values.setdefault("environment", DEFAULT_ENVIRONMENT)
        columns = {
            "id": pk,
            "agent_id": agent_id,
            "conversation_id": conversation_id,
            **values,
            "is_used": int(used),
            "started_at": first[0],
            "started_us": first[1],
            "last_activity": last[0],
            "last_activity_us": last[1],
            "created_at": now,
            "updated_at": now,
        }
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        conn.execute(
            f"INSERT INTO conversations ({names}) VALUES ({marks})", tuple(columns.values())
        )
        return pk, True
    pk = int(row[0])
    if values:
        assignments = ", ".join(f"{k} = ?" for k in values)
        conn.execute(
            f"UPDATE conversations SET {assignments}, updated_at = ? WHERE id = ?",
            (*values.values(), now, pk),
        )
    if touch_existing:
        touch(conn, pk, first, last, used=used)
    elif used:
        conn.execute("UPDATE conversations SET is_used = 1 WHERE id = ?", (pk,))
    return pk, False


def touch(
    conn: sqlite3.Connection,
    pk: int,
    first: tuple[str, int],
    last: tuple[str, int] | None = None,
    *,
    used: bool,
) -> None:
    """Widen the conversation's time span and maybe mark it used."""
    last = last or first
    conn.execute(
        """
        UPDATE conversations SET
            started_at = CASE WHEN ? < started_us THEN ? ELSE started_at END,
            started_us = MIN(started_us, ?),
            last_activity = CASE WHEN ? > last_activity_us THEN ? ELSE last_activity END,
            last_activity_us = MAX(last_activity_us, ?),
            is_used = MAX(is_used, ?)
        WHERE id = ?
        """,
        (first[1], first[0], first[1], last[1], last[0], last[1], int(used), pk),
    )


def resolve_conversation(
    conn: sqlite3.Connection,
    agent_id: int,
    ref: Mapping[str, Any],
    *,
    at: tuple[str, int],
    used: bool,
    message_pk: int | None = None,
    touch_times: bool = True,
) -> int:
    """The conversation pk an item belongs to.

    Precedence: the ``conversation`` pk when given; else the conversation of
    the linked ``message``; else ``conversation_id``, creating the row when it
    does not exist yet (legacy items after a failed create carry only the
    business id).  A linked message must belong to the resolved conversation.
    """
    pk: int | None = ref.get("pk")
    if pk is not None:
        row = conn.execute(
            "SELECT id FROM conversations WHERE id = ? AND agent_id = ?", (pk, agent_id)
        ).fetchone()
        if row is None:
            raise FieldValidationError(
                {"conversation": [f'Invalid pk "{pk}" - object does not exist.']}
            )
    elif message_pk is not None:
        row = conn.execute(
            "SELECT m.conversation FROM messages m JOIN conversations c ON c.id = m.conversation "
            "WHERE m.id = ? AND c.agent_id = ?",
            (message_pk, agent_id),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"Message {message_pk} not found.")
        pk = int(row[0])
    else:
        conversation_id = ref.get("conversation_id")
        if not conversation_id:
            raise FieldValidationError(
                {"conversation": ["Either 'conversation' (pk) or 'conversation_id' is required."]}
            )
        pk, _ = upsert_conversation(
            conn, agent_id, conversation_id, {}, first=at, used=used, touch_existing=touch_times
        )
        return pk
    if message_pk is not None:
        owner = conn.execute("SELECT conversation FROM messages WHERE id = ?", (message_pk,))
        found = owner.fetchone()
        if found is None or int(found[0]) != pk:
            raise NotFoundError(f"Message {message_pk} does not belong to conversation {pk}.")
    if touch_times:
        touch(conn, pk, at, used=used)
    return pk


def conversation_id_of(conn: sqlite3.Connection, pk: int) -> str:
    row = conn.execute("SELECT conversation_id FROM conversations WHERE id = ?", (pk,)).fetchone()
    return str(row[0])


def insert_token_usage(
    conn: sqlite3.Connection,
    conversation: int,
    counts: Mapping[str, int],
    *,
    model: str | None,
    system: str | None,
    origin: str,
    at: tuple[str, int],
    action: int | None = None,
    span_id: str | None = None,
) -> int:
    pk = new_id(conn, "token_usage")
    conn.execute(
        """
        INSERT INTO token_usage (id, conversation, input_tokens, output_tokens, embedding_tokens,
            cache_read_tokens, cache_write_tokens, total_tokens, model, system, origin, action,
            timestamp, ts_us, span_id, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            pk,
            conversation,
            counts.get("input_tokens", 0),
            counts.get("output_tokens", 0),
            counts.get("embedding_tokens", 0),
            counts.get("cache_read_tokens", 0),
            counts.get("cache_write_tokens", 0),
            counts.get("total_tokens", 0),
            model,
            system,
            origin,
            action,
            at[0],
            at[1],
            span_id,
            _timeutil.now_iso(),
        ),
    )
    return pk


def insert_attachment(
    conn: sqlite3.Connection,
    conversation: int,
    *,
    message: int | None,
    sender: str,
    mode: str | None,
    metadata: Any,
    origin: str,
    at: tuple[str, int],
    files: list[tuple[str, str | None, int | None, bytes | None]],
    span_id: str | None = None,
) -> tuple[int, list[int]]:
    """One attachment group and its files ``(filename, mime, size, bytes | None)``."""
    pk = new_id(conn, "attachment")
    conn.execute(
        """
        INSERT INTO attachments (id, conversation, message, sender, mode, metadata, origin,
            timestamp, ts_us, span_id, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            pk,
            conversation,
            message,
            sender,
            mode,
            dumps(metadata),
            origin,
            at[0],
            at[1],
            span_id,
            _timeutil.now_iso(),
        ),
    )
    file_ids = []
    for position, (filename, mime, size, data) in enumerate(files):
        cur = conn.execute(
            "INSERT INTO attachment_files (attachment, position, filename, mime_type, size, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (pk, position, filename, mime, size, data),
        )
        assert cur.lastrowid is not None
        file_ids.append(cur.lastrowid)
    return pk, file_ids


def attachment_filenames(conn: sqlite3.Connection, attachment: int) -> list[str]:
    rows = conn.execute(
        "SELECT filename FROM attachment_files WHERE attachment = ? ORDER BY position",
        (attachment,),
    ).fetchall()
    return sorted(str(r[0]) for r in rows)
