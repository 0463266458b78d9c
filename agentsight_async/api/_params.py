"""What the reading and managing calls send: query strings, bodies, and pages.

Pure functions, shared by the async clients and (through them) the sync ones,
so the rules live in one place and are tested without a server:

* filters become the query string the backend parses (protocol §2.3): unset
  filters are absent, booleans are ``true``/``false``, datetimes ISO-8601, the
  metadata filter ``"k:v,k2:v2"``;
* a conversation is named by its integer pk or its string ``conversation_id``;
* the managing calls check their input before anything is sent, with the
  original client's rules and messages;
* :class:`Pages` walks a paginated list one page at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal, TypedDict

from .. import _validation as v
from .._exceptions import InvalidConversationDataException, MissingConversationIdException

Sentiment = Literal["positive", "neutral", "negative"]
FeedbackSource = Literal["customer", "platform"]

SENTIMENTS: tuple[str, ...] = ("positive", "neutral", "negative")
FEEDBACK_SOURCES: tuple[str, ...] = ("customer", "platform")
#: Longest conversation name the backend accepts (``rename``/``update``).
MAX_NAME_CHARS = 255
#: Longest feedback comment the original client let through.
MAX_COMMENT_CHARS = 5000

#: ``GET /api/conversations/`` filters, in the original client's order.
LIST_FILTERS: tuple[str, ...] = (
    "action_name",
    "conversation_id",
    "customer_id",
    "customer_ip_address",
    "device",
    "has_messages",
    "language",
    "message_contains",
    "page",
    "page_size",
    "started_at_after",
    "started_at_before",
    "is_marked",
    "name",
    "include_deleted",
    "metadata",
    "has_feedback",
    "feedback_sentiment",
    "feedback_source",
)
_BOOLEAN_FILTERS = frozenset({"has_messages", "is_marked", "include_deleted", "has_feedback"})
_TIME_FILTERS = frozenset({"started_at_after", "started_at_before"})


class ConversationFilters(TypedDict, total=False):
    """The filters of ``fetch_conversations`` that ``iter_conversations`` takes.

    Every key is optional and means what the argument of the same name means
    for ``fetch_conversations`` (``customer_id``, ``is_marked``,
    ``message_contains``, ``metadata`` ...); ``page_size`` sets the page size
    and ``page`` the first page.
    """

    action_name: str
    conversation_id: str
    customer_id: str
    customer_ip_address: str
    device: str
    has_messages: bool
    language: str
    message_contains: str
    page_size: int
    started_at_after: str | datetime
    started_at_before: str | datetime
    is_marked: bool
    name: str
    include_deleted: bool
    metadata: str | Mapping[str, Any]
    has_feedback: bool
    feedback_sentiment: Sentiment
    feedback_source: FeedbackSource


# --- reading ---------------------------------------------------------------------------


def list_params(filters: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The query string of ``GET /api/conversations/`` (filters that are None are left out).

    Raises:
        InvalidConversationDataException: an unknown ``feedback_sentiment`` or
            ``feedback_source``, a time that is neither a string nor a datetime,
            or a metadata filter that cannot be written as ``k:v,...``.  (A
            ``ValueError``, as the original raised.)
    """
    params: dict[str, Any] = {}
    for name in LIST_FILTERS:
        value = filters.get(name)
        if value is None:
            continue
        if name in _BOOLEAN_FILTERS:
            value = flag(value)
        elif name in _TIME_FILTERS:
            value = when(value, name)
        elif name == "metadata":
            value = metadata_filter(value)
        elif name == "feedback_sentiment":
            value = choice(value, SENTIMENTS, name)
        elif name == "feedback_source":
            value = choice(value, FEEDBACK_SOURCES, name)
        params[name] = value
    params.update(extra)
    return params


def flag(value: Any) -> str:
    """A boolean filter as Django reads it: ``true``/``false`` (``str(value).lower()``
    for anything else, as the original did)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def when(value: Any, name: str) -> str:
    """A time filter: a string as given, a ``datetime``/``date`` as ISO-8601 (``isoformat()``)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise InvalidConversationDataException(
        f"{name}: must be an ISO-8601 str or a datetime, got {type(value).__name__}"
    )


def metadata_filter(value: Any) -> str:
    """The metadata filter: ``"k:v,k2:v2"`` as given, or a dict written that way.

    A dict key may hold neither ``,`` nor ``:``, and a value no ``,``: the
    backend splits on them, so such a filter would silently match something
    else.  Booleans become ``true``/``false``.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise InvalidConversationDataException(
            f"metadata: must be a 'key:value,...' str or a dict, got {type(value).__name__}"
        )
    pairs = []
    for key, item in value.items():
        text = flag(item) if isinstance(item, bool) else str(item)
        if not isinstance(key, str) or "," in key or ":" in key or "," in text:
            raise InvalidConversationDataException(
                f"metadata: {key!r}: {text!r} cannot be written as 'key:value' "
                "(keys need no ',' or ':', values no ',')"
            )
        pairs.append(f"{key}:{text}")
    return ",".join(pairs)


def choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """*value* (or an enum's ``.value``) if it is one of *allowed*; the original's message."""
    raw = value.value if isinstance(value, Enum) else value
    if raw not in allowed:
        raise InvalidConversationDataException(
            f"{name} must be one of {list(allowed)}, got '{raw}'"
        )
    return str(raw)


# --- conversations by pk or conversation_id ----------------------------------------------------


def reference(value: Any) -> int | str:
    """A conversation named by its pk (int) or its ``conversation_id`` (str).

    Raises:
        MissingConversationIdException: *value* is empty (``""``, ``0``, None).
        InvalidConversationDataException: *value* is neither an int nor a str
            (a ``bool`` is refused although it is an ``int``).
        Both are ``ValueError`` s, as the original raised.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidConversationDataException(
            f"conversation_id must be int or str, got {type(value).__name__}"
        )
    if not value:
        raise MissingConversationIdException("conversation_id is required")
    return value


def lookup_pk(body: Any, conversation_id: str) -> int:
    """The pk in a ``/api/conversations/lookup/`` answer."""
    pk = body.get("id") if isinstance(body, dict) else None
    if isinstance(pk, bool) or not isinstance(pk, int) or not pk:
        raise InvalidConversationDataException(
            f"Could not resolve pk for conversation_id '{conversation_id}'"
        )
    return pk


# --- managing ------------------------------------------------------------------------------


def new_name(name: Any, *, required: bool) -> str:
    """A conversation name, stripped; the original's rules (non-blank, at most 255)."""
    exc = InvalidConversationDataException
    if not isinstance(name, str) or (required and not name):
        if required:
            raise exc("Field 'name' must be a non-empty string")
        raise exc(f"Field 'name' must be a string, got {type(name).__name__}")
    if not name.strip():
        raise exc("Field 'name' cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise exc(f"Field 'name' cannot exceed {MAX_NAME_CHARS} characters (got {len(name)})")
    return name.strip()


def metadata_body(metadata: Any) -> dict[str, Any]:
    """A metadata dict that serialises as JSON (checked now, not by the server)."""
    if not isinstance(metadata, dict):
        raise InvalidConversationDataException("Field 'metadata' must be a dictionary")
    snapshot, _ = v.json_snapshot(metadata, "metadata", InvalidConversationDataException)
    result: dict[str, Any] = snapshot
    return result


def update_body(
    name: Any,
    is_marked: Any,
    customer_id: Any,
    device: Any,
    language: Any,
    metadata: Any,
) -> dict[str, Any]:
    """The ``PATCH /api/conversations/{pk}/update/`` body: only the fields given.

    Raises:
        InvalidConversationDataException: a field is invalid.
        ValueError: no field was given (the original's error).
    """
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = new_name(name, required=False)
    if is_marked is not None:
        body["is_marked"] = bool(is_marked)
    for field, value in (("customer_id", customer_id), ("device", device), ("language", language)):
        if value is not None:
            body[field] = str(value)
    if metadata is not None:
        body["metadata"] = metadata_body(metadata)
    if not body:
        raise ValueError("At least one field must be provided for update")
    return body


def feedback_body(
    conversation: int | str, sentiment: Any, comment: Any, metadata: Any
) -> dict[str, Any]:
    """The ``POST /api/conversation-feedbacks/`` body (§2.3).

    A string id travels as ``conversation_id``, a pk as ``conversation``;
    ``comment`` and ``metadata`` only when given and not empty, as the original
    sent them.
    """
    exc = InvalidConversationDataException
    raw = sentiment.value if isinstance(sentiment, Enum) else sentiment
    if raw not in SENTIMENTS:
        raise exc(f"Invalid sentiment: '{raw}'. Must be one of: {', '.join(SENTIMENTS)}")
    body: dict[str, Any] = {"sentiment": raw}
    body["conversation_id" if isinstance(conversation, str) else "conversation"] = conversation
    if comment is not None:
        if not isinstance(comment, str):
            raise exc("Field 'comment' must be a string")
        if len(comment) > MAX_COMMENT_CHARS:
            raise exc(
                f"Field 'comment' cannot exceed {MAX_COMMENT_CHARS} characters (got {len(comment)})"
            )
        if comment:
            body["comment"] = comment
    if metadata:
        body["metadata"] = metadata_body(metadata)
    return body


# --- pages -------------------------------------------------------------------------------------


class Pages:
    """Walks ``GET /api/conversations/`` page by page (``?page=1, 2, ...``).

    Driving the page number ourselves, rather than following the answer's
    ``next`` URL, keeps every request on our own base URL, headers and retry
    policy.  There is a next page while the answer's ``next`` is set (or, for
    an answer without one, while fewer results than ``count`` were seen) and
    the page was not empty.  Page-number pagination can shift under concurrent
    writes; a conversation seen on an earlier page is not yielded twice.
    """

    def __init__(self, filters: Mapping[str, Any]) -> None:
        self._filters = dict(filters)
        self._page = int(self._filters.pop("page", None) or 1)
        self._received = 0
        self._seen: set[Any] = set()
        self._done = False

    def next_params(self) -> dict[str, Any] | None:
        """The ``fetch_conversations`` arguments of the next page, or None when done."""
        if self._done:
            return None
        return {**self._filters, "page": self._page}

    def take(self, body: Any) -> list[dict[str, Any]]:
        """The new conversations of one page's answer; moves on to the next page."""
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not results:
            self._done = True
            return []
        self._received += len(results)
        if "next" in body:
            more = bool(body["next"])
        else:
            count = body.get("count")
            more = isinstance(count, int) and self._received < count
        self._done = not more
        self._page += 1
        fresh = []
        for item in results:
            key = item.get("id") if isinstance(item, dict) else None
            if key is not None:
                if key in self._seen:
                    continue
                self._seen.add(key)
            fresh.append(item)
        return fresh
