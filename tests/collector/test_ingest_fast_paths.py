"""The ingest fast paths give what the general paths give (timestamps, span text, errors, GC)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from pydantic_core import from_json, to_json

from agentsight_async._store import _rows, _timeutil, _validate
from agentsight_async._store._errors import IngestValidationError
from agentsight_collector import _app, _http


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T12:00:00.123456+00:00",
        "2026-01-01T12:00:00.000000+00:00",
        "2026-01-01T12:00:59.999999+00:00",
        "1999-12-31T23:59:59.000001+00:00",
        "2026-01-01 12:00:00.123456+00:00",  # the fast path's shape, with a space
        "2026-01-01T12:00:00.123456+02:00",  # another offset: the general parser
        "2026-01-01T12:00:00+00:00",
        "2026-01-01T12:00:00.123+00:00",
        "2026-01-01T12:00:00.123456",
        "2026-01-01T12:00:00.123456Z",
    ],
)
def test_the_timestamp_fast_path_agrees_with_the_parser(value: str) -> None:
    assert _timeutil.us_from_iso_cached(value) == _timeutil.us_from_iso(value)
    assert _timeutil.us_from_iso_cached(value) == _timeutil.us_from_iso(value)  # cached


@pytest.mark.parametrize(
    "value",
    [
        "2026-13-01T12:00:00.123456+00:00",
        "2026-01-01T12:00:00.12345x+00:00",
        "2026-01-01T12:00:00.١٢٣٤٥٦+00:00",  # non-ASCII digits
        "not a timestamp at all, but 32 c",
    ],
)
def test_the_timestamp_fast_path_refuses_what_the_parser_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="ISO"):
        _timeutil.us_from_iso(value)
    with pytest.raises(ValueError, match="ISO"):
        _timeutil.us_from_iso_cached(value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"span_id":"a","attributes":{"x":1e-5,"y":1e20,"z":-0.0,"t":"\\u00e9\\u2028\\u001f"}}',
        b'{"n":123456789012345678901234567890,"f":0.00001}',  # beyond 64 bits
        b'{"deep":[[[[{"a":null,"b":true,"c":[1,2.5,"x"]}]]]]}',
    ],
)
def test_the_span_archive_text_is_what_pydantic_core_wrote(body: bytes) -> None:
    value = from_json(body, allow_inf_nan=False)
    assert _rows.dumps_json(value) == to_json(value).decode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1e-5,"b":1e20,"c":-0.0,"d":0.1,"e":-9223372036854775808,"f":18446744073709551615}',
        b'{"t":"\\u00e9\\u2028\\u001f\\ud83d\\ude00","u":"\xc3\xa9","n":null,"x":[true,false]}',
        b'{"a":1,"a":2,"b":{"c":[1,2.5,"x",{"d":{}}]}}',
        b'{"big":123456789012345678901234567890,"neg":-123456789012345678901}',  # beyond 64 bits
        b'{"s":"12345678901234567890 - twenty digits in a string"}',
        b'{"huge":1E400}',  # orjson refuses it; from_json reads infinity
        b' {"spaced" : [ 1 , 2 ] } ',
    ],
)
def test_the_body_parser_gives_what_pydantic_core_gave(body: bytes) -> None:
    parsed = _http.parse_json_object(body)
    assert parsed == from_json(body, allow_inf_nan=False)
    assert repr(parsed) == repr(from_json(body, allow_inf_nan=False))  # int stays int


@pytest.mark.parametrize(
    "number",
    [
        -123456789012345678901234567890,
        123456789012345678901234567890,
        -9999999999999999999,  # 19 digits, below the 64-bit minimum
        -9223372036854775809,
        18446744073709551616,
        99999999999999999999,
    ],
)
@pytest.mark.parametrize("spacing", ["", " ", "\n", "\t"])
def test_an_integer_beyond_64_bits_is_not_read_as_a_float(number: int, spacing: str) -> None:
    for body in (f'{{"n":{spacing}{number}}}', f'{{"n":[1,{spacing}{number}]}}'):
        parsed = _http.parse_json_object(body.encode())
        found = parsed["n"] if isinstance(parsed["n"], int) else parsed["n"][1]
        assert found == number
        assert type(found) is int


def test_a_digit_run_in_a_hex_id_does_not_count_as_a_long_integer() -> None:
    may_hold_long_integer = _http.may_hold_long_integer
    assert not may_hold_long_integer(b'{"trace_id":"18ed7ca7b12345678901234567890123"}')
    assert not may_hold_long_integer(b'{"n":123456789012345678.5e3,"m":-123456789012345678}')
    assert may_hold_long_integer(b'{"note":"call 1234567890123456789 now"}')  # conservative


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "empty"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b"[1, 2]", "got list"),
        (b'{"a": 1', "JSON parse error"),
    ],
)
def test_a_body_the_fast_parser_refuses_gets_the_same_400(body: bytes, detail: str) -> None:
    with pytest.raises(_http.RequestError) as err:
        _http.parse_json_object(body)
    assert err.value.status == 400
    assert detail in err.value.detail


def _refused(block: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(IngestValidationError) as err:
        _validate.ingest({"conversations": [block]})
    errors: dict[str, Any] = err.value.body["conversations"][0]["errors"]
    return errors


def test_a_block_without_spans_still_reports_its_bad_fields() -> None:
    errors = _refused({"conversation_id": "c", "metadata": "not an object"})
    assert set(errors) == {"metadata", "spans"}
    errors = _refused({"spans": [], "name": 5})
    assert set(errors) == {"conversation_id", "name"}


def test_a_block_of_only_id_and_spans_is_accepted_without_fields() -> None:
    (block,) = _validate.ingest({"conversations": [{"conversation_id": "c", "spans": []}]})
    assert block.conversation_id == "c"
    assert block.fields == {}
    assert block.spans == []


@pytest.fixture
def gc_state() -> Any:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("gc_state")
def test_the_gc_pause_holds_while_any_thread_is_inside() -> None:
    gc.enable()
    pause = _app._GcPause()
    with pause:
        assert not gc.isenabled()
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_the_gc_pause_leaves_a_disabled_gc_disabled() -> None:
    gc.disable()
    pause = _app._GcPause()
    with pause:
        assert not gc.isenabled()
    assert not gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_an_unbroken_gc_pause_ends_with_a_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.enable()
    collections: list[int] = []
    monkeypatch.setattr(_app.gc, "collect", lambda *a: collections.append(1) or 0)
    pause = _app._GcPause()
    monkeypatch.setattr(pause, "MAX_PAUSE", 0.0)
    with pause:
        assert collections == []
        with pause:  # entered after the pause lasted longer than MAX_PAUSE
            pass
        assert collections == [1]
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_state")
def test_an_embedded_collector_never_touches_the_process_gc(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause is for a collector that owns its process (``serve``), not LocalCollector."""
    import httpx

    from agentsight_async import ConversationTracker
    from agentsight_collector import LocalCollector

    switched: list[str] = []
    monkeypatch.setattr(_app.gc, "disable", lambda: switched.append("disable"))
    monkeypatch.setattr(_app.gc, "enable", lambda: switched.append("enable"))
    with LocalCollector(tmp_path / "embedded.db", dev=True) as collector:
        with ConversationTracker(endpoint=collector.url) as tracker:
            tracker.track_human_message("hello", conversation_id="gc-1")
            assert tracker.flush(timeout=10)
        listed = httpx.get(f"{collector.url}/api/conversations/?conversation_id=gc-1").json()
    assert listed["count"] == 1
    assert switched == []


def _reference_range(spans: list[_validate.IngestSpan]) -> tuple[Any, Any]:
    """The time range as ``min``/``max`` over ``(µs, text)`` pairs define it."""
    points = []
    for span in spans:
        points.append((span.started_us, span.started_at))
        if span.ended_us is not None and span.ended_at != span.started_at:
            points.append((span.ended_us, span.ended_at))
        points += [(us, at) for _, at, us, _ in span.events if at != span.started_at]
    lo, hi = min(points), max(points)
    return (lo[1], lo[0]), (hi[1], hi[0])


def test_the_time_range_orders_by_instant_then_by_text() -> None:
    same = ["2026-01-01T12:00:00+00:00", "2026-01-01T13:00:00+01:00", "2026-01-01T12:00:00Z"]
    spans = [
        {"span_id": "a", "started_at": same[1], "ended_at": "2026-01-01T12:00:05+00:00"},
        {
            "span_id": "b",
            "started_at": same[0],
            "ended_at": same[2],
            "events": [{"name": "e", "timestamp": "2026-01-01T14:00:05+02:00", "attributes": {}}],
        },
        {"span_id": "c", "started_at": same[2], "ended_at": "2026-01-01T11:00:05-01:00"},
    ]
    (block,) = _validate.ingest({"conversations": [{"conversation_id": "c", "spans": spans}]})
    assert (block.first, block.last) == _reference_range(block.spans)
    assert block.first == (min(same), _timeutil.us_from_iso(same[0]))
    ends = ["2026-01-01T12:00:05+00:00", "2026-01-01T11:00:05-01:00", "2026-01-01T14:00:05+02:00"]
    assert block.last == (max(ends), _timeutil.us_from_iso(ends[0]))
