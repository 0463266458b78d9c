"""The shared vocabulary: time helpers that every exporter and the store use."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from agentsight_async import _events as events

# --- the fast timestamp formatter ----------------------------------------------------


def _iso_reference(ts_ns: int) -> str:
    sec, ns = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(sec, tz=timezone.utc).replace(microsecond=ns // 1000).isoformat()


def test_iso_utc_matches_isoformat_on_random_values() -> None:
    rng = random.Random(20261128)
    values = [rng.randrange(0, 253_402_300_799 * 10**9) for _ in range(20_000)]
    values += [rng.randrange(0, 4 * 10**9) * 10**9 + rng.randrange(1000) for _ in range(5_000)]
    values += [-1, -999, -1000, -(10**9), 0, 1, 999, 1000, 999_999_999, 10**9]
    for ts in values:
        assert events.iso_utc(ts) == _iso_reference(ts), ts


@pytest.mark.parametrize(
    ("ts_ns", "expected"),
    [
        (0, "1970-01-01T00:00:00+00:00"),  # zero microseconds: no fraction, like isoformat()
        (999, "1970-01-01T00:00:00+00:00"),  # below a microsecond is cut, not rounded
        (1_000, "1970-01-01T00:00:00.000001+00:00"),
        (1_795_000_000_123_456_789, "2026-11-18T11:06:40.123456+00:00"),
        (1_795_000_000_000_000_000, "2026-11-18T11:06:40+00:00"),
    ],
)
def test_iso_utc_known_values(ts_ns: int, expected: str) -> None:
    assert events.iso_utc(ts_ns) == expected


def test_iso_utc_prefix_cache_is_bounded() -> None:
    for sec in range(events._ISO_PREFIXES_MAX + 10):
        events.iso_utc(sec * 1_000_000_000)
    assert len(events._ISO_PREFIXES) <= events._ISO_PREFIXES_MAX


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001+00:00", 1000),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1970-01-01T00:00:01", 1_000_000_000),  # naive means UTC
        (" 2026-11-18T11:06:40.123456z ", 1_795_000_000_123_456_000),
    ],
)
def test_ns_from_iso_known_values(text: str, ns: int) -> None:
    assert events.ns_from_iso(text) == ns


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00", None, 17])
def test_parse_iso_refuses_what_is_not_iso(bad: object) -> None:
    assert events.parse_iso(bad) is None
    assert events.ns_from_iso(bad) is None


def test_iso_utc_round_trips_through_ns_from_iso() -> None:
    rng = random.Random(7)
    for _ in range(2_000):
        ts = rng.randrange(0, 4 * 10**18) // 1000 * 1000
        assert events.ns_from_iso(events.iso_utc(ts)) == ts
