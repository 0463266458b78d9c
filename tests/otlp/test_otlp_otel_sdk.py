"""An agent instrumented with the real OpenTelemetry SDK, browsed in our collector.

Spans built by ``opentelemetry-sdk`` with GenAI attributes - as an OpenTelemetry
GenAI instrumentation emits them - are exported by the SDK's own OTLP/HTTP
exporter (``opentelemetry-exporter-otlp-proto-http``, protobuf, gzip) to the
collector, then read back through the JSON read API and the transcript page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from otlp_support import API_KEY

pytest.importorskip("starlette")
pytest.importorskip("opentelemetry.sdk")
otlp_http = pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: E402
    OTLPSpanExporter,
)
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402

from agentsight_collector import LocalCollector  # noqa: E402

AUTH = {"Authorization": f"Api-Key {API_KEY}"}


def messages(role: str, text: str) -> str:
    message: dict[str, object] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if role == "assistant":
        message["finish_reason"] = "stop"
    return json.dumps([message])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LocalCollector]:
    with LocalCollector(tmp_path / "otel.db", api_keys=[API_KEY]) as col:
        yield col


def test_spans_from_the_opentelemetry_sdk_are_stored_and_shown(collector: LocalCollector) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{collector.url}/v1/traces",
        headers=AUTH,
        compression=otlp_http.Compression.Gzip,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-agent"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("my.genai.instrumentation")
    conversation = {"gen_ai.conversation.id": "otel-conv-1"}
    history = [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Earlier question"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "Earlier answer"}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    with tracer.start_as_current_span(
        "invoke_agent WeatherAgent",
        kind=SpanKind.INTERNAL,
        attributes={
            **conversation,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "WeatherAgent",
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": messages("assistant", "Sunny, 21 °C."),
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 310,
                "gen_ai.usage.cache_read.input_tokens": 256,
                "gen_ai.usage.output_tokens": 12,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": '{"temp_c": 21}',
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_alerts",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_alerts"},
        ) as failing:
            failing.set_attribute("error.type", "TimeoutError")
            failing.set_status(Status(StatusCode.ERROR, "alerts service timed out"))
    assert provider.force_flush(10_000)
    provider.shutdown()

    with httpx.Client(base_url=collector.url, headers=AUTH, timeout=10) as client:
        found = client.get("/api/conversations/", params={"conversation_id": "otel-conv-1"})
        [summary] = found.json()["results"]
        conv = client.get(f"/api/conversations/{summary['id']}/").json()
        page = client.get(f"/conversations/{summary['id']}/")

    items = conv["transcript"]
    kinds = [item["type"] for item in items]
    assert kinds.count("message") == 2
    assert kinds[0] == "message"
    assert kinds[-1] == "message"
    question, answer = items[0], items[-1]
    assert (question["sender"], question["content"]) == ("end_user", "Weather in Paris?")
    assert (answer["sender"], answer["content"]) == ("agent", "Sunny, 21 °C.")
    [usage] = [i for i in items if i["type"] == "token_usage"]
    assert (usage["model"], usage["system"]) == ("gpt-4o-mini", "openai")
    assert (usage["input_tokens"], usage["cache_read_tokens"], usage["output_tokens"]) == (
        54,
        256,
        12,
    )
    tools = {i["action_name"]: i for i in items if i["type"] == "action"}
    assert tools["get_weather"]["tools_used"] == {"city": "Paris"}
    assert tools["get_weather"]["response"] == '{"temp_c": 21}'
    assert tools["get_weather"]["status"] == "ok"
    assert (tools["get_alerts"]["status"], tools["get_alerts"]["error_msg"]) == (
        "error",
        "alerts service timed out",
    )
    assert summary["token_usage"]["output_tokens"] == 12
    assert page.status_code == 200
    for text in ("Weather in Paris?", "Sunny, 21 °C.", "get_weather", "gpt-4o-mini"):
        assert text in page.text
    assert "Earlier question" not in page.text  # history the turn was given, not a new message
