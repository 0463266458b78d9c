"""The collector's storage: one SQLite file, usable with or without a server.

Standard library only, on purpose: the SDK's ``sqlite:///path`` exporter calls
:class:`Storage` in-process, where starlette and uvicorn may not be installed.

Threading model.  Each thread gets its own connection (WAL lets readers run
beside a writer), and writes are serialised by one lock per ``Storage`` and
run as ``BEGIN IMMEDIATE`` transactions - one per REST item, one per ingest
conversation block.  ``busy_timeout`` covers the remaining case of another
*process* writing the same file.  The server calls these methods from a
threadpool; none of them may be called from an event loop directly.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from . import _ingest, _queries, _schema, _validate, _writes
from ._errors import (
    CollectorError,
    FieldValidationError,
    IngestValidationError,
    NotFoundError,
    SchemaVersionError,
)
from ._rows import DEFAULT_AGENT_ID
from ._timeutil import now_iso

__all__ = [
    "CollectorError",
    "FieldValidationError",
    "IngestValidationError",
    "NotFoundError",
    "SchemaVersionError",
    "Storage",
]

logger = logging.getLogger("agentsight_async.collector")

MAX_IDEMPOTENCY_KEY = 255
Files = list[tuple[str, str | None, bytes]]


class Storage:
    """Transcripts in SQLite: REST and ingest writes, idempotency, read queries."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._memory = self.path == ":memory:"
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self.schema_version = _schema.migrate(self._conn())

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this storage opened, from any thread."""
        with self._connections_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Storage({self.path!r})"

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._memory and self._connections:
            conn = self._connections[0]  # one shared in-memory database
        if conn is not None:
            return conn
        with self._connections_lock:
            if self._closed:
                raise RuntimeError("storage is closed")
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            conn.row_factory = sqlite3.Row
            _schema.configure(conn, wal=not self._memory)
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any exception."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for multi-statement reads."""
        conn = self._conn()
        if self._memory:
            with self._write_lock:
                yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    # -- ingest ------------------------------------------------------------------

    def ingest(
        self, payload: dict[str, Any], *, agent_id: int = DEFAULT_AGENT_ID
    ) -> dict[str, Any]:
        """Apply one ``POST /api/ingest/`` payload; return the 201 body.

        The whole payload is validated first; one bad block refuses all of it
        with :class:`IngestValidationError` (its ``body`` is the §3.5 400
        body).  Then each conversation block is one transaction.  Spans already
        stored for a conversation are counted in ``duplicates`` and skipped.
        """
        blocks = _validate.ingest(payload)
        now = now_iso()
        results = []
        for block in blocks:
            with self._write() as conn:
                results.append(_ingest.apply_block(conn, agent_id, block, now=now))
        return {
            "accepted": sum(r["accepted"] for r in results),
            "duplicates": sum(r["duplicates"] for r in results),
            "conversations": results,
        }

    # -- REST writes ---------------------------------------------------------------

    def _idempotent(
        self,
        route: str,
        idempotency_key: str | None,
        write: Callable[[sqlite3.Connection], dict[str, Any]],
    ) -> dict[str, Any]:
        """Run *write* once per ``(agent, route, Idempotency-Key)``.

        A repeated key answers the stored original response (same ``id``) and
        writes nothing - how a retried request stays a single row.
        """
        if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise FieldValidationError(
                {"Idempotency-Key": [f"Must be 1 to {MAX_IDEMPOTENCY_KEY} characters."]}
            )
        with self._write() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT response FROM idempotency_keys WHERE agent_id = ? AND route = ? "
                    "AND key = ?",
                    (DEFAULT_AGENT_ID, route, idempotency_key),
                ).fetchone()
                if row is not None:
                    stored: dict[str, Any] = json.loads(row[0])
                    return stored
            result = write(conn)
            if idempotency_key is not None:
                conn.execute(
                    "INSERT INTO idempotency_keys (agent_id, route, key, response, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (DEFAULT_AGENT_ID, route, idempotency_key, json.dumps(result), now_iso()),
                )
            return result

    def create_conversation(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/conversations/``: upsert on ``conversation_id``; returns ``{"id", ...}``."""
        valid = _validate.conversation(data)
        return self._idempotent(
            "conversations",
            idempotency_key,
            lambda conn: _writes.conversation(conn, DEFAULT_AGENT_ID, valid),
        )

    def create_message(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/track/``: one user or agent message."""
        valid = _validate.message(data)
        return self._idempotent(
            "track", idempotency_key, lambda conn: _writes.message(conn, DEFAULT_AGENT_ID, valid)
        )

    def create_action(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/action_logs/``; a synthetic ``token_usage`` action also records usage.

        A ``token_usage`` action sent *without* an ``Idempotency-Key`` is read as
        the 0.0.44 client's cumulative, re-sent counters (only their growth
        counts); one sent *with* a key - as our SDK does, per tracked call - is
        one call's usage.  The published legacy client never sends the header.
        """
        valid = _validate.action(data)
        cumulative = idempotency_key is None
        return self._idempotent(
            "action_logs",
            idempotency_key,
            lambda conn: _writes.action(
                conn, DEFAULT_AGENT_ID, valid, cumulative_tokens=cumulative
            ),
        )

    def create_button(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/buttons/``."""
        valid = _validate.button(data)
        return self._idempotent(
            "buttons", idempotency_key, lambda conn: _writes.button(conn, DEFAULT_AGENT_ID, valid)
        )

    def create_attachments(
        self,
        data: Mapping[str, Any],
        files: Files | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/attachments/`` in all four variants.

        With *files* ``None``, *data* is the JSON body (variants A and B, and the
        0.1.4 upload: base64 ``attachments``).  With *files* given, *data* holds
        the multipart text parts and *files* the ``(filename, mime, bytes)`` file
        parts (variants C and D).
        """
        if files is None:
            valid = _validate.attachments_json(data)
        else:
            text_parts = {k: v for k, v in data.items() if isinstance(v, str)}
            valid = _validate.attachments_form(text_parts, files)
        return self._idempotent(
            "attachments",
            idempotency_key,
            lambda conn: _writes.attachments(conn, DEFAULT_AGENT_ID, valid),
        )

    def create_feedback(
        self,
        data: Mapping[str, Any],
        *,
        route: str = "feedbacks",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Feedback; *route* is ``"feedbacks"`` or ``"conversation-feedbacks"`` (legacy)."""
        if route not in ("feedbacks", "conversation-feedbacks"):
            raise ValueError(f"unknown feedback route {route!r}")
        valid = _validate.feedback(data, route=route)
        return self._idempotent(
            route,
            idempotency_key,
            lambda conn: _writes.feedback(conn, DEFAULT_AGENT_ID, valid, route=route),
        )

    # -- reads -------------------------------------------------------------------------

    def lookup(self, conversation_id: str) -> int | None:
        """The pk of a conversation by its business id, or ``None``."""
        with self._read() as conn:
            return _queries.lookup(conn, DEFAULT_AGENT_ID, conversation_id)

    def list_conversations(
        self,
        *,
        conversation_id: str | None = None,
        customer_id: str | None = None,
        started_at_after: str | None = None,
        started_at_before: str | None = None,
        environment: str | None = None,
        name: str | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> dict[str, Any]:
        """A DRF-style page ``{"count", "next", "previous", "results"}``, newest activity first.

        ``next``/``previous`` are page numbers (or ``None``); the HTTP app turns
        them into URLs.  ``name`` matches case-insensitively as a substring.
        """
        with self._read() as conn:
            return _queries.list_conversations(
                conn,
                conversation_id=conversation_id,
                customer_id=customer_id,
                started_at_after=started_at_after,
                started_at_before=started_at_before,
                environment=environment,
                name=name,
                page=page,
                page_size=page_size,
            )

    def get_conversation(self, pk: int) -> dict[str, Any] | None:
        """A conversation with its ordered ``transcript`` (time, then insertion order)."""
        with self._read() as conn:
            return _queries.get_conversation(conn, pk)

    def list_attachments(self, pk: int) -> list[dict[str, Any]] | None:
        """Attachment groups of conversation *pk* (file descriptors, no bytes)."""
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (pk,)).fetchone() is None:
                return None
            groups = _queries.attachments(conn, pk)
        for group in groups:
            group.pop("_ts_us", None)
        return groups

    def get_attachment(self, pk: int) -> tuple[str, str, bytes] | None:
        """``(filename, mime_type, bytes)`` of attachment file *pk*, if its bytes are stored."""
        with self._read() as conn:
            return _queries.get_attachment(conn, pk)
