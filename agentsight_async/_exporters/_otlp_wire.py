"""OTLP/HTTP bodies: the mapped spans and log records as protobuf or JSON, and the answers.

The typed boundary between the mapping (:mod:`._otlp_map`, plain records) and
the official ``opentelemetry-proto`` messages; nothing here is hand-encoded.
Importing this module imports ``opentelemetry.proto`` (the ``[otlp]`` extra),
so only the ``otlp`` exporter imports it.

* **Protobuf** (``application/x-protobuf``, the default).  Building protobuf
  messages from Python costs a call per field, so what every span of a
  conversation shares - its ``gen_ai.conversation.id``, ``session.id``,
  ``user.id``... - is serialised once per conversation block as a template
  ``Span`` (or ``LogRecord``) and merged into each new record
  (``MergeFromString``, in C); only the fields that differ are set one by one.
  Repeated fields merge by concatenation, so the shared attributes come first.
* **JSON** (``application/json``): the proto3 JSON mapping with the OTLP
  deviations - hex trace and span ids, integer enums, int64 values as decimal
  strings, lowerCamelCase keys - serialised by one ``orjson.dumps``.
* **Answers**: a 200's ``partial_success`` (rejected count and message), and
  the ``google.rpc.Status`` message of an error body when it can be read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final, NamedTuple

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from ._otlp_map import Attributes, AttrValue, LogData, SpanData

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
#: W3C trace flags of every record we send: sampled.
SAMPLED: Final = 1

#: One conversation's records: the attributes they share, then the records.
SpanBlock = tuple[Attributes, Sequence[SpanData]]
LogBlock = tuple[Attributes, Sequence[LogData]]


class Scope(NamedTuple):
    """Who is sending: the resource attributes and the instrumentation scope."""

    resource: Attributes
    name: str
    version: str


class Answer(NamedTuple):
    """What a 200 said: how many records were rejected (a partial success) and why."""

    rejected: int = 0
    message: str = ""


# --- protobuf -----------------------------------------------------------------------------


def _set_value(kv: KeyValue, key: str, value: AttrValue) -> None:
    kv.key = key
    kind = type(value)
    if kind is str:
        kv.value.string_value = value  # type: ignore[assignment]
    elif kind is bool:
        kv.value.bool_value = value  # type: ignore[assignment]
    elif kind is int:
        kv.value.int_value = value  # type: ignore[assignment]
    else:
        kv.value.double_value = float(value)


def _add_attributes(target: Any, attrs: Attributes) -> None:
    add = target.add
    for key, value in attrs:
        _set_value(add(), key, value)


def _filled(
    entries: Any,
    scope: Scope,
    group: str,
    field: str,
    blocks: Sequence[tuple[Attributes, Sequence[Any]]],
    template_type: type[Span] | type[LogRecord],
) -> Iterator[tuple[Any, Any]]:
    """Yield a new protobuf record for each mapped one, its conversation's attributes in.

    One ``Resource*`` entry of *entries* with our resource and scope; for each
    block, the shared attributes are serialised once as a *template_type*
    message and merged into every record of the block.
    """
    entry = entries.add()
    _add_attributes(entry.resource.attributes, scope.resource)
    scoped = getattr(entry, group).add()
    scoped.scope.name = scope.name
    scoped.scope.version = scope.version
    add = getattr(scoped, field).add
    for shared, items in blocks:
        template = template_type()
        _add_attributes(template.attributes, shared)
        serialized = template.SerializeToString()
        for item in items:
            record = add()
            record.MergeFromString(serialized)
            yield record, item


def traces_protobuf(scope: Scope, blocks: Sequence[SpanBlock]) -> bytes:
    """An ``ExportTraceServiceRequest`` of every block's spans, serialised."""
    request = ExportTraceServiceRequest()
    for span, s in _filled(request.resource_spans, scope, "scope_spans", "spans", blocks, Span):
        span.trace_id = s.trace_id.to_bytes(16, "big")
        span.span_id = s.span_id.to_bytes(8, "big")
        if s.parent_id:
            span.parent_span_id = s.parent_id.to_bytes(8, "big")
        span.flags = SAMPLED
        span.name = s.name
        span.kind = s.kind
        span.start_time_unix_nano = s.start_ns
        span.end_time_unix_nano = s.end_ns
        _add_attributes(span.attributes, s.attributes)
        if s.status:
            span.status.code = s.status
            if s.status_message:
                span.status.message = s.status_message
    return request.SerializeToString()


def logs_protobuf(scope: Scope, blocks: Sequence[LogBlock]) -> bytes:
    """An ``ExportLogsServiceRequest`` of every block's log records, serialised."""
    request = ExportLogsServiceRequest()
    records = _filled(request.resource_logs, scope, "scope_logs", "log_records", blocks, LogRecord)
    for record, r in records:
        record.time_unix_nano = r.time_ns
        record.observed_time_unix_nano = r.time_ns
        record.severity_number = r.severity
        record.event_name = r.event_name
        if r.trace_id:
            record.trace_id = r.trace_id.to_bytes(16, "big")
            record.span_id = r.span_id.to_bytes(8, "big")
            record.flags = SAMPLED
        _add_attributes(record.attributes, r.attributes)
    return request.SerializeToString()


# --- JSON ---------------------------------------------------------------------------------


def _json_value(value: AttrValue) -> dict[str, Any]:
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        return {"intValue": str(value)}
    return {"doubleValue": float(value)}


def _json_attributes(attrs: Attributes) -> list[dict[str, Any]]:
    return [{"key": key, "value": _json_value(value)} for key, value in attrs]


def _json_span(s: SpanData, head: list[dict[str, Any]]) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": f"{s.trace_id:032x}",
        "spanId": f"{s.span_id:016x}",
        "flags": SAMPLED,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": str(s.start_ns),
        "endTimeUnixNano": str(s.end_ns),
        "attributes": head + _json_attributes(s.attributes),
    }
    if s.parent_id:
        span["parentSpanId"] = f"{s.parent_id:016x}"
    if s.status:
        span["status"] = {"code": s.status, "message": s.status_message}
    return span


def _json_log(r: LogData, head: list[dict[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timeUnixNano": str(r.time_ns),
        "observedTimeUnixNano": str(r.time_ns),
        "severityNumber": r.severity,
        "eventName": r.event_name,
        "attributes": head + _json_attributes(r.attributes),
    }
    if r.trace_id:
        record["traceId"] = f"{r.trace_id:032x}"
        record["spanId"] = f"{r.span_id:016x}"
        record["flags"] = SAMPLED
    return record


def _json_request(
    scope: Scope,
    blocks: Sequence[tuple[Attributes, Sequence[Any]]],
    keys: tuple[str, str, str],
    convert: Any,
) -> bytes:
    """One OTLP/JSON request: *keys* name its three nested lists, *convert* makes a record."""
    records = []
    for shared, items in blocks:
        head = _json_attributes(shared)
        records += [convert(item, head) for item in items]
    outer, inner, field = keys
    resource = {"attributes": _json_attributes(scope.resource)}
    group = {"scope": {"name": scope.name, "version": scope.version}, field: records}
    return orjson.dumps({outer: [{"resource": resource, inner: [group]}]})


def traces_json(scope: Scope, blocks: Sequence[SpanBlock]) -> bytes:
    """The OTLP/JSON ``ExportTraceServiceRequest`` of every block's spans."""
    return _json_request(scope, blocks, ("resourceSpans", "scopeSpans", "spans"), _json_span)


def logs_json(scope: Scope, blocks: Sequence[LogBlock]) -> bytes:
    """The OTLP/JSON ``ExportLogsServiceRequest`` of every block's log records."""
    return _json_request(scope, blocks, ("resourceLogs", "scopeLogs", "logRecords"), _json_log)


# --- answers ------------------------------------------------------------------------------


def read_answer(body: bytes, content_type: str, signal: str) -> Answer:
    """The partial success in a 200's body (*signal*: ``traces`` or ``logs``).

    An empty or unreadable body is a full success: the specification lets a
    receiver answer 200 with nothing more to say.
    """
    if not body:
        return Answer()
    rejected_key = "rejected_spans" if signal == "traces" else "rejected_log_records"
    if content_type.split(";", 1)[0].strip().lower() == JSON:
        try:
            parsed = json.loads(body)
            partial = parsed.get("partialSuccess") or parsed.get("partial_success") or {}
            camel = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
            rejected = partial.get(camel, partial.get(rejected_key, 0))
            message = partial.get("errorMessage", partial.get("error_message", ""))
            return Answer(int(rejected or 0), str(message or ""))
        except (ValueError, TypeError, AttributeError):
            return Answer()
    response: ExportTraceServiceResponse | ExportLogsServiceResponse = (
        ExportTraceServiceResponse() if signal == "traces" else ExportLogsServiceResponse()
    )
    try:
        response.ParseFromString(body)
    except DecodeError:  # a body we cannot read tells us nothing
        return Answer()
    partial_success = response.partial_success
    return Answer(int(getattr(partial_success, rejected_key)), str(partial_success.error_message))


def error_message(body: bytes, content_type: str) -> str:
    """The ``message`` of an error body (``google.rpc.Status``), or ``""``.

    JSON bodies are read directly; protobuf ones when ``googleapis-common-protos``
    (which defines ``Status``) is installed.
    """
    if not body:
        return ""
    if content_type.split(";", 1)[0].strip().lower() == JSON:
        try:
            parsed = json.loads(body)
        except ValueError:
            return ""
        message = parsed.get("message") if isinstance(parsed, dict) else None
        return message if isinstance(message, str) else ""
    try:
        from google.rpc.status_pb2 import Status
    except ImportError:
        return ""
    status = Status()
    try:
        status.ParseFromString(body)
    except DecodeError:
        return ""
    return str(status.message)


__all__ = [
    "JSON",
    "PROTOBUF",
    "Answer",
    "Scope",
    "error_message",
    "logs_json",
    "logs_protobuf",
    "read_answer",
    "traces_json",
    "traces_protobuf",
]
