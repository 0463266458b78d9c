"""Events as plain data, and the ids and timestamps they carry.

An :class:`Event` is what one ``track_*`` call leaves in a conversation's queue.
It stays plain data (a kind, a dict in the original SDK's item shape, a
timestamp and a sequence number) until an exporter shapes it for the wire, so
every exporter - and any future redaction hook - sees the same thing.

Ids are cheap on purpose: a ``uuid4()`` costs ~4 µs, more than the whole
tracking call may.  Each event takes the next value of a per-process counter
that starts at a random 23-bit salt shifted above 40 bits of sequence, so it is
unique within the process (and, with the salt, across processes with
overwhelming probability), increases in tracking order, and costs one
``next()``.  The wire ids derive from it deterministically, so a retried
request always carries the same ids:

* ``span_id(ev)`` - 16 hex characters, the ingest span id;
* ``event_uuid(ev)`` - a UUIDv7 (time-ordered) built from the tracking time and
  the sequence, sent as ``Idempotency-Key`` on REST.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final

# Kinds, in the original SDK's item-type vocabulary where one exists.
CONVERSATION: Final = "conversation"  # get_or_create_conversation(): is_used true
CONVERSATION_OPENED: Final = "conversation_opened"  # initialize_conversation(): is_used false
QUESTION: Final = "question"
ANSWER: Final = "answer"
ATTACHMENTS: Final = "attachments"
ACTION: Final = "action"
BUTTON: Final = "button"
TOKEN_USAGE: Final = "token_usage"  # noqa: S105 - not a secret

#: :attr:`Event.hold` of an event that ``before_send`` / redaction / sampling must see first.
UNPROCESSED: Final = "unprocessed"

#: The ``type`` reported by ``send_tracked_data()`` for each kind.
RESULT_TYPE: Final[dict[str, str]] = {
    CONVERSATION: "conversation",
    CONVERSATION_OPENED: "conversation",
    QUESTION: "question",
    ANSWER: "answer",
    ATTACHMENTS: "attachments",
    ACTION: "action",
    BUTTON: "button",
    TOKEN_USAGE: "action",
}

#: A conversation's own fields, in the original SDK's order (``conversation_id`` aside).
CONVERSATION_FIELDS: Final = (
    "customer_id",
    "customer_ip_address",
    "device",
    "source",
    "language",
    "name",
    "environment",
    "metadata",
)

#: The token counters of ``track_token_usage()`` and ``get_token_usage()``.
TOKEN_KEYS: Final = ("prompt_tokens", "completion_tokens", "total_tokens", "embedding_tokens")
#: Breakdowns a model call may add: parts of ``prompt_tokens`` (cache read, cache write)
#: and of ``completion_tokens`` (reasoning).  Counted, and reported, only when non-zero.
TOKEN_DETAIL_KEYS: Final = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

#: The ``summary`` counter each result type increments (conversations count nowhere).
SUMMARY_KEY: Final[dict[str, str]] = {
    "question": "questions",
    "answer": "answers",
    "attachments": "attachments",
    "action": "actions",
    "button": "buttons",
}

_SEQ_BITS: Final = 40


def _new_counter() -> itertools.count[int]:
    # 23 salt bits keep every id below 2**63: it fits a signed 64-bit integer
    # (SQLite, the spool) while still giving 16 hex digits on the wire.
    return itertools.count(secrets.randbits(23) << _SEQ_BITS)


_counter = _new_counter()
next_seq = _counter.__next__


def _reset_after_fork() -> None:
    # A forked child must not reuse the parent's ids.
    global _counter, next_seq
    _counter = _new_counter()
    next_seq = _counter.__next__


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def message_data(kind: str, text: str) -> dict[str, Any]:
    """A plain message's data dict: its text, the sender its kind implies, no metadata."""
    return {"content": text, "sender": "agent" if kind == ANSWER else "end_user", "metadata": {}}


class Event:
    """One tracked item of one conversation.

    ``data`` has the original SDK's item shape (``content``, ``sender``,
    ``metadata`` ...), without ``conversation_id`` and ``timestamp``, which are
    fields of their own.  ``size`` is an estimate of the JSON bytes the event
    will take, used for the memory and batch byte budgets.

    A plain message is queued as its text alone (``raw`` is a ``str``): most
    events are never looked at as a dict - the encoder reads the text - so the
    dict is built only if something asks for ``data``.  That is one object less
    per event to allocate and for the garbage collector to walk.
    """

    __slots__ = ("conversation_id", "hold", "kind", "raw", "seq", "size", "ts_ns")

    def __init__(
        self,
        kind: str,
        conversation_id: str,
        ts_ns: int,
        seq: int,
        data: dict[str, Any] | str,
        size: int,
    ) -> None:
        self.kind = kind
        self.conversation_id = conversation_id
        self.ts_ns = ts_ns
        self.seq = seq
        #: the event's data dict, or a plain message's text (see :attr:`data`).
        self.raw = data
        self.size = size
        #: None when it may be sent; :data:`UNPROCESSED` until ``before_send`` and the
        #: privacy settings have seen it; else why it is withheld (``"filtered"`` ...).
        self.hold: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The item's data dict (built from a plain message's text on first use)."""
        raw = self.raw
        if type(raw) is str:
            raw = self.raw = message_data(self.kind, raw)
        return raw  # type: ignore[return-value]

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self.raw = value

    @property
    def has_attachments(self) -> bool:
        """Whether the event carries files (a plain message never does)."""
        raw = self.raw
        return type(raw) is dict and bool(raw.get("attachments"))

    def __repr__(self) -> str:  # no payload: it may hold user content
        return (
            f"Event(kind={self.kind!r}, conversation_id={self.conversation_id!r}, "
            f"id={span_id(self)}, size={self.size})"
        )

    @property
    def result_type(self) -> str:
        """The ``type`` that ``send_tracked_data()`` reports (token usage: ``action``)."""
        return RESULT_TYPE[self.kind]

    @property
    def timestamp(self) -> str:
        """The tracking time, ISO-8601 UTC with microseconds (``...T10:35:20.614093+00:00``)."""
        return iso_utc(self.ts_ns)


def span_id(ev: Event) -> str:
    """The event's 64-bit id as 16 lowercase hex characters (ingest ``span_id``)."""
    return f"{ev.seq & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def event_uuid(ev: Event) -> str:
    """A UUIDv7 string derived from the tracking time and the event's sequence.

    Time-ordered across processes (48-bit millisecond prefix) and stable across
    retries, so it is the ``Idempotency-Key`` of REST requests.
    """
    ms = ev.ts_ns // 1_000_000
    seq = ev.seq & 0xFFFF_FFFF_FFFF_FFFF
    rand_a = (ev.ts_ns // 1000) % 1000 * 4  # sub-millisecond bits keep it ordered
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand_a & 0xFFF) << 64
    value |= 0b10 << 62
    value |= seq & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- what the flusher hands an exporter, and what it answers ------------------------------


@dataclass(slots=True)
class ConversationBatch:
    """One conversation's share of a batch.

    ``fields`` are the conversation's latest known fields (``name``,
    ``customer_id``, ``environment`` ...; only keys that were set), so that an
    exporter can send them with every block even when the conversation item
    itself went out in an earlier batch.
    """

    conversation_id: str
    events: list[Event]
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """Events of one or more conversations, each conversation's in tracking order.

    What the flusher hands :meth:`Exporter.export`: a conversation appears once
    per batch, and is in at most one batch in flight.
    """

    conversations: list[ConversationBatch]

    @property
    def event_count(self) -> int:
        """How many events the batch holds, over all its conversations."""
        return sum(len(c.events) for c in self.conversations)


@dataclass(slots=True, frozen=True)
class Outcome:
    """What happened to one event.

    ``response`` is what ``send_tracked_data()`` reports: the parsed body of the
    event's own request (REST) or of the batch request that carried it (ingest).
    """

    ok: bool
    response: Any = None
    error: str | None = None
    drop_reason: str | None = None  # "rejected" | "retries_exhausted" | "shutdown"
    #: What failed, for ``on_error`` (the transport error, or the API error built from
    #: the answer); None for a success.
    exception: BaseException | None = field(default=None, compare=False)


DELIVERED: Final = Outcome(ok=True, response={})


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What became of the events that were queued when a ``flush()`` (or close) began.

    Its truth value is the answer to "was everything delivered?": true only
    when every one of them was delivered - or withheld on purpose
    (``filtered``) - false when any was dropped (see ``dropped`` for why) or
    was still pending when the deadline passed (it stays queued - or, at close
    with a spool, on disk - and is not lost).
    Events refused at the call because the queue was full were never queued;
    ``stats()["dropped"]["queue_full"]`` counts those.
    """

    delivered: int = 0
    #: Dropped events by reason (``rejected``, ``retries_exhausted``, ``shutdown`` ...).
    dropped: dict[str, int] = field(default_factory=dict)
    #: Not resolved when the wait ended (timed out, or kept in the spool at close).
    pending: int = 0
    #: Withheld on purpose: ``before_send`` returned None, or sampling left them out.
    filtered: int = 0

    @property
    def dropped_total(self) -> int:
        """How many events were dropped, whatever the reason (the sum of ``dropped``)."""
        return sum(self.dropped.values())

    def __bool__(self) -> bool:
        return self.pending == 0 and not self.dropped_total


# --- time ---------------------------------------------------------------------------------

#: ``"YYYY-MM-DDTHH:MM:SS"`` per whole second (UTC); cleared when it grows past the bound.
_ISO_PREFIXES: dict[int, str] = {}
_ISO_PREFIXES_MAX: Final = 4096
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO: Final = timedelta(microseconds=1)


def iso_utc(ts_ns: int) -> str:
    """ISO-8601 UTC with microseconds and ``+00:00``, as both published clients send.

    The fraction is left out when it is zero - exactly
    ``datetime.fromtimestamp(s, utc).replace(microsecond=us).isoformat()`` -
    but without a ``datetime`` per call (~5x cheaper): the date and time of day
    are formatted once per second (a batch's events share a handful of
    seconds) and the microseconds are integer arithmetic.
    """
    sec, ns = divmod(ts_ns, 1_000_000_000)
    prefix = _ISO_PREFIXES.get(sec)
    if prefix is None:
        # "+00:00" is the last 6 characters of a whole second's isoformat().
        prefix = datetime.fromtimestamp(sec, tz=timezone.utc).isoformat()[:-6]
        if len(_ISO_PREFIXES) >= _ISO_PREFIXES_MAX:
            _ISO_PREFIXES.clear()
        _ISO_PREFIXES[sec] = prefix
    us = ns // 1000
    return f"{prefix}.{us:06d}+00:00" if us else prefix + "+00:00"


def parse_iso(value: Any) -> datetime | None:
    """An aware datetime from an ISO-8601 string (``Z`` accepted, naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def ns_from_iso(value: Any) -> int | None:
    """Nanoseconds since the epoch of an ISO-8601 string (microsecond precision), or None."""
    dt = parse_iso(value)
    return None if dt is None else ((dt - _EPOCH) // _MICRO) * 1000
