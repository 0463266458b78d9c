"""The SQLite store: one file, written in-process or behind the local collector.

Standard library plus ``pydantic_core`` and ``orjson`` (SDK dependencies), on purpose: the
SDK's ``sqlite:///path`` exporter writes through :class:`Store` in-process,
where starlette and uvicorn are not installed, and the collector
(``agentsight_collector.Storage``) is this class plus its read queries.

Threading model.  Each thread gets its own connection (WAL lets readers run
beside a writer), and writes are serialised by one lock per ``Store`` and
run as ``BEGIN IMMEDIATE`` transactions - one per REST item, one per ingest
request.  ``busy_timeout`` covers the remaining case of another
*process* writing the same file.  The collector calls these methods from a
threadpool; none of them may be called from an event loop directly.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from . import _ingest, _manage, _schema, _validate, _writes
from ._errors import FieldValidationError
from ._rows import DEFAULT_AGENT_ID
from ._timeutil import now_iso

MAX_IDEMPOTENCY_KEY = 255
#: Uploaded files: ``(filename, mime_type or None, bytes)``.
Files = list[tuple[str, str | None, bytes]]

_S = TypeVar("_S", bound="Store")


class Store:
    """Transcripts in one SQLite file: the REST and ingest writes, with idempotency.

    Each ``create_*`` method is one legacy REST route: *data* is the request's
    JSON body, *idempotency_key* its ``Idempotency-Key`` header (a repeated key
    answers the first response again and writes nothing), and the answer is
    the route's 201 body - the new row's ``id`` and a few fields.  A refused
    body raises :class:`FieldValidationError` (its ``body`` is the 400 body)
    and writes nothing; a reference to a message elsewhere raises
    :class:`NotFoundError`.

    Args:
        path: the SQLite file (created and migrated to the latest schema), or
            ``":memory:"`` for one in-memory database shared by every thread.

    Raises:
        SchemaVersionError: the file was written by a newer schema.
    """

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
        """Close every connection this store opened, from any thread.

        The store cannot be used afterwards.
        """
        with self._connections_lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._memory and self._connections:
            conn = self._connections[0]  # one shared in-memory database
        if conn is not None:
            return conn
        with self._connections_lock:
            if self._closed:
                raise RuntimeError("store is closed")
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
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection holding one consistent snapshot, for multi-statement reads.

        Yields:
            This thread's connection; do not write through it.
        """
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
        """Apply one ``POST /api/ingest/`` payload.

        The whole payload is validated first; then it is written in one
        transaction.  Spans already stored for a conversation are counted in
        ``duplicates`` and skipped.

        Args:
            payload: the parsed request body (``{"conversations": [...]}``).
            agent_id: the agent the conversations belong to.

        Returns:
            The 201 body: ``{"accepted", "duplicates", "conversations": [...]}``.

        Raises:
            IngestValidationError: a block is invalid; nothing was written (its
                ``body`` is the protocol's §3.5 400 body).
        """
        blocks = _validate.ingest(payload)
        now = now_iso()
        with self._write() as conn:
            results = _ingest.apply(conn, agent_id, blocks, now=now)
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
        """``POST /api/conversations/``: create or update on ``conversation_id``.

        Args:
            data: the request body (``conversation_id``, ``name``, ``customer_id``
                ... ``is_used``).
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation_id", "name", "environment", "is_used", "created"}``.

        Raises:
            FieldValidationError: a field is invalid (the 400 body names it).
            NotFoundError: a referenced conversation or message does not exist.
        """
        valid = _validate.conversation(data)
        return self._idempotent(
            "conversations",
            idempotency_key,
            lambda conn: _writes.conversation(conn, DEFAULT_AGENT_ID, valid),
        )

    def create_message(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/track/``: one user or agent message.

        Args:
            data: the request body (``conversation`` or ``conversation_id``,
                ``sender``, ``content``, ``timestamp``, ``metadata``).
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation", "sender", "timestamp"}``.

        Raises:
            FieldValidationError: a field is invalid (the 400 body names it).
            NotFoundError: a referenced conversation or message does not exist.
        """
        valid = _validate.message(data)
        return self._idempotent(
            "track", idempotency_key, lambda conn: _writes.message(conn, DEFAULT_AGENT_ID, valid)
        )

    def create_action(
        self, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``POST /api/action_logs/``; a synthetic ``token_usage`` action also records usage.

        A ``token_usage`` action sent *without* an ``Idempotency-Key`` is read as the
        0.0.44 client's cumulative, re-sent counters (only their growth counts); one
        sent *with* a key - as our SDK does, per tracked call - is one call's usage.
        The published legacy client never sends the header.

        Args:
            data: the request body (``action_name``, ``started_at``, ``ended_at``,
                ``duration_ms``, ``tools_used``, ``response``, ``error_msg``,
                ``metadata``).
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation", "action_name"}``.

        Raises:
            FieldValidationError: a field is invalid (the 400 body names it).
            NotFoundError: a referenced conversation or message does not exist.
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
        """``POST /api/buttons/``: one button click.

        Args:
            data: the request body (``button_event``, ``label``, ``value``,
                ``metadata``).
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation"}``.

        Raises:
            FieldValidationError: a field is invalid (the 400 body names it).
            NotFoundError: a referenced conversation or message does not exist.
        """
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

        Args:
            data: with *files* ``None``, the JSON body (base64 ``attachments``,
                standalone or with a ``message``); with *files*, the multipart text
                parts.
            files: the multipart file parts, as ``(filename, mime_type, bytes)``.
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation", "message", "files": [{"id", "filename", ...}]}``.

        Raises:
            FieldValidationError: a field is invalid (the 400 body names it).
            NotFoundError: a referenced conversation or message does not exist.
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
        source: str = "customer",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/feedbacks/`` or the legacy ``POST /api/conversation-feedbacks/``.

        Args:
            data: the request body (``conversation``, ``sentiment``, ``comment`` ...).
            route: ``"feedbacks"`` or ``"conversation-feedbacks"``.
            source: ``"customer"`` (sent through the API, what an end user said) or
                ``"platform"`` (left on the collector's pages).
            idempotency_key: the request's ``Idempotency-Key``: a repeated key
                returns the first answer and writes nothing.

        Returns:
            ``{"id", "conversation", "kind", "sentiment", "source"}``.

        Raises:
            ValueError: *route* or *source* is unknown.
            FieldValidationError: a field is invalid.
            NotFoundError: the conversation does not exist.
        """
        if route not in ("feedbacks", "conversation-feedbacks"):
            raise ValueError(f"unknown feedback route {route!r}")
        if source not in _validate.FEEDBACK_SOURCES:
            raise ValueError(f"unknown feedback source {source!r}")
        valid = _validate.feedback(data, route=route)
        return self._idempotent(
            route,
            idempotency_key,
            lambda conn: _writes.feedback(
                conn, DEFAULT_AGENT_ID, valid, route=route, source=source
            ),
        )

    # -- managing conversations ------------------------------------------------------

    def rename_conversation(self, pk: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /api/conversations/{pk}/rename/``: ``{"name"}`` (trimmed, 1-255 characters).

        Args:
            pk: the conversation's pk.
            data: ``{"name": ...}``.

        Returns:
            The conversation's management view: ``id``, ``conversation_id``,
            ``name``, ``customer_id``, ``device``, ``language``, ``metadata``,
            ``environment``, ``is_marked``, ``is_deleted``, ``deleted_at``,
            ``updated_at``.

        Raises:
            FieldValidationError: a bad body (400).
            NotFoundError: no conversation *pk* (404).
        """
        return self._manage(pk, _validate.rename(data))

    def mark_conversation(self, pk: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/conversations/{pk}/mark/``: ``{"is_marked": bool}``.

        Args:
            pk: the conversation's pk.
            data: ``{"is_marked": True}`` or ``False``.

        Returns:
            The conversation's management view: ``id``, ``conversation_id``,
            ``name``, ``customer_id``, ``device``, ``language``, ``metadata``,
            ``environment``, ``is_marked``, ``is_deleted``, ``deleted_at``,
            ``updated_at``.

        Raises:
            FieldValidationError: a bad body (400).
            NotFoundError: no conversation *pk* (404).
        """
        return self._manage(pk, _validate.mark(data))

    def update_conversation(self, pk: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /api/conversations/{pk}/update/``: several fields at once.

        Any of ``name``, ``is_marked``, ``customer_id``, ``device``, ``language``,
        ``metadata``; ``null`` clears the last four, and ``metadata`` is replaced
        whole.

        Args:
            pk: the conversation's pk.
            data: the fields to change.

        Returns:
            The conversation's management view: ``id``, ``conversation_id``,
            ``name``, ``customer_id``, ``device``, ``language``, ``metadata``,
            ``environment``, ``is_marked``, ``is_deleted``, ``deleted_at``,
            ``updated_at``.

        Raises:
            FieldValidationError: a bad value, a field that cannot be updated, or an
                empty body (400).
            NotFoundError: no conversation *pk* (404).
        """
        return self._manage(pk, _validate.conversation_update(data))

    def _manage(self, pk: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            return _manage.set_fields(conn, DEFAULT_AGENT_ID, pk, fields)

    def delete_conversation(self, pk: int) -> dict[str, Any]:
        """``DELETE /api/conversations/{pk}/delete/``: soft delete.

        The conversation is hidden from listings and ``lookup`` until restored; it
        stays readable by pk, and tracking into it is still stored (it stays
        deleted). Deleting twice keeps the first ``deleted_at``.

        Args:
            pk: the conversation's pk.

        Returns:
            The management view (``is_deleted`` true).

        Raises:
            NotFoundError: no conversation *pk* (404).
        """
        with self._write() as conn:
            return _manage.set_deleted(conn, DEFAULT_AGENT_ID, pk, True)

    def restore_conversation(self, pk: int) -> dict[str, Any]:
        """Undo :meth:`delete_conversation` (the collector's pages offer it).

        Args:
            pk: the conversation's pk.

        Returns:
            The management view (``is_deleted`` false).

        Raises:
            NotFoundError: no conversation *pk* (404).
        """
        with self._write() as conn:
            return _manage.set_deleted(conn, DEFAULT_AGENT_ID, pk, False)
