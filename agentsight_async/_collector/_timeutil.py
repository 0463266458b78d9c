"""Timestamps: stored exactly as sent, ordered by a normalised integer.

Clients send ``isoformat()`` strings with varying offsets and precision (the
fraction is left out when it is zero), so string order is not time order.
Every stored timestamp therefore gets a companion column holding UTC
microseconds since the epoch, and the transcript sorts on that.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC.

    Raises ``ValueError`` for anything else.  ``Z`` is accepted on every
    Python version we support (``fromisoformat`` learned it only in 3.11).
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def to_us(value: datetime) -> int:
    """UTC microseconds since the epoch, exact (no float rounding)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_to_us(value: str) -> int:
    return to_us(parse_iso(value))


@lru_cache(maxsize=4096)
def iso_to_us_cached(value: str) -> int:
    """:func:`iso_to_us`, memoised: an ingest span repeats its start time in its
    end time and in its events' timestamps, so most lookups are hits."""
    return to_us(parse_iso(value))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()
