"""The HTTP exporter base: one POST path (retries, outcomes, reporting), the pk cache, reprs."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from agentsight_async._exporters._http import HttpExporter, PkCache
from agentsight_async._exporters._ingest import IngestExporter
from agentsight_async._exporters._rest import RestExporter


def test_settings_and_exporter_reprs_hide_the_key(make_settings, stats, api_key) -> None:
    settings = make_settings()
    for exporter in (IngestExporter(settings, stats), RestExporter(settings, stats)):
        assert api_key not in repr(settings)
        assert api_key not in repr(exporter)
        assert api_key not in repr(vars(exporter))


def test_pk_cache_is_bounded_lru() -> None:
    cache = PkCache(maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert cache.get("c") == 3
    assert len(cache) == 2


class Probe(HttpExporter):
    """The base as a subclass sees it (``export`` is the wire format's job)."""

    name = "probe"

    async def export(self, batch: Any, deadline: float) -> list[list[Any]]:
        raise NotImplementedError


def probe(make_settings, stats, clock, answers: list[Any], seen: list[httpx.Request]):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Probe(
        make_settings(),
        stats,
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
    )


async def test_post_success_sends_json_once_with_key(make_settings, stats, clock) -> None:
    seen: list[httpx.Request] = []
    exp = probe(make_settings, stats, clock, [httpx.Response(201, json={"id": 9})], seen)
    outcome = await exp.post("api/track/", clock.now + 60, "key-1", json={"t": "é"})
    assert (outcome.ok, outcome.response) == (True, {"id": 9})
    [req] = seen
    assert str(req.url) == "https://agentsight.test/api/track/"
    assert req.content == b'{"t":"\\u00e9"}'
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == "key-1"
    assert req.headers["Content-Length"] == str(len(req.content))


async def test_post_raw_body_retried_byte_identical(make_settings, stats, clock) -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503), httpx.ConnectError("down"), httpx.Response(200, json={})]
    exp = probe(make_settings, stats, clock, answers, seen)
    outcome = await exp.post("api/attachments/", clock.now + 60, raw=(b"--B--\r\n", "multipart/x"))
    assert outcome.ok
    assert [r.content for r in seen] == [b"--B--\r\n"] * 3
    assert all(r.headers["Content-Type"] == "multipart/x" for r in seen)
    assert stats.retried == 2


@pytest.mark.parametrize("status", [400, 401, 413])
async def test_post_rejected_is_reported_with_context(
    make_settings, stats, clock, caplog, api_key, status
) -> None:
    caplog.set_level(logging.WARNING, logger="agentsight_async")
    body = {"detail": f"no ({api_key})"}
    answers = [httpx.Response(status, json=body), httpx.Response(status, json=body)]
    exp = probe(make_settings, stats, clock, answers, [])
    for _ in range(2):
        outcome = await exp.post("api/buttons/", clock.now + 60, json={})
        assert outcome.ok is False
        assert outcome.drop_reason == "rejected"
        assert outcome.error == f"HTTP {status}: no (ags_<redacted>)"
        assert outcome.response == {"detail": "no (ags_<redacted>)"}
        assert api_key not in repr(outcome)
        exc = outcome.exception  # what the flusher hands on_error
        assert getattr(exc, "status_code", None) == status
    assert api_key not in str(exc) + repr(getattr(exc, "response_data", None))
    refused = [r for r in caplog.records if "refused the API key" in r.getMessage()]
    assert len(refused) == (1 if status == 401 else 0)  # once per exporter
    assert api_key not in caplog.text


async def test_post_gave_up_keeps_the_reason(make_settings, stats, clock) -> None:
    exp = probe(make_settings, stats, clock, [httpx.Response(503)] * 50, [])
    outcome = await exp.post("api/track/", clock.now + 5, json={})
    assert outcome.drop_reason == "retries_exhausted"
    assert (outcome.error or "").startswith("POST /api/track/ retries_exhausted after")
    assert "HTTP 503" in (outcome.error or "")
    assert getattr(outcome.exception, "status_code", None) == 503
    assert stats.last_error is not None
    assert stats.last_error.startswith("probe: POST /api/track/")
