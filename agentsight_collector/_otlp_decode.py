"""OTLP/HTTP request bodies - protobuf or JSON - as plain spans and log records.

Both encodings end up in the same two shapes (:class:`OtelSpan`,
:class:`OtelLog`), so the mapping to transcripts (:mod:`._otlp_map`) is
written once.  Protobuf is parsed by the official ``opentelemetry-proto``
messages; JSON follows the OTLP/JSON rules: trace and span ids are hex
strings, enums integers, int64 values decimal strings (numbers are accepted
too), keys lowerCamelCase (snake_case is accepted too, as proto3 JSON parsers
do) and unknown fields are ignored.

Attribute values become Python values: strings, booleans, integers, floats
(non-finite ones as text, so they can be stored as JSON), lists (``arrayValue``),
dicts (``kvlistValue``) and base64 text (``bytesValue``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_M = TypeVar("_M", ExportTraceServiceRequest, ExportLogsServiceRequest)


class DecodeFailure(ValueError):
    """The body is not a valid OTLP request of the expected kind (a 400)."""


@dataclass(slots=True)
class OtelSpan:
    """One span as received.  Ids are lowercase hex (``parent_span_id`` None: a root)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = 0
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class OtelLog:
    """One log record as received (trace context ids in hex, or None)."""

    time_ns: int
    event_name: str
    severity: int
    trace_id: str | None
    span_id: str | None
    attributes: dict[str, Any]
    body: Any = None
    resource: dict[str, Any] = field(default_factory=dict)


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


# --- protobuf -------------------------------------------------------------------------------


def _pb_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return _finite(value.double_value)
    if which == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _pb_attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _pb_attributes(attrs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in attrs}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw and any(raw) else None


def _parsed(message: _M, body: bytes) -> _M:
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise DecodeFailure(f"not an OTLP protobuf request: {exc}") from None
    return message


def _pb_records(
    resource_groups: Iterable[Any], group: str, field: str
) -> Iterator[tuple[dict[str, Any], dict[str, str], Any]]:
    """(resource attributes, scope, record) for every record of a parsed protobuf request."""
    for entry in resource_groups:
        resource = _pb_attributes(entry.resource.attributes)
        for scoped in getattr(entry, group):
            scope = {"name": scoped.scope.name, "version": scoped.scope.version}
            for record in getattr(scoped, field):
                yield resource, scope, record


def spans_from_protobuf(body: bytes) -> list[OtelSpan]:
    """The spans of an ``ExportTraceServiceRequest`` (:class:`DecodeFailure`: it does not parse)."""
    request = _parsed(ExportTraceServiceRequest(), body)
    return [
        OtelSpan(
            trace_id=sp.trace_id.hex(),
            span_id=sp.span_id.hex(),
            parent_span_id=_hex(sp.parent_span_id),
            name=sp.name,
            kind=int(sp.kind),
            start_ns=sp.start_time_unix_nano,
            end_ns=sp.end_time_unix_nano,
            attributes=_pb_attributes(sp.attributes),
            status_code=int(sp.status.code),
            status_message=sp.status.message,
            resource=resource,
            scope=scope,
        )
        for resource, scope, sp in _pb_records(request.resource_spans, "scope_spans", "spans")
    ]


def logs_from_protobuf(body: bytes) -> list[OtelLog]:
    """Log records of an ``ExportLogsServiceRequest``; a body that does not parse raises
    :class:`DecodeFailure`."""
    request = _parsed(ExportLogsServiceRequest(), body)
    return [
        OtelLog(
            time_ns=rec.time_unix_nano or rec.observed_time_unix_nano,
            event_name=rec.event_name,
            severity=int(rec.severity_number),
            trace_id=_hex(rec.trace_id),
            span_id=_hex(rec.span_id),
            attributes=_pb_attributes(rec.attributes),
            body=_pb_value(rec.body) if rec.HasField("body") else None,
            resource=resource,
        )
        for resource, _, rec in _pb_records(request.resource_logs, "scope_logs", "log_records")
    ]


# --- JSON -----------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None and snake else value


def _list(obj: Mapping[str, Any], camel: str, snake: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DecodeFailure(f"{camel} must be a list")
    return value


def _int(value: Any, what: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise DecodeFailure(f"{what} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DecodeFailure(f"{what} must be an integer") from None


def _json_id(value: Any, length: int, what: str) -> str | None:
    """A hex id (the OTLP/JSON rule); base64 (plain proto3 JSON) is accepted too."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise DecodeFailure(f"{what} must be a hex string")
    text = value.lower()
    if len(text) == 2 * length:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        if raw:
            return raw.hex() if any(raw) else None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != length:
        raise DecodeFailure(f"{what} must be {2 * length} hex characters")
    return raw.hex() if any(raw) else None


def _json_value(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return None
    for camel, snake in (("stringValue", "string_value"), ("boolValue", "bool_value")):
        found = _get(value, camel, snake)
        if found is not None:
            return found
    found = _get(value, "intValue", "int_value")
    if found is not None:
        return _int(found, "intValue")
    found = _get(value, "doubleValue", "double_value")
    if found is not None:
        return _finite(float(found))
    found = _get(value, "arrayValue", "array_value")
    if found is not None:
        return [_json_value(v) for v in _list(found, "values", "values")]
    found = _get(value, "kvlistValue", "kvlist_value")
    if found is not None:
        return _json_attributes(_list(found, "values", "values"))
    return _get(value, "bytesValue", "bytes_value")


def _json_attributes(items: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items:
        if isinstance(kv, Mapping) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise DecodeFailure(f"not JSON: {exc}") from None
    if not isinstance(parsed, Mapping):
        raise DecodeFailure("expected a JSON object")
    return parsed


#: The three nested lists of an OTLP/JSON request, per signal (lowerCamelCase, snake_case).
_JSON_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "traces": (
        ("resourceSpans", "resource_spans"),
        ("scopeSpans", "scope_spans"),
        ("spans", "spans"),
    ),
    "logs": (
        ("resourceLogs", "resource_logs"),
        ("scopeLogs", "scope_logs"),
        ("logRecords", "log_records"),
    ),
}


def _json_records(
    body: bytes, signal: str
) -> Iterator[tuple[dict[str, Any], Mapping[str, Any], Mapping[str, Any]]]:
    """(resource attributes, scope, record) for every record of an OTLP/JSON request."""
    outer, inner, items = _JSON_PATHS[signal]
    for res in _list(_json_object(body), *outer):
        if not isinstance(res, Mapping):
            raise DecodeFailure(f"{outer[0]} entries must be objects")
        resource = _json_attributes(_list(_get(res, "resource") or {}, "attributes", "attributes"))
        for group in _list(res, *inner):
            if not isinstance(group, Mapping):
                raise DecodeFailure(f"{inner[0]} entries must be objects")
            scope = _get(group, "scope") or {}
            for record in _list(group, *items):
                if not isinstance(record, Mapping):
                    raise DecodeFailure(f"{items[0]} entries must be objects")
                yield resource, scope, record


def _json_span(
    resource: dict[str, Any], scope: Mapping[str, Any], sp: Mapping[str, Any]
) -> OtelSpan:
    status = _get(sp, "status") or {}
    return OtelSpan(
        trace_id=_json_id(_get(sp, "traceId", "trace_id"), 16, "traceId") or "0" * 32,
        span_id=_json_id(_get(sp, "spanId", "span_id"), 8, "spanId") or "0" * 16,
        parent_span_id=_json_id(_get(sp, "parentSpanId", "parent_span_id"), 8, "parent"),
        name=str(_get(sp, "name") or ""),
        kind=_int(_get(sp, "kind"), "kind"),
        start_ns=_int(_get(sp, "startTimeUnixNano", "start_time_unix_nano"), "start"),
        end_ns=_int(_get(sp, "endTimeUnixNano", "end_time_unix_nano"), "end"),
        attributes=_json_attributes(_list(sp, "attributes", "attributes")),
        status_code=_int(_get(status, "code"), "status.code"),
        status_message=str(_get(status, "message") or ""),
        resource=resource,
        scope={"name": str(scope.get("name") or ""), "version": str(scope.get("version") or "")},
    )


def _json_log(
    resource: dict[str, Any], _scope: Mapping[str, Any], rec: Mapping[str, Any]
) -> OtelLog:
    time_ns = _int(_get(rec, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
    observed = _int(_get(rec, "observedTimeUnixNano", "observed_time_unix_nano"), "observed")
    return OtelLog(
        time_ns=time_ns or observed,
        event_name=str(_get(rec, "eventName", "event_name") or ""),
        severity=_int(_get(rec, "severityNumber", "severity_number"), "severityNumber"),
        trace_id=_json_id(_get(rec, "traceId", "trace_id"), 16, "traceId"),
        span_id=_json_id(_get(rec, "spanId", "span_id"), 8, "spanId"),
        attributes=_json_attributes(_list(rec, "attributes", "attributes")),
        body=_json_value(_get(rec, "body")),
        resource=resource,
    )


def spans_from_json(body: bytes) -> list[OtelSpan]:
    """The spans of an OTLP/JSON ``ExportTraceServiceRequest``.

    Raises:
        DecodeFailure: the body is not such a request.
    """
    return [_json_span(*found) for found in _json_records(body, "traces")]


def logs_from_json(body: bytes) -> list[OtelLog]:
    """The log records of an OTLP/JSON ``ExportLogsServiceRequest``.

    Raises:
        DecodeFailure: the body is not such a request.
    """
    return [_json_log(*found) for found in _json_records(body, "logs")]


#: (signal, encoding) -> decoder.
DECODERS: dict[tuple[str, str], Callable[[bytes], list[Any]]] = {
    ("traces", "protobuf"): spans_from_protobuf,
    ("traces", "json"): spans_from_json,
    ("logs", "protobuf"): logs_from_protobuf,
    ("logs", "json"): logs_from_json,
}

__all__ = ["DECODERS", "DecodeFailure", "OtelLog", "OtelSpan"]
