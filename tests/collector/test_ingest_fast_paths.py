"""The ingest fast paths give what the general paths give (timestamps, span text, errors, GC)."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from pydantic_core import from_json, to_json

from agentsight_async._store import _rows, _timeutil, _validate
from agentsight_async._store._errors import IngestValidationError
from agentsight_collector import _app


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
