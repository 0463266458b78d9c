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

from . import _queries, _stats
from ._filters import ConversationFilters, FeedbackFilters


class Storage(Store):
    """Transcripts in SQLite: every write of :class:`Store`, and the read API's queries.

    Safe to share between threads.  Opening a file creates or migrates it.

    Args:
        path: the SQLite file, or ``":memory:"``.

    Raises:
        SchemaVersionError: the file was written by a newer schema.
    """

    def lookup(self, conversation_id: str, *, include_deleted: bool = True) -> int | None:
        """The pk of the conversation *conversation_id*, or ``None`` if there is none.

        Args:
            conversation_id: your id for the conversation.
            include_deleted: also find a soft-deleted conversation (the HTTP
                ``lookup`` route does not, unless asked).

        Returns:
            The pk, or ``None``.
        """
        with self.read() as conn:
            return _queries.lookup(
                conn, DEFAULT_AGENT_ID, conversation_id, include_deleted=include_deleted
            )

    def list_conversations(
        self,
        filters: ConversationFilters | None = None,
        *,
        page: int = 1,
        page_size: int = 50,
        full: bool = False,
        **criteria: Any,
    ) -> dict[str, Any]:
        """One page of conversations, newest activity first.

        Args:
            filters: the filters, or ``None`` to build them from *criteria*.
            page: the 1-based page number.
            page_size: its size (at most 1,000).
            full: also give each row its ``transcript``, ``messages`` and
                ``feedbacks`` (the HTTP route's default, as the backend's).
            **criteria: the fields of ``ConversationFilters`` by name, e.g.
                ``customer_id="u1", include_deleted=True``.

        Returns:
            A page ``{"count", "next", "previous", "page_size", "total_pages",
            "current_page", "results"}``; ``next``/``previous`` are page numbers or
            ``None`` (the HTTP app turns them into URLs).

        Raises:
            FieldValidationError: a bad bound, ``metadata`` filter or page size.
            NotFoundError: *page* is past the last page.
            TypeError: an unknown criterion.
        """
        chosen = filters if filters is not None else ConversationFilters(**criteria)
        with self.read() as conn:
            return _queries.list_conversations(
                conn, chosen, page=page, page_size=page_size, full=full
            )

    def get_conversation(self, pk: int, *, full: bool = True) -> dict[str, Any] | None:
        """Conversation *pk* (deleted or not) with its ordered ``transcript``.

        Args:
            pk: the conversation's pk (see :meth:`lookup`).
            full: with ``False`` only the conversation's own fields and counts.

        Returns:
            The conversation's fields, ``transcript`` (time, then insertion order),
            ``messages`` and ``feedbacks``, or ``None`` if there is no such
            conversation.
        """
        with self.read() as conn:
            return _queries.get_conversation(conn, pk, full=full)

    def list_feedbacks(
        self, filters: FeedbackFilters | None = None, *, page: int = 1, page_size: int = 50
    ) -> dict[str, Any]:
        """One page of feedback, newest first (``GET /api/feedbacks/``).

        Args:
            filters: ``FeedbackFilters`` (kind, sentiment, source, conversation,
                dates ...), or ``None`` for all.
            page: the 1-based page number.
            page_size: its size (at most 1,000).

        Returns:
            The page envelope of :meth:`list_conversations` plus ``counts``.

        Raises:
            FieldValidationError: a bad bound or page size.
            NotFoundError: *page* is past the last page.
        """
        with self.read() as conn:
            return _queries.list_feedbacks(
                conn, filters or FeedbackFilters(), page=page, page_size=page_size
            )

    def get_feedback(self, pk: int) -> dict[str, Any] | None:
        """Feedback *pk* as :meth:`list_feedbacks` shows it.

        Args:
            pk: the feedback's pk.

        Returns:
            The feedback, or ``None`` if there is none.
        """
        with self.read() as conn:
            return _queries.get_feedback(conn, pk)

    def list_attachments(self, pk: int) -> list[dict[str, Any]] | None:
        """Attachment groups of conversation *pk* (file descriptors, no bytes).

        Args:
            pk: the conversation's pk.

        Returns:
            The groups in storage order, or ``None`` if there is no such
            conversation.
        """
        with self.read() as conn:
            if conn.execute("SELECT 1 FROM conversations WHERE id = ?", (pk,)).fetchone() is None:
                return None
            groups = _queries.attachments(conn, pk)
        for group in groups:
            group.pop("_ts_us", None)
        return groups

    def get_attachment(self, pk: int) -> tuple[str, str, bytes] | None:
        """The bytes of one attachment file.

        Args:
            pk: the file's pk (``files[i]["id"]`` of :meth:`list_attachments`).

        Returns:
            ``(filename, mime_type, bytes)``, or ``None`` when there is no such file
            or it has no bytes (a descriptor-only file).
        """
        with self.read() as conn:
            return _queries.get_attachment(conn, pk)

    def dashboard(self, *, environment: str | None = None) -> dict[str, Any]:
        """The dashboard's numbers: totals, activity over time, tokens by model, latency, errors.

        Args:
            environment: only conversations of this environment.

        Returns:
            The numbers the ``/dashboard/`` page draws.
        """
        with self.read() as conn:
            return _stats.dashboard(conn, environment=environment)
