"""OTLP/HTTP intake: ``POST /v1/traces`` and ``POST /v1/logs``, protobuf or JSON, gzip.

An OpenTelemetry exporter - our SDK's ``otlp`` protocol, the OpenTelemetry SDK's
OTLP/HTTP exporter, an OpenTelemetry Collector's ``otlphttp`` exporter - can
point at the collector as at any OTLP receiver (``http://host:port`` as the
base URL).  What it sends is stored as conversations (:mod:`._otlp_map`).

* **Auth** is the collector's: ``Authorization: Api-Key <key>`` (an OTLP
  sender sets it as a header: ``AGENTSIGHT_OTLP_HEADERS=Authorization=Api-Key
  <key>``, ``OTEL_EXPORTER_OTLP_HEADERS``, or the Collector's ``headers:``),
  nothing with ``--dev``.  A refusal is a 401.
* **Bodies**: ``application/x-protobuf`` or ``application/json`` (anything
  else is a 415), ``Content-Encoding: gzip`` or none, bounded like every
  other body.  They are read on the loop and decoded, mapped and stored in
  the storage threads.
* **Answers** follow the specification: 200 with an ``Export*ServiceResponse``
  in the request's encoding - a ``partial_success`` when records were
  rejected (or a warning when some were not conversation data) - and errors
  as a ``google.rpc.Status`` (400 for a body that is not an OTLP request, so
  the sender does not retry it).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import RequestError, decode_body, key_from_headers, read_raw_body
from ._otlp_decode import DECODERS, DecodeFailure
from ._otlp_map import Applied, apply_logs, apply_spans

if TYPE_CHECKING:
    from ._app import Api

logger = logging.getLogger("agentsight_collector")

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ENCODINGS: Final = {PROTOBUF: "protobuf", "application/protobuf": "protobuf", JSON: "json"}
#: google.rpc.Code of each HTTP status we answer with.
_CODES: Final = {400: 3, 401: 16, 413: 8, 415: 3, 500: 13}


def encoding_of(content_type: str | None) -> str | None:
    """``protobuf`` or ``json`` for a ``Content-Type``, None for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return _ENCODINGS.get(media)


def status_response(status: int, message: str, encoding: str | None) -> Response:
    """An error answer: a ``google.rpc.Status`` in the request's encoding (JSON if unknown)."""
    code = _CODES.get(status, 2)
    if encoding == "protobuf":
        body = Status(code=code, message=message).SerializeToString()
        return Response(body, status_code=status, media_type=PROTOBUF)
    return Response(
        json.dumps({"code": code, "message": message}), status_code=status, media_type=JSON
    )


def success_response(signal: str, encoding: str, applied: Applied) -> Response:
    """200 with the ``Export*ServiceResponse``; ``partial_success`` only when there is news."""
    message = applied.message
    rejected = applied.rejected
    if encoding == "json":
        body: dict[str, object] = {}
        if rejected or message:
            key = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
            body["partialSuccess"] = {key: str(rejected), "errorMessage": message}
        return Response(json.dumps(body), media_type=JSON)
    if signal == "traces":
        traces = ExportTraceServiceResponse()
        if rejected or message:
            traces.partial_success.rejected_spans = rejected
            traces.partial_success.error_message = message
        return Response(traces.SerializeToString(), media_type=PROTOBUF)
    logs = ExportLogsServiceResponse()
    if rejected or message:
        logs.partial_success.rejected_log_records = rejected
        logs.partial_success.error_message = message
    return Response(logs.SerializeToString(), media_type=PROTOBUF)


class OtlpIntake:
    """The two OTLP routes, on the app's storage, keys, limits and storage threads."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def routes(self) -> list[Route]:
        """``POST /v1/traces`` and ``POST /v1/logs`` (OTLP paths: no trailing slash)."""
        return [
            Route("/v1/traces", self.traces, methods=["POST"]),
            Route("/v1/logs", self.logs, methods=["POST"]),
        ]

    async def traces(self, request: Request) -> Response:
        """Receive spans."""
        return await self._receive(request, "traces")

    async def logs(self, request: Request) -> Response:
        """Receive log records."""
        return await self._receive(request, "logs")

    async def _receive(self, request: Request, signal: str) -> Response:
        encoding = encoding_of(request.headers.get("content-type"))
        if not self.api.keys.accepts(key_from_headers(request)):
            return status_response(
                401, "A valid 'Authorization: Api-Key <key>' is required.", encoding
            )
        if encoding is None:
            return status_response(
                415, "Content-Type must be application/x-protobuf or application/json.", None
            )
        api = self.api
        content_encoding = request.headers.get("content-encoding")
        try:
            raw = await read_raw_body(request, max_bytes=api.max_body)
        except RequestError as exc:
            return status_response(exc.status, exc.detail, encoding)
        decode = DECODERS[(signal, encoding)]
        apply = apply_spans if signal == "traces" else apply_logs

        def work() -> Applied:
            records = decode(decode_body(raw, content_encoding, api.max_decompressed))
            return apply(api.storage, records)

        try:
            applied = await api.run(work)
        except RequestError as exc:
            return status_response(exc.status, exc.detail, encoding)
        except DecodeFailure as exc:
            logger.info("OTLP %s request refused: %s", signal, exc)
            return status_response(400, str(exc), encoding)
        return success_response(signal, encoding, applied)


__all__ = ["OtlpIntake", "encoding_of", "status_response", "success_response"]
