"""Row helpers shared by the REST writes and the ingest projection.

Everything here runs inside a write transaction opened by :class:`Store`;
nothing commits on its own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic_core import to_json

from . import _timeutil
from ._errors import FieldValidationError, NotFoundError
from ._validate import DEFAULT_ENVIRONMENT

#: The one agent a local store holds (the collector's ``GET /api/me/`` reports it).
DEFAULT_AGENT_ID = 1


def dumps(value: Any) -> str | None:
    """JSON text for a column; ``None`` stays SQL NULL."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def dumps_json(value: Any) -> str:
    """Compact JSON text of a parsed JSON value, fast (the ingest span archive).

    ``orjson`` (an SDK dependency) writes a span in about a quarter of
    ``pydantic_core.to_json``'s time, byte for byte the same text.  What it
    refuses (an integer beyond 64 bits, a lone surrogate) goes through
    ``to_json`` as before, and what that refuses through :func:`dumps`, so this
    never fails where ``dumps`` would not.  One difference remains: an
    infinity (a body's overflowing literal such as ``1E400``) is written as
    ``null`` where ``to_json`` wrote ``Infinity``, which is not JSON.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        return to_json(value).decode()
    except (ValueError, TypeError, UnicodeDecodeError):  # pragma: no cover - exotic input
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def loads(value: str | None) -> Any:
    """The value of a JSON text column; SQL NULL is ``None``."""
    return None if value is None else json.loads(value)


def new_id(conn: sqlite3.Connection, kind: str) -> int:
    """Take the next id of the shared sequence (see ``_schema``)."""
    cur = conn.execute("INSERT INTO object_ids (kind) VALUES (?)", (kind,))
    assert cur.lastrowid is not None
    return cur.lastrowid


def last_id(conn: sqlite3.Connection) -> int:
    """The highest id the shared sequence has handed out (0 for a fresh database).

    ``object_ids`` is ``AUTOINCREMENT``, so ``sqlite_sequence`` holds the largest
    id ever used, also for rows inserted with an explicit id; the ``max(id)``
    term only guards a hand-edited file.  Inside a write transaction nobody
    else can take ids, so a caller may hand out ``last_id + 1, + 2, ...`` itself
    and record the highest with :func:`advance_sequence` before anyone calls
    :func:`new_id` again.
    """
    row = conn.execute("SELECT " + LAST_ID_SQL).fetchone()
    return int(row[0])


#: A SQL expression: the highest id the shared sequence has handed out (see :func:`last_id`).
LAST_ID_SQL = (
    "max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'object_ids'), 0), "
    "COALESCE((SELECT max(id) FROM object_ids), 0))"
)


def advance_sequence(conn: sqlite3.Connection, last: int) -> None:
    """Move the shared sequence past *last*, the highest id a caller handed out itself.

    Ingest numbers its rows ``last_id + 1, + 2, ...`` and, instead of an
    ``object_ids`` row per id, records the highest in ``sqlite_sequence`` -
    where ``AUTOINCREMENT`` looks, so :func:`new_id` continues after it.
    """
    cur = conn.execute(
        "UPDATE sqlite_sequence SET seq = ? WHERE name = 'object_ids' AND seq < ?", (last, last)
    )
    if cur.rowcount == 0:
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'object_ids', ? "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'object_ids')",
            (last,),
        )


INSERT_MESSAGE = (
    "INSERT INTO messages (id, conversation, sender, content, metadata, timestamp, ts_us, "
    "span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ACTION = """
    INSERT INTO actions (id, conversation, action_name, started_at, ended_at, duration_ms,
        tools_used, response, error_msg, status, metadata, is_token_usage, timestamp, ts_us,
        span_id, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_BUTTON = (
    "INSERT INTO buttons (id, conversation, button_event, label, value, metadata, timestamp, "
    "ts_us, span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_USAGE = """
    INSERT INTO token_usage (id, conversation, input_tokens, output_tokens, embedding_tokens,
        cache_read_tokens, cache_write_tokens, total_tokens, model, system, origin, action,
        timestamp, ts_us, span_id, created_at, reasoning_tokens, duration_ms, streamed, error,
        requested_model, operation)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def insert_conversation(
    conn: sqlite3.Connection,
    pk: int,
    agent_id: int,
    conversation_id: str,
    values: dict[str, Any],
    *,
    used: bool,
    first: tuple[str, int],
    last: tuple[str, int],
    now: str,
) -> None:
    """INSERT a new conversation row (*values*: its fields, metadata already JSON)."""
    conn.execute(
        *conversation_insert(
            pk, agent_id, conversation_id, values, used=used, first=first, last=last, now=now
        )
    )


def conversation_insert(
    pk: int,
    agent_id: int,
    conversation_id: str,
    values: dict[str, Any],
    *,
    used: bool,
    first: tuple[str, int],
    last: tuple[str, int],
    now: str,
) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters of :func:`insert_conversation`, to run later.

    Conversations that set the same fields get the same statement, so a
    payload's new conversations go in with one ``executemany``.
    """
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
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO conversations ({names}) VALUES ({marks})", tuple(columns.values())


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
        insert_conversation(
            conn, pk, agent_id, conversation_id, values, used=used, first=first, last=last, now=now
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
    conn.execute(
        f"UPDATE conversations SET {TOUCH_ASSIGNMENTS} WHERE id = ?",
        (*touch_params(first, last, used), pk),
    )


#: The assignments of :func:`touch`; their parameters are :func:`touch_params`.
TOUCH_ASSIGNMENTS = (
    "started_at = CASE WHEN ? < started_us THEN ? ELSE started_at END, "
    "started_us = MIN(started_us, ?), "
    "last_activity = CASE WHEN ? > last_activity_us THEN ? ELSE last_activity END, "
    "last_activity_us = MAX(last_activity_us, ?), "
    "is_used = MAX(is_used, ?)"
)


def touch_params(
    first: tuple[str, int], last: tuple[str, int] | None, used: bool
) -> tuple[Any, ...]:
    last = last or first
    return (first[1], first[0], first[1], last[1], last[0], last[1], int(used))


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
    if pk is not None and message_pk is None and touch_times:
        # The common REST case in one statement: touch it, and the row count says it exists.
        cur = conn.execute(
            f"UPDATE conversations SET {TOUCH_ASSIGNMENTS} WHERE id = ? AND agent_id = ?",
            (*touch_params(at, None, used), pk, agent_id),
        )
        if cur.rowcount == 0:
            raise FieldValidationError(
                {"conversation": [f'Invalid pk "{pk}" - object does not exist.']}
            )
        return pk
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
    call: Mapping[str, Any] | None = None,
) -> int:
    pk = new_id(conn, "token_usage")
    conn.execute(
        INSERT_USAGE,
        token_usage_row(
            pk,
            conversation,
            counts,
            model=model,
            system=system,
            origin=origin,
            at=at,
            action=action,
            span_id=span_id,
            now=_timeutil.now_iso(),
            call=call,
        ),
    )
    return pk


def token_usage_row(
    pk: int,
    conversation: int,
    counts: Mapping[str, int],
    *,
    model: str | None,
    system: str | None,
    origin: str,
    at: tuple[str, int],
    action: int | None,
    span_id: str | None,
    now: str,
    call: Mapping[str, Any] | None = None,
) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_USAGE`.

    *call* holds what a model call adds (all optional): ``duration_ms``,
    ``streamed`` (bool), ``error``, ``requested_model``, ``operation``.
    """
    call = call or {}
    streamed = call.get("streamed")
    return (
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
        now,
        counts.get("reasoning_tokens", 0),
        call.get("duration_ms"),
        None if streamed is None else int(bool(streamed)),
        call.get("error"),
        call.get("requested_model"),
        call.get("operation"),
    )


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
