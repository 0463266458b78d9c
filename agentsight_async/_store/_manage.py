"""Managing conversations (protocol §2.3 "Other legacy REST routes"): the writes.

Rename, mark, update, soft delete and restore, each on validated data inside
one write transaction opened by :class:`Store`.  Every one answers the
conversation's management view (:func:`view`), so a client sees the effect
of its write - and both ids - without a second request.

Soft delete sets ``deleted_at``; nothing is removed.  A deleted conversation
is hidden from listings and ``lookup`` unless asked for, but keeps working by
pk (detail, rename, mark, update, restore), and tracking into it is still
stored: an agent that sends late events to a conversation someone deleted
loses nothing, and the conversation stays deleted until it is restored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from . import _timeutil
from ._errors import NotFoundError
from ._rows import dumps, loads

_VIEW_COLUMNS = (
    "id, conversation_id, name, customer_id, device, language, metadata, environment, "
    "is_marked, deleted_at, updated_at"
)


def view(conn: sqlite3.Connection, agent_id: int, pk: int) -> dict[str, Any]:
    """The fields a management route answers with.

    Raises:
        NotFoundError: no conversation *pk* for *agent_id* (404 ``Not found.``).
    """
    row = conn.execute(
        f"SELECT {_VIEW_COLUMNS} FROM conversations WHERE id = ? AND agent_id = ?",
        (pk, agent_id),
    ).fetchone()
    if row is None:
        raise NotFoundError("Not found.")
    out = {key: row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
    out["metadata"] = loads(row["metadata"])
    out["is_marked"] = bool(row["is_marked"])
    out["is_deleted"] = row["deleted_at"] is not None
    return out


def set_fields(
    conn: sqlite3.Connection, agent_id: int, pk: int, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Write validated *fields* (rename, mark, update) and answer the new view."""
    view(conn, agent_id, pk)  # 404 before anything is written
    values = {
        key: dumps(value) if key == "metadata" else int(value) if key == "is_marked" else value
        for key, value in fields.items()
    }
    assignments = "".join(f"{key} = ?, " for key in values)
    conn.execute(
        f"UPDATE conversations SET {assignments}updated_at = ? WHERE id = ?",
        (*values.values(), _timeutil.now_iso(), pk),
    )
    return view(conn, agent_id, pk)


def set_deleted(conn: sqlite3.Connection, agent_id: int, pk: int, deleted: bool) -> dict[str, Any]:
    """Soft delete (or restore) conversation *pk*; deleting twice keeps the first time."""
    view(conn, agent_id, pk)
    now = _timeutil.now_iso()
    if deleted:
        conn.execute(
            "UPDATE conversations SET deleted_at = COALESCE(deleted_at, ?), updated_at = ? "
            "WHERE id = ?",
            (now, now, pk),
        )
    else:
        conn.execute(
            "UPDATE conversations SET deleted_at = NULL, updated_at = ? WHERE id = ?", (now, pk)
        )
    return view(conn, agent_id, pk)
