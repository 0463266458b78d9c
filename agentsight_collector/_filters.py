"""List filters: query strings in, SQL conditions out.

``GET /api/conversations/`` takes the filters of the 0.0.44 ``AgentSightAPI``
(and the few 0.1.4 adds); ``GET /api/feedbacks/`` those of 0.1.4's
``feedbacks.list``.  Each filter set is a frozen dataclass that can be built
from Python values or parsed from a query string (:meth:`from_query`, which
raises :class:`FieldValidationError` - a DRF-style 400 - for a value it
cannot read), and turns itself into a ``WHERE`` clause with parameters.
Unknown query parameters are ignored, as DRF's filter backends ignore them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentsight_async._store import (
    FEEDBACK_SOURCES,
    SENTIMENTS,
    FieldValidationError,
    to_bool,
    us_from_iso,
)

#: SQL functions the conditions use; :func:`register_functions` adds them to a connection.
CONTAINS_FN = "agentsight_icontains"
US_FN = "agentsight_us"


def register_functions(conn: sqlite3.Connection) -> None:
    """Register the SQL functions the conditions call (cheap; safe to repeat).

    ``agentsight_icontains(text, needle)`` is a Unicode case-insensitive
    substring test (SQLite's ``LIKE`` folds ASCII only); *needle* arrives
    case-folded.  ``agentsight_us(iso)`` is an ISO-8601 timestamp as UTC
    microseconds, for columns stored only as text.
    """
    conn.create_function(CONTAINS_FN, 2, _icontains, deterministic=True)
    conn.create_function(US_FN, 1, _us, deterministic=True)


def _icontains(text: str | None, needle: str) -> bool:
    return text is not None and needle in text.casefold()


def _us(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return us_from_iso(value)
    except ValueError:
        return None


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '\\'``, with ``%``, ``_`` and ``\\`` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- reading query strings ---------------------------------------------------------


def _text(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key)
    return value if value else None


def query_bool(params: Mapping[str, str], key: str) -> bool | None:
    """Query parameter *key* as a boolean (``true``/``false``, ``1``/``0``...); absent is ``None``.

    Raises:
        FieldValidationError: another value.
    """
    value = params.get(key)
    if value is None or value == "":
        return None
    parsed = to_bool(value)
    if parsed is None:
        raise FieldValidationError({key: ["Must be a valid boolean (true or false)."]})
    return parsed


def _choice(params: Mapping[str, str], key: str, choices: frozenset[str]) -> str | None:
    value = _text(params, key)
    if value is not None and value not in choices:
        raise FieldValidationError(
            {
                key: [
                    f"Select a valid choice. {value[:64]} is not one of the available choices "
                    f"({', '.join(sorted(choices))})."
                ]
            }
        )
    return value


def query_int(params: Mapping[str, str], key: str) -> int | None:
    """Query parameter *key* as an integer; absent is ``None``.

    Raises:
        FieldValidationError: not an integer.
    """
    value = _text(params, key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise FieldValidationError({key: ["A valid integer is required."]}) from None


def bound(value: str | None, name: str) -> int | None:
    """An ISO-8601 bound as UTC microseconds; a 400 naming *name* if it is not one."""
    if value is None or value == "":
        return None
    try:
        return us_from_iso(value)
    except ValueError:
        raise FieldValidationError({name: ["Enter a valid date/time (ISO 8601)."]}) from None


def metadata_pairs(value: str | None) -> list[tuple[str, str]]:
    """``"k:v,k2:v2"`` as ``[("k", "v"), ("k2", "v2")]`` (a value may contain ``:``)."""
    if value is None or value == "":
        return []
    pairs = []
    for item in value.split(","):
        key, sep, wanted = item.partition(":")
        if not sep or not key.strip():
            raise FieldValidationError(
                {"metadata": ['Use "key:value" pairs separated by commas, e.g. "plan:pro,tier:1".']}
            )
        pairs.append((key.strip(), wanted.strip()))
    return pairs


class _Where:
    """Collects ``AND``-ed conditions and their parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    def exists(self, subquery: str, wanted: bool, *params: Any) -> None:
        self.add(("EXISTS " if wanted else "NOT EXISTS ") + f"({subquery})", *params)

    def clause(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1 = 1"


#: A JSON value of ``json_each`` as the text a ``metadata`` filter compares with.
_JSON_TEXT = (
    "CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' "
    "ELSE CAST(j.value AS TEXT) END"
)


@dataclass(frozen=True)
class ConversationFilters:
    """The filters of ``GET /api/conversations/`` (0.0.44's ``fetch_conversations``).

    Attributes:
        conversation_id, customer_id, customer_ip_address, device, language,
            environment: exact matches.
        name: a case-insensitive substring of the name.
        action_name: the conversation has an action of this name.
        message_contains: some message's text contains this (case-insensitive).
        has_messages, is_marked, has_feedback: ``None`` for either.
        include_deleted: show soft-deleted conversations too.
        metadata: ``"k:v,k2:v2"``; every key must hold that value (as text:
            ``true``/``false``/``null`` for those JSON values).
        feedback_sentiment, feedback_source: some feedback on the
            conversation has this sentiment / source (``customer``: sent
            through the API; ``platform``: left on the collector's pages);
            given together, the same feedback has both.
        started_at_after, started_at_before: ISO-8601 bounds on the start.
    """

    conversation_id: str | None = None
    customer_id: str | None = None
    customer_ip_address: str | None = None
    device: str | None = None
    language: str | None = None
    environment: str | None = None
    name: str | None = None
    action_name: str | None = None
    message_contains: str | None = None
    has_messages: bool | None = None
    is_marked: bool | None = None
    include_deleted: bool = False
    metadata: str | None = None
    has_feedback: bool | None = None
    feedback_sentiment: str | None = None
    feedback_source: str | None = None
    started_at_after: str | None = None
    started_at_before: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> ConversationFilters:
        """Parse a query string (``env`` is an alias of ``environment``, as in 0.1.4).

        Raises:
            FieldValidationError: a boolean, choice or date that cannot be read.
        """
        texts = {
            key: _text(params, key)
            for key in (
                "conversation_id",
                "customer_id",
                "customer_ip_address",
                "device",
                "language",
                "name",
                "action_name",
                "message_contains",
                "metadata",
                "started_at_after",
                "started_at_before",
            )
        }
        return cls(
            **texts,
            environment=_text(params, "environment") or _text(params, "env"),
            has_messages=query_bool(params, "has_messages"),
            is_marked=query_bool(params, "is_marked"),
            include_deleted=bool(query_bool(params, "include_deleted")),
            has_feedback=query_bool(params, "has_feedback"),
            feedback_sentiment=_choice(params, "feedback_sentiment", SENTIMENTS),
            feedback_source=_choice(params, "feedback_source", FEEDBACK_SOURCES),
        )

    def where(self) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause over ``conversations c`` and its parameters.

        Raises:
            FieldValidationError: a bad date bound or ``metadata`` filter.
        """
        w = _Where()
        if not self.include_deleted:
            w.add("c.deleted_at IS NULL")
        for column in (
            "conversation_id",
            "customer_id",
            "customer_ip_address",
            "device",
            "language",
            "environment",
        ):
            value = getattr(self, column)
            if value is not None and value != "":
                w.add(f"c.{column} = ?", value)
        if self.name:
            w.add("c.name LIKE ? ESCAPE '\\'", like_pattern(self.name))
        after = bound(self.started_at_after, "started_at_after")
        before = bound(self.started_at_before, "started_at_before")
        if after is not None:
            w.add("c.started_us >= ?", after)
        if before is not None:
            w.add("c.started_us <= ?", before)
        if self.is_marked is not None:
            w.add("c.is_marked = ?", int(self.is_marked))
        messages = "SELECT 1 FROM messages m WHERE m.conversation = c.id"
        if self.has_messages is not None:
            w.exists(messages, self.has_messages)
        if self.message_contains:
            w.exists(
                f"{messages} AND {CONTAINS_FN}(m.content, ?)",
                True,
                self.message_contains.casefold(),
            )
        if self.action_name:
            w.exists(
                "SELECT 1 FROM actions a WHERE a.conversation = c.id AND a.action_name = ?",
                True,
                self.action_name,
            )
        for key, wanted in metadata_pairs(self.metadata):
            w.exists(
                f"SELECT 1 FROM json_each(c.metadata) j WHERE j.key = ? AND {_JSON_TEXT} = ?",
                True,
                key,
                wanted,
            )
        feedbacks = "SELECT 1 FROM feedbacks fb WHERE fb.conversation = c.id"
        if self.has_feedback is not None:
            w.exists(feedbacks, self.has_feedback)
        if self.feedback_sentiment or self.feedback_source:
            extra, params = "", []
            for column, value in (
                ("sentiment", self.feedback_sentiment),
                ("source", self.feedback_source),
            ):
                if value:
                    extra += f" AND fb.{column} = ?"
                    params.append(value)
            w.exists(feedbacks + extra, True, *params)
        return w.clause(), w.params


@dataclass(frozen=True)
class FeedbackFilters:
    """The filters of ``GET /api/feedbacks/`` (0.1.4's ``feedbacks.list``).

    Attributes:
        kind, sentiment, source: exact matches (``source`` as in
            :class:`ConversationFilters`).
        conversation: the conversation's pk; conversation_id: its business id.
        message: the message pk of message-kind feedback.
        topic, reason: message feedback's slugs, exact.
        environment: the conversation's environment.
        has_comment: ``None`` for either.
        comment_contains: a case-insensitive substring of the comment.
        created_at_after, created_at_before: ISO-8601 bounds.
    """

    kind: str | None = None
    sentiment: str | None = None
    source: str | None = None
    conversation: int | None = None
    conversation_id: str | None = None
    message: int | None = None
    topic: str | None = None
    reason: str | None = None
    environment: str | None = None
    has_comment: bool | None = None
    comment_contains: str | None = None
    created_at_after: str | None = None
    created_at_before: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> FeedbackFilters:
        """Parse a query string (``env`` is an alias of ``environment``).

        Raises:
            FieldValidationError: a boolean, integer, choice or date that cannot be read.
        """
        return cls(
            kind=_choice(params, "kind", frozenset({"conversation", "message", "agent"})),
            sentiment=_choice(params, "sentiment", SENTIMENTS),
            source=_choice(params, "source", FEEDBACK_SOURCES),
            conversation=query_int(params, "conversation"),
            conversation_id=_text(params, "conversation_id"),
            message=query_int(params, "message"),
            topic=_text(params, "topic"),
            reason=_text(params, "reason"),
            environment=_text(params, "environment") or _text(params, "env"),
            has_comment=query_bool(params, "has_comment"),
            comment_contains=_text(params, "comment_contains"),
            created_at_after=_text(params, "created_at_after"),
            created_at_before=_text(params, "created_at_before"),
        )

    def where(self) -> tuple[str, list[Any]]:
        """The ``WHERE`` clause over ``feedbacks f LEFT JOIN conversations c``.

        Raises:
            FieldValidationError: a bad date bound.
        """
        w = _Where()
        for column, value in (
            ("f.kind", self.kind),
            ("f.sentiment", self.sentiment),
            ("f.source", self.source),
            ("f.conversation", self.conversation),
            ("c.conversation_id", self.conversation_id),
            ("c.environment", self.environment),
            ("json_extract(f.extra, '$.message')", self.message),
            ("json_extract(f.extra, '$.topic')", self.topic),
            ("json_extract(f.extra, '$.reason')", self.reason),
        ):
            if value is not None:
                w.add(f"{column} = ?", value)
        if self.has_comment is not None:
            w.add("COALESCE(f.comment, '') " + ("<> ''" if self.has_comment else "= ''"))
        if self.comment_contains:
            w.add(f"{CONTAINS_FN}(f.comment, ?)", self.comment_contains.casefold())
        for value, name, op in (
            (self.created_at_after, "created_at_after", ">="),
            (self.created_at_before, "created_at_before", "<="),
        ):
            us = bound(value, name)
            if us is not None:
                w.add(f"{US_FN}(f.created_at) {op} ?", us)
        return w.clause(), w.params
