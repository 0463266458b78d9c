"""The otlp exporter's response rules, headers and secrets (scripted ``httpx.MockTransport``).

OTLP/HTTP: retry only 429, 502, 503 and 504 (and transport errors), honouring
``Retry-After``; never 400 or any other status; a partial success is not
retried and its rejected count shows in ``stats()``.  Credentials come only
from ``AGENTSIGHT_OTLP_HEADERS`` and never appear in logs, errors or stats.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from otlp_support import API_KEY, EventFactory

from agentsight_async._config import Settings
from agentsight_async._events import Batch, ConversationBatch, Event
from agentsight_async._exporters._otlp import OtlpExporter, otlp_base_url
from agentsight_async._stats import Stats

SECRET = "tok-9f8e7d6c5b4a"


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """Answers requests from a list of (status, headers, body) or exceptions, then 200."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else (200, {}, b"")
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        headers = {"Content-Type": request.headers["Content-Type"], **headers}
        return httpx.Response(status, headers=headers, content=body)


def make(
    settings: Settings, script: Script, stats: Stats, clock: FakeClock, **kw: Any
) -> OtlpExporter:
    return OtlpExporter(
        settings,
        stats,
        transport=httpx.MockTransport(script),
        sleep=clock.sleep,
        clock=clock,
        **kw,
    )


def batch(*events: Event) -> Batch:
    return Batch([ConversationBatch(events[0].conversation_id, list(events), {})])


async def run(exporter: OtlpExporter, b: Batch, clock: FakeClock, budget: float = 60) -> Any:
    try:
        return await exporter.export(b, clock.now + budget)
    finally:
        await exporter.aclose()


@pytest.mark.parametrize(
    ("status", "headers", "expected_wait"),
    [
        (429, {"Retry-After": "7"}, 7.0),
        (503, {"Retry-After": "2"}, 2.0),
        (502, {}, None),
        (504, {}, None),
    ],
)
async def test_retryable_statuses_are_retried_with_the_same_bytes(
    make_settings: Callable[..., Settings],
    stats: Stats,
    events: EventFactory,
    status: int,
    headers: dict[str, str],
    expected_wait: float | None,
) -> None:
    clock = FakeClock()
    script = Script((status, headers, b""))
    exporter = make(make_settings(), script, stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock)
    assert outcome.ok
    assert len(script.requests) == 2
    assert script.requests[0].content == script.requests[1].content
    assert stats.retried == 1
    assert stats.requests == 2
    if status == 429:  # the exporter-wide throttle: never sooner than Retry-After says
        assert expected_wait is not None
        [wait] = clock.sleeps
        assert wait >= expected_wait
    elif expected_wait is not None:
        assert clock.sleeps == [expected_wait]
    else:
        assert len(clock.sleeps) == 1
        assert 0 <= clock.sleeps[0] <= 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 413, 500, 501])
async def test_every_other_status_is_final(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory, status: int
) -> None:
    clock = FakeClock()
    script = Script((status, {}, b""))
    exporter = make(make_settings(), script, stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock)
    assert not outcome.ok
    assert outcome.drop_reason == "rejected"
    assert f"HTTP {status}" in (outcome.error or "")
    assert len(script.requests) == 1
    assert clock.sleeps == []


async def test_transport_errors_are_retried_until_the_deadline(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory
) -> None:
    clock = FakeClock()
    script = Script(*[httpx.ConnectError("refused")] * 100)
    exporter = make(make_settings(), script, stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock, budget=10)
    assert not outcome.ok
    assert outcome.drop_reason == "retries_exhausted"
    assert len(script.requests) > 2
    assert clock.now < 1010


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_a_partial_success_is_not_retried_and_is_counted(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory, encoding: str
) -> None:
    if encoding == "json":
        body = b'{"partialSuccess": {"rejectedSpans": "2", "errorMessage": "too old"}}'
    else:
        response = ExportTraceServiceResponse()
        response.partial_success.rejected_spans = 2
        response.partial_success.error_message = "too old"
        body = response.SerializeToString()
    clock = FakeClock()
    script = Script((200, {}, body))
    exporter = make(make_settings(otlp_encoding=encoding), script, stats, clock)
    [outcomes] = await run(exporter, batch(events.question(), events.answer()), clock)
    assert all(o.ok for o in outcomes)
    assert outcomes[0].response == {"rejected": 2, "error_message": "too old"}
    assert len(script.requests) == 1
    assert stats.partially_rejected == 2
    assert stats.as_dict()["partially_rejected"] == 2
    assert "2 rejected (too old)" in (stats.last_error or "")
    assert sum(stats.dropped.values()) == 0  # delivered: the receiver does not say which


async def test_a_warning_without_rejections_counts_nothing(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory
) -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.error_message = "deprecated attribute"
    clock = FakeClock()
    exporter = make(make_settings(), Script((200, {}, response.SerializeToString())), stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock)
    assert outcome.ok
    assert stats.partially_rejected == 0
    assert stats.last_error is None


async def test_an_unreadable_200_body_is_a_success(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory
) -> None:
    clock = FakeClock()
    exporter = make(make_settings(), Script((200, {}, b'{"id": 1}')), stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock)
    assert outcome.ok


async def test_headers_carry_only_the_otlp_credentials(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory
) -> None:
    clock = FakeClock()
    script = Script()
    settings = make_settings(
        api_key=API_KEY, otlp_headers=f"Authorization=Bearer%20{SECRET}, x-team = blue "
    )
    exporter = make(settings, script, stats, clock)
    big = [events.question("x" * 200) for _ in range(100)]
    await run(exporter, batch(events.button(), *big), clock)
    traces, logs = script.requests
    assert (traces.url.path, logs.url.path) == ("/v1/traces", "/v1/logs")
    assert str(traces.url).startswith("http://otel-collector.test:4318/")
    for request in (traces, logs):
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.headers["x-team"] == "blue"
        assert request.headers["Content-Type"] == "application/x-protobuf"
        assert API_KEY not in str(request.headers)
        assert API_KEY.encode() not in request.content
    assert traces.headers["Content-Encoding"] == "gzip"  # > 8 KiB
    decoded = ExportTraceServiceRequest.FromString(gzip.decompress(traces.content))
    assert len(decoded.resource_spans[0].scope_spans[0].spans) == 100
    assert "Content-Encoding" not in logs.headers  # one small log record


async def test_header_values_never_reach_logs_errors_or_stats(
    make_settings: Callable[..., Settings],
    stats: Stats,
    events: EventFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    echo = f'{{"code": 3, "message": "bad token {SECRET}"}}'.encode()
    script = Script((400, {"Content-Type": "application/json"}, echo))
    settings = make_settings(otlp_headers=f"Authorization=Bearer {SECRET}", otlp_encoding="json")
    caplog.set_level(logging.DEBUG)
    exporter = make(settings, script, stats, clock)
    [[outcome]] = await run(exporter, batch(events.question()), clock)
    assert not outcome.ok
    assert "bad token <redacted>" in (outcome.error or "")
    seen = [caplog.text, outcome.error or "", stats.last_error or "", str(outcome.exception)]
    seen.append(repr(settings))
    assert not [text for text in seen if SECRET in text]


def test_the_base_url_gets_the_signal_paths() -> None:
    assert otlp_base_url("https://api.agentsight.io") == "http://localhost:4318"
    assert otlp_base_url("http://c:4318/") == "http://c:4318"
    assert otlp_base_url("http://c:4318/otlp") == "http://c:4318/otlp"
    assert otlp_base_url("http://c:4318/v1/traces") == "http://c:4318"


async def test_one_conversation_that_cannot_be_mapped_does_not_sink_the_others(
    make_settings: Callable[..., Settings], stats: Stats, events: EventFactory
) -> None:
    clock = FakeClock()
    script = Script()
    bad = Event("unknown-kind", "bad", 1, 1, {}, 10)
    good = events.question(cid="good")
    exporter = make(make_settings(), script, stats, clock)
    b = Batch([ConversationBatch("bad", [bad], {}), ConversationBatch("good", [good], {})])
    [[failed], [ok]] = await run(exporter, b, clock)
    assert not failed.ok
    assert failed.drop_reason == "rejected"
    assert ok.ok
    assert len(script.requests) == 1
