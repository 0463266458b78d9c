"""``Storage``: the SDK's SQLite store plus the collector's read queries.

Writing is :class:`agentsight_async._store.Store`'s job - the same code the
SDK's ``sqlite:///`` exporter runs in-process - so a file recorded without a
server reads back here exactly as if it had been sent to the collector.  This
module needs no starlette either: a recorded file can be read from Python
without the HTTP side.
"""

from __future__ import annotations

from typing import Any

from agentsight_async._store import DEFAULT_AGENT_ID, Store

from . import _queries


class Storage(Store):
    """Transcripts in SQLite: every write of :class:`Store`, and the read API's queries.

    Safe to share between threads.  Opening a file creates or migrates it.

    Args:
        path: the SQLite file, or ``":memory:"``.

    Raises:
        SchemaVersionError: the file was written by a newer schema.
    """

    def lookup(self, conversation_id: str) -> int | None:
        """The pk of the conversation *conversation_id*, or ``None`` if there is none."""
        with self.read() as conn:
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
        """One page of conversations, newest activity first.

        Args:
            conversation_id, customer_id, environment: exact matches.
            name: a case-insensitive substring of the name.
            started_at_after, started_at_before: ISO-8601 bounds on the start time.
            page, page_size: 1-based page number and its size (at most 1,000).

        Returns:
            A DRF-style page ``{"count", "next", "previous", "results"}``;
            ``next``/``previous`` are page numbers or ``None`` (the HTTP app
            turns them into URLs).

        Raises:
            FieldValidationError: a bad bound or page size.
            NotFoundError: *page* is past the last page.
        """
        with self.read() as conn:
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
        """Conversation *pk* with its ordered ``transcript`` (time, then insertion order).

        Returns:
            The conversation's fields, ``transcript``, ``messages`` and
            ``feedbacks``, or ``None`` if there is no such conversation.
        """
        with self.read() as conn:
            return _queries.get_conversation(conn, pk)

    def list_attachments(self, pk: int) -> list[dict[str, Any]] | None:
        """Attachment groups of conversation *pk* (file descriptors, no bytes).

        Returns:
            The groups in storage order, or ``None`` if there is no such conversation.
        """
        with self.read() as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (pk,)).fetchone() is None:
                return None
            groups = _queries.attachments(conn, pk)
        for group in groups:
            group.pop("_ts_us", None)
        return groups

    def get_attachment(self, pk: int) -> tuple[str, str, bytes] | None:
        """``(filename, mime_type, bytes)`` of attachment file *pk*, or ``None`` without bytes."""
        with self.read() as conn:
            return _queries.get_attachment(conn, pk)
