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

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._http import RequestError, decode_body, key_from_headers, read_raw_body

if TYPE_CHECKING:
    from ._app import Api
    from ._otlp_map import Applied

logger = logging.getLogger("agentsight_collector")

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ENCODINGS: Final = {PROTOBUF: "protobuf", "application/protobuf": "protobuf", JSON: "json"}
#: google.rpc.Code of each HTTP status we answer with.
_CODES: Final = {400: 3, 401: 16, 413: 8, 415: 3, 500: 13}

#: An answer built off the loop: status, body, media type.
Answer = tuple[int, bytes, str]


def encoding_of(content_type: str | None) -> str | None:
    """``protobuf`` or ``json`` for a ``Content-Type``, None for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return _ENCODINGS.get(media)


def status_answer(status: int, message: str, encoding: str | None) -> Answer:
    """An error answer: a ``google.rpc.Status`` in the request's encoding (JSON if unknown)."""
    code = _CODES.get(status, 2)
    if encoding == "protobuf":
        from google.rpc.status_pb2 import Status

        return status, Status(code=code, message=message).SerializeToString(), PROTOBUF
    return status, json.dumps({"code": code, "message": message}).encode(), JSON


def success_answer(signal: str, encoding: str, applied: Applied) -> Answer:
    """200 with the ``Export*ServiceResponse``; ``partial_success`` only when there is news."""
    message = applied.message
    rejected = applied.rejected
    if encoding == "json":
        body: dict[str, object] = {}
        if rejected or message:
            key = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
            body["partialSuccess"] = {key: str(rejected), "errorMessage": message}
        return 200, json.dumps(body).encode(), JSON
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    if signal == "traces":
        traces = ExportTraceServiceResponse()
        if rejected or message:
            traces.partial_success.rejected_spans = rejected
            traces.partial_success.error_message = message
        return 200, traces.SerializeToString(), PROTOBUF
    logs = ExportLogsServiceResponse()
    if rejected or message:
        logs.partial_success.rejected_log_records = rejected
        logs.partial_success.error_message = message
    return 200, logs.SerializeToString(), PROTOBUF


def receive(
    api: Api, signal: str, encoding: str, raw: bytes, content_encoding: str | None
) -> Answer:
    """Inflate, decode, store and answer one request (in a storage thread: CPU and SQLite).

    The OTLP modules (protobuf) are imported here, on first use, so that a
    collector that never receives OTLP neither waits for them at start nor
    holds its event loop while they load.
    """
    from ._otlp_decode import DECODERS, DecodeFailure
    from ._otlp_map import apply_logs, apply_spans

    apply = apply_spans if signal == "traces" else apply_logs
    try:
        records = DECODERS[(signal, encoding)](
            decode_body(raw, content_encoding, api.max_decompressed)
        )
    except RequestError as exc:
        return status_answer(exc.status, exc.detail, encoding)
    except DecodeFailure as exc:
        logger.info("OTLP %s request refused: %s", signal, exc)
        return status_answer(400, str(exc), encoding)
    return success_answer(signal, encoding, apply(api.storage, records))


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
        api = self.api
        encoding = encoding_of(request.headers.get("content-type"))
        answer: Answer
        if not api.keys.accepts(key_from_headers(request)):
            message = "A valid 'Authorization: Api-Key <key>' is required."
            answer = await api.run(status_answer, 401, message, encoding)
        elif encoding is None:
            message = "Content-Type must be application/x-protobuf or application/json."
            answer = status_answer(415, message, None)
        else:
            try:
                raw = await read_raw_body(request, max_bytes=api.max_body)
            except RequestError as exc:
                answer = await api.run(status_answer, exc.status, exc.detail, encoding)
            else:
                content_encoding = request.headers.get("content-encoding")
                answer = await api.run(receive, api, signal, encoding, raw, content_encoding)
        status, body, media_type = answer
        return Response(body, status_code=status, media_type=media_type)


__all__ = ["OtlpIntake", "encoding_of", "receive", "status_answer", "success_answer"]
