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
from datetime import datetime, timezone
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


class Event:
    """One tracked item of one conversation.

    ``data`` has the original SDK's item shape (``content``, ``sender``,
    ``metadata`` ...), without ``conversation_id`` and ``timestamp``, which are
    fields of their own.  ``size`` is an estimate of the JSON bytes the event
    will take, used for the memory and batch byte budgets.
    """

    __slots__ = ("conversation_id", "data", "kind", "seq", "size", "ts_ns")

    def __init__(
        self,
        kind: str,
        conversation_id: str,
        ts_ns: int,
        seq: int,
        data: dict[str, Any],
        size: int,
    ) -> None:
        self.kind = kind
        self.conversation_id = conversation_id
        self.ts_ns = ts_ns
        self.seq = seq
        self.data = data
        self.size = size

    def __repr__(self) -> str:  # no payload: it may hold user content
        return (
            f"Event(kind={self.kind!r}, conversation_id={self.conversation_id!r}, "
            f"id={span_id(self)}, size={self.size})"
        )

    @property
    def result_type(self) -> str:
        return RESULT_TYPE[self.kind]

    @property
    def timestamp(self) -> str:
        return iso_from_ns(self.ts_ns)


def iso_from_ns(ts_ns: int) -> str:
    """ISO-8601 UTC with microseconds and ``+00:00``, as both published clients send.

    Like ``datetime.isoformat()``, the fraction is left out when it is zero.
    """
    sec, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, tz=timezone.utc).replace(microsecond=ns // 1000).isoformat()


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
