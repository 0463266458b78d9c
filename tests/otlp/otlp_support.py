"""Helpers for the OTLP tests: events, a real OTLP receiver on loopback, decoding.

``OtlpReceiver`` is a small real HTTP/1.1 server (stdlib ``http.server`` in a
thread) that decodes every request with the official ``opentelemetry-proto``
messages - protobuf as is, OTLP/JSON through ``json_format`` after turning
the hex ids back into bytes - records it, and can be told to misbehave:
answer a status (with headers), answer a partial success, or hang up.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentsight_async import _events as ev_mod
from agentsight_async._events import Event

API_KEY = "ags_0123456789abcdef0123456789abcdef_abc123"
BASE_TS = 1_795_000_000_123_456_000


class EventFactory:
    """Events in tracking order, 1 ms apart, with the data shapes validation produces."""

    def __init__(self, start: int = BASE_TS) -> None:
        self._tick = itertools.count()
        self.start = start

    def __call__(self, kind: str, cid: str = "chat-1", **data: Any) -> Event:
        ts = self.start + next(self._tick) * 1_000_000
        return Event(kind, cid, ts, ev_mod.next_seq(), data, 200)

    def conversation(self, cid: str = "chat-1", *, opened: bool = False, **fields: Any) -> Event:
        data: dict[str, Any] = dict.fromkeys(
            ("customer_id", "customer_ip_address", "device", "source", "language", "name")
        )
        data.update({"environment": "development", "metadata": None, **fields})
        data["is_used"] = not opened
        kind = ev_mod.CONVERSATION_OPENED if opened else ev_mod.CONVERSATION
        return self(kind, cid, **data)

    def question(self, text: str = "hi", cid: str = "chat-1", **extra: Any) -> Event:
        data = {"content": text, "sender": "end_user", "metadata": {}, **extra}
        return self(ev_mod.QUESTION, cid, **data)

    def answer(self, text: str = "hello", cid: str = "chat-1", **extra: Any) -> Event:
        data = {"content": text, "sender": "agent", "metadata": {}, **extra}
        return self(ev_mod.ANSWER, cid, **data)

    def action(self, name: str = "lookup", cid: str = "chat-1", **extra: Any) -> Event:
        return self(ev_mod.ACTION, cid, **{"action_name": name, "metadata": {}, **extra})

    def usage(self, cid: str = "chat-1", **extra: Any) -> Event:
        counts = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        counts["embedding_tokens"] = 0
        return self(ev_mod.TOKEN_USAGE, cid, **{**counts, **extra})

    def button(self, cid: str = "chat-1", **extra: Any) -> Event:
        data = {"button_event": "feedback", "label": "Helpful", "value": "yes", "metadata": {}}
        return self(ev_mod.BUTTON, cid, **{**data, **extra})

    def files(self, cid: str = "chat-1", sender: str = "end_user", **extra: Any) -> Event:
        atts = [{"filename": "a.png", "mime_type": "image/png", "data": "aGVsbG8="}]
        data = {"attachments": atts, "metadata": {}, "mode": "base64", "sender": sender}
        return self(ev_mod.ATTACHMENTS, cid, **{**data, **extra})


# --- decoding ----------------------------------------------------------------------------


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON ids are hex; proto3 JSON (``json_format``) wants base64 bytes."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                out[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def decode(path: str, headers: dict[str, str], raw: bytes) -> Any:
    """The request body as an ``Export*ServiceRequest`` (gzip and JSON undone)."""
    if headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    message: Any = (
        ExportTraceServiceRequest() if path == "/v1/traces" else ExportLogsServiceRequest()
    )
    if headers.get("Content-Type", "").startswith("application/json"):
        json_format.ParseDict(_hex_ids_to_base64(json.loads(raw)), message)
    else:
        message.ParseFromString(raw)
    return message


def value_of(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return None if which is None else getattr(value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in kvs}


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """Every span as a plain dict (hex ids, attributes as a dict)."""
    out = []
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(
                    {
                        "name": sp.name,
                        "kind": sp.kind,
                        "trace_id": sp.trace_id.hex(),
                        "span_id": sp.span_id.hex(),
                        "parent": sp.parent_span_id.hex() or None,
                        "start": sp.start_time_unix_nano,
                        "end": sp.end_time_unix_nano,
                        "status": sp.status.code,
                        "status_message": sp.status.message,
                        "attributes": attributes(sp.attributes),
                        "resource": attributes(rs.resource.attributes),
                        "scope": (ss.scope.name, ss.scope.version),
                    }
                )
    return out


def logs_of(request: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """Every log record as a plain dict."""
    out = []
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                out.append(
                    {
                        "event_name": rec.event_name,
                        "time": rec.time_unix_nano,
                        "severity": rec.severity_number,
                        "trace_id": rec.trace_id.hex() or None,
                        "span_id": rec.span_id.hex() or None,
                        "attributes": attributes(rec.attributes),
                    }
                )
    return out


# --- the receiver ------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    status: int | str
    message: Any = None


@dataclass
class OtlpReceiver:
    """State shared with the handler thread; guarded by ``lock``."""

    faults: deque[tuple[Any, ...]] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, *faults: tuple[Any, ...]) -> None:
        """Queue faults for the next requests: ``("status", 503)``, ``("status", 429,
        {"Retry-After": "1"}, body)``, ``("partial", n, "why")`` or ``("drop",)``."""
        with self.lock:
            self.faults.extend(faults)

    def delivered(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [
                r for r in self.requests if r.status == 200 and (path is None or r.path == path)
            ]

    def spans(self) -> list[dict[str, Any]]:
        return [s for r in self.delivered("/v1/traces") for s in spans_of(r.message)]

    def logs(self) -> list[dict[str, Any]]:
        return [rec for r in self.delivered("/v1/logs") for rec in logs_of(r.message)]


def _handler(state: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = dict(self.headers)
            ctype = headers.get("Content-Type", "")
            with state.lock:
                fault = state.faults.popleft() if state.faults else None
            status: int | str = 200
            body = b""
            extra: dict[str, str] = {}
            message = None
            if fault is None or fault[0] == "partial":
                message = decode(self.path, headers, raw)
                if fault is not None:
                    body = _partial(self.path, ctype, fault[1], fault[2])
            elif fault[0] == "drop":
                status = "dropped"
            else:
                status = fault[1]
                extra = fault[2] if len(fault) > 2 else {}
                body = fault[3] if len(fault) > 3 else b""
            with state.lock:
                state.requests.append(Received(self.path, headers, raw, status, message))
            if status == "dropped":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            assert isinstance(status, int)
            self.send_response(status)
            self.send_header("Content-Type", ctype or "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _partial(path: str, ctype: str, rejected: int, why: str) -> bytes:
    traces = path == "/v1/traces"
    if ctype.startswith("application/json"):
        key = "rejectedSpans" if traces else "rejectedLogRecords"
        return json.dumps({"partialSuccess": {key: str(rejected), "errorMessage": why}}).encode()
    response: Any = ExportTraceServiceResponse() if traces else ExportLogsServiceResponse()
    if traces:
        response.partial_success.rejected_spans = rejected
    else:
        response.partial_success.rejected_log_records = rejected
    response.partial_success.error_message = why
    return bytes(response.SerializeToString())


def serve_receiver() -> Iterator[OtlpReceiver]:
    """Run an :class:`OtlpReceiver` on 127.0.0.1 for the duration of the generator."""
    state = OtlpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
