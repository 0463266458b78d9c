"""The collector's OTLP intake: POST /v1/traces and /v1/logs over real HTTP on loopback.

Encodings (protobuf, JSON, gzip), auth, the specification's answers (200 with a
partial success, 400/401/413/415 as ``google.rpc.Status``), replays, how a
conversation is found for a span, and spans that are not conversation data.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from otlp_support import API_KEY

pytest.importorskip("starlette")
from agentsight_collector import LocalCollector

PROTOBUF = {"Content-Type": "application/x-protobuf", "Authorization": f"Api-Key {API_KEY}"}
JSON = {"Content-Type": "application/json", "Authorization": f"Api-Key {API_KEY}"}
TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_795_000_000_000_000_000


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_request(*spans: dict[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for i, s in enumerate(spans):
        span = scope_spans.spans.add()
        span.trace_id = bytes.fromhex(s.get("trace", TRACE))
        span.span_id = bytes.fromhex(s.get("id", f"{i + 1:016x}"))
        if s.get("parent"):
            span.parent_span_id = bytes.fromhex(s["parent"])
        span.name = s.get("name", "span")
        span.kind = s.get("kind", 1)
        span.start_time_unix_nano = s.get("start", T0 + i * 1000)
        span.end_time_unix_nano = s.get("end", T0 + i * 1000 + 500)
        span.attributes.extend(kv(k, v) for k, v in s.get("attrs", {}).items())
        if s.get("status"):
            span.status.code = s["status"]
            span.status.message = s.get("status_message", "")
    return request


def user(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LocalCollector]:
    with LocalCollector(tmp_path / "c.db", api_keys=[API_KEY], max_body_bytes=64_000) as col:
        yield col


@pytest.fixture
def client(collector: LocalCollector) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.url, timeout=10) as c:
        yield c


def transcript(client: httpx.Client, cid: str) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Api-Key {API_KEY}"}
    found = client.get("/api/conversations/lookup/", params={"conversation_id": cid}, headers=auth)
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = client.get(
        f"/api/conversations/{found.json()['id']}/", headers=auth
    ).json()["transcript"]
    return items


def test_protobuf_gzip_and_json_bodies_are_stored(client: httpx.Client) -> None:
    request = trace_request(
        {
            "name": "invoke_agent",
            "attrs": {
                "gen_ai.conversation.id": "c1",
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.input.messages": user("first"),
            },
        }
    )
    answer = client.post(
        "/v1/traces",
        content=gzip.compress(request.SerializeToString()),
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "00000000000000aa",
                                "name": "invoke_agent",
                                "kind": 1,
                                "startTimeUnixNano": str(T0 + 10_000),
                                "endTimeUnixNano": T0 + 10_000,  # numbers are accepted too
                                "unknownField": {"ignored": True},
                                "attributes": [
                                    {"key": "session.id", "value": {"stringValue": "c1"}},
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "invoke_agent"},
                                    },
                                    {
                                        "key": "gen_ai.input.messages",
                                        "value": {"stringValue": user("second")},
                                    },
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    answer = client.post("/v1/traces", content=json.dumps(body), headers=JSON)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    items = transcript(client, "c1")
    assert [(i["sender"], i["content"]) for i in items] == [
        ("end_user", "first"),
        ("end_user", "second"),
    ]


def test_auth_is_the_collectors(client: httpx.Client, tmp_path: Path) -> None:
    body = trace_request().SerializeToString()
    for headers in (
        {"Content-Type": "application/x-protobuf"},
        {**PROTOBUF, "Authorization": "Api-Key ags_wrong"},
    ):
        answer = client.post("/v1/traces", content=body, headers=headers)
        assert answer.status_code == 401
        assert Status.FromString(answer.content).code == 16  # UNAUTHENTICATED
    with LocalCollector(tmp_path / "dev.db", dev=True) as dev:
        answer = httpx.post(
            f"{dev.url}/v1/logs",
            content=b"",
            headers={"Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        assert answer.status_code == 200


def test_refusals_are_google_rpc_status(client: httpx.Client) -> None:
    answer = client.post(
        "/v1/traces", content=b"hello", headers={**PROTOBUF, "Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    answer = client.post("/v1/traces", content=b"\xff\xff\xff", headers=PROTOBUF)
    assert answer.status_code == 400
    status = Status.FromString(answer.content)
    assert status.code == 3
    assert "protobuf" in status.message
    answer = client.post("/v1/logs", content=b"[1, 2]", headers=JSON)
    assert answer.status_code == 400
    assert answer.json()["code"] == 3
    answer = client.post("/v1/traces", content=b"x" * 70_000, headers=PROTOBUF)
    assert answer.status_code == 413


def test_a_replayed_request_stores_nothing_twice(client: httpx.Client) -> None:
    request = trace_request(
        {
            "name": "chat gpt-4o",
            "kind": 3,
            "attrs": {
                "gen_ai.conversation.id": "c2",
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.cache_read.input_tokens": 100,
                "gen_ai.usage.output_tokens": 9,
            },
        }
    ).SerializeToString()
    for _ in range(3):
        assert client.post("/v1/traces", content=request, headers=PROTOBUF).status_code == 200
    [usage] = transcript(client, "c2")
    assert usage["type"] == "token_usage"
    assert (usage["input_tokens"], usage["cache_read_tokens"], usage["output_tokens"]) == (
        20,
        100,
        9,
    )
    assert (usage["model"], usage["system"], usage["total_tokens"]) == ("gpt-4o", "openai", 129)


def test_how_a_span_finds_its_conversation(client: httpx.Client) -> None:
    other_trace = "0" * 31 + "9"
    request = trace_request(
        {  # names the conversation; its trace's other spans follow it
            "id": "00000000000000a1",
            "name": "invoke_agent",
            "attrs": {"gen_ai.conversation.id": "named", "gen_ai.operation.name": "invoke_agent"},
        },
        {
            "parent": "00000000000000a1",
            "name": "execute_tool search",
            "attrs": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        },
        {  # GenAI, no conversation anywhere in its trace: the trace is the conversation
            "trace": other_trace,
            "name": "execute_tool calc",
            "status": 2,
            "status_message": "division by zero",
            "attrs": {"gen_ai.operation.name": "execute_tool", "error.type": "ZeroDivisionError"},
        },
        {"trace": "0" * 31 + "8", "name": "GET /health", "attrs": {"http.method": "GET"}},
    )
    answer = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 0
    assert "1 record(s) carried no conversation id" in partial.error_message
    [tool] = transcript(client, "named")
    assert (tool["action_name"], tool["status"]) == ("search", "ok")
    [failed] = transcript(client, f"otel-trace-{other_trace}")
    assert (failed["action_name"], failed["status"]) == ("calc", "error")
    assert failed["error_msg"] == "division by zero"


def test_files_in_messages_become_attachments(client: httpx.Client) -> None:
    parts = [
        {"type": "text", "content": "see attached"},
        {"type": "blob", "modality": "image", "mime_type": "image/png", "name": "a.png",
         "content": base64.b64encode(b"png bytes").decode()},
        {"type": "uri", "modality": "document", "uri": "https://example.test/doc.pdf"},
    ]  # fmt: skip
    broken = [{"type": "blob", "modality": "image", "name": "b.png", "content": "%%%"}]
    request = trace_request(
        {
            "name": "invoke_agent",
            "attrs": {
                "gen_ai.conversation.id": "files",
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": parts}]),
            },
        },
        {
            "name": "agentsight.message",
            "attrs": {
                "gen_ai.conversation.id": "files",
                "agentsight.message.sender": "agent",
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": broken}]),
            },
        },
    )
    assert (
        client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF).status_code
        == 200
    )
    message, stored, described, undecodable = transcript(client, "files")
    assert message["content"] == "see attached"
    assert [(f["filename"], f["downloadable"]) for f in stored["files"]] == [("a.png", True)]
    assert stored["mode"] == "base64"
    assert [(f["filename"], f["downloadable"]) for f in described["files"]] == [
        ("https://example.test/doc.pdf", False)
    ]
    assert [(f["filename"], f["downloadable"]) for f in undecodable["files"]] == [("b.png", False)]


def test_one_bad_conversation_is_a_partial_success(client: httpx.Client) -> None:
    request = trace_request(
        {"attrs": {"gen_ai.conversation.id": "x" * 300, "gen_ai.operation.name": "chat"}},
        {"attrs": {"gen_ai.conversation.id": "fine", "gen_ai.operation.name": "chat"}},
    )
    answer = client.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1
    assert "longer than 255" in partial.error_message
    assert len(transcript(client, "fine")) == 1


def test_log_events_buttons_and_the_rest(client: httpx.Client) -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for name, attrs in (
        (
            "app.widget.click",
            {"session.id": "btn", "app.widget.id": "thumbs", "app.widget.name": "Up"},
        ),
        ("gen_ai.client.inference.operation.details", {"session.id": "btn"}),
    ):
        rec = records.add(time_unix_nano=T0, event_name=name)
        rec.attributes.extend(kv(k, v) for k, v in attrs.items())
    for _ in range(2):
        answer = client.post("/v1/logs", content=request.SerializeToString(), headers=PROTOBUF)
        partial = ExportLogsServiceResponse.FromString(answer.content).partial_success
        assert (partial.rejected_log_records, "1 record(s)" in partial.error_message) == (0, True)
    [button] = transcript(client, "btn")
    assert (button["button_event"], button["label"]) == ("thumbs", "Up")
