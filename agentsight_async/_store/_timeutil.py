"""Timestamps: stored exactly as sent, ordered by a normalised integer.

Clients send ``isoformat()`` strings with varying offsets and precision (the
fraction is left out when it is zero), so string order is not time order.
Every stored timestamp therefore gets a companion column holding UTC
microseconds since the epoch, and the transcript sorts on that.  Parsing and
formatting are the SDK's own (:mod:`agentsight_async._events`); this module
only adapts them to the store's ``(text, microseconds)`` pairs.
"""

from __future__ import annotations

import time
from functools import lru_cache

from .._events import iso_utc, ns_from_iso


def us_from_iso(value: str) -> int:
    """UTC microseconds since the epoch of an ISO-8601 timestamp (naive means UTC).

    Raises:
        ValueError: *value* is not an ISO-8601 timestamp.
    """
    ns = ns_from_iso(value)
    if ns is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:64]!r}")
    return ns // 1000


_us_from_iso_memo = lru_cache(maxsize=4096)(us_from_iso)

#: UTC microseconds of ``YYYY-MM-DDTHH:MM:SS`` (read as UTC), per second seen lately.
_SECONDS: dict[str, int] = {}
_SECONDS_KEPT = 4096


def us_from_iso_cached(value: str) -> int:
    """:func:`us_from_iso`, fast for the timestamps ingest spans carry.

    Both published clients and ours write ``2026-01-01T12:00:00.123456+00:00``:
    such a value is its second (parsed once per second seen, then looked up)
    plus its six fraction digits.  Anything else goes through the memoised
    general parser (an ingest span repeats its start time in its end time and
    its events' timestamps, so most of those lookups are hits).

    Raises:
        ValueError: *value* is not an ISO-8601 timestamp.
    """
    if len(value) == 32 and value[19] == "." and value.endswith("+00:00"):
        fraction = value[20:26]
        if fraction.isdigit() and fraction.isascii():
            second = value[:19]
            base = _SECONDS.get(second)
            if base is None:
                base = us_from_iso(second + "+00:00")
                if len(_SECONDS) >= _SECONDS_KEPT:
                    _SECONDS.clear()
                _SECONDS[second] = base
            return base + int(fraction)
    return _us_from_iso_memo(value)


def now_iso() -> str:
    """The current time as the clients write it (UTC, ``+00:00``, microseconds)."""
    return iso_utc(time.time_ns())


def now_at() -> tuple[str, int]:
    """The current time as a stored ``(timestamp, ts_us)`` pair."""
    ns = time.time_ns()
    return iso_utc(ns), ns // 1000
