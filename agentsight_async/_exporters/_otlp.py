"""``otlp``: conversations as OpenTelemetry spans and log records over OTLP/HTTP.

``AGENTSIGHT_PROTOCOL=otlp`` and ``AGENTSIGHT_API_ENDPOINT`` the base URL of an
OpenTelemetry Collector (or any OTLP/HTTP receiver: our own collector reads
it too).  Each batch becomes at most two requests - ``POST {base}/v1/traces``
and ``POST {base}/v1/logs`` - built by :mod:`._otlp_map` (the GenAI mapping)
and :mod:`._otlp_wire` (protobuf by default, JSON on request).  What is
particular to OTLP lives here:

* **Credentials.**  Only ``AGENTSIGHT_OTLP_HEADERS`` (``k=v,k2=v2``, as
  ``OTEL_EXPORTER_OTLP_HEADERS``) is sent; the AgentSight API key never goes
  to an OTLP endpoint.  Header values are secrets: they are never logged, and
  an answer that echoes one has it replaced before it is reported.
* **Response rules** (OTLP/HTTP specification): 2xx is success, and a partial
  success is *not* retried - its rejected count goes to
  ``stats()["partially_rejected"]`` and its message is reported.  Only 429,
  502, 503 and 504 (and transport errors) are retried, honouring
  ``Retry-After`` or backing off with jitter; every other status - 400 first -
  is final.
* **Bodies** are serialised once and gzipped when larger than 8 KiB (a large
  one in a worker thread), so every retry sends the same bytes - and the same
  span ids, which derive from the event ids.
* **The loop keeps running**: events are mapped in slices that yield to it,
  as the ingest exporter does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from .._config import DEFAULT_ENDPOINT, DEFAULT_SERVICE_NAME, Settings, parse_otel_pairs
from .._events import DELIVERED, Batch, ConversationBatch, Outcome
from .._exceptions import ConversationApiException
from .._stats import Stats
from .._version import __version__
from ._base import SDK_NAME
from ._client import wire_body
from ._http import HttpExporter
from ._ingest import SLICE_CHECK, SLICE_SECONDS
from ._otlp_map import SIGNAL, Attributes, ConversationMapper, Turns
from ._otlp_wire import (
    JSON,
    PROTOBUF,
    Scope,
    error_message,
    logs_json,
    logs_protobuf,
    read_answer,
    traces_json,
    traces_protobuf,
)
from ._redaction import redact
from ._retry import REJECTED, RetryFailure

logger = logging.getLogger("agentsight_async")

#: Where OTLP goes when no endpoint was set (the OpenTelemetry SDK's default).
DEFAULT_OTLP_ENDPOINT: Final = "http://localhost:4318"
#: The only statuses an OTLP/HTTP client may retry.
OTLP_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
#: The instrumentation scope of every span and log record.
SCOPE_NAME: Final = "agentsight_async"
_SIGNAL_PATHS: Final = ("/v1/traces", "/v1/logs")
#: One conversation's records of one signal: their shared attributes, then the records.
Block = tuple[Attributes, Sequence[Any]]


def otlp_base_url(endpoint: str) -> str:
    """The receiver's base URL: ``{base}/v1/traces`` and ``{base}/v1/logs`` are posted to.

    The AgentSight default endpoint (nothing set) means the OpenTelemetry
    default, ``http://localhost:4318``.  An endpoint given with a signal path
    already (``.../v1/traces``) is taken as its base.
    """
    if endpoint == DEFAULT_ENDPOINT:
        return DEFAULT_OTLP_ENDPOINT
    base = endpoint.rstrip("/")
    for path in _SIGNAL_PATHS:
        if base.endswith(path):
            return base[: -len(path)]
    return base


def resource_attributes(settings: Settings, instance_id: str) -> Attributes:
    """The resource of everything sent: ``service.name``, the SDK, this process.

    ``OTEL_RESOURCE_ATTRIBUTES`` is read as OpenTelemetry reads it; its
    ``service.name`` is used when neither ``AGENTSIGHT_SERVICE_NAME`` nor
    ``OTEL_SERVICE_NAME`` names the service.
    """
    try:
        attrs = parse_otel_pairs(os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    except ValueError:
        logger.warning("agentsight_async: OTEL_RESOURCE_ATTRIBUTES is not k=v,k2=v2; ignored")
        attrs = {}
    if settings.service_name != DEFAULT_SERVICE_NAME or "service.name" not in attrs:
        attrs["service.name"] = settings.service_name
    attrs.update(
        {
            "telemetry.sdk.name": SDK_NAME,
            "telemetry.sdk.version": __version__,
            "telemetry.sdk.language": "python",
            "service.instance.id": instance_id,
        }
    )
    return list(attrs.items())


def secret_fragments(values: Iterable[str]) -> list[str]:
    """What to hide of header values: each value, and each of its words of 8+ characters
    (a server may echo the token of ``Bearer <token>`` alone), longest first."""
    given = [v for v in values if v]
    found = set(given) | {word for v in given for word in v.split() if len(word) >= 8}
    return sorted(found, key=len, reverse=True)


class LoopSlices:
    """Yields to the event loop once the work since the last yield has run
    :data:`SLICE_SECONDS`: the agent's own tasks share the loop."""

    def __init__(self) -> None:
        self._until = time.perf_counter() + SLICE_SECONDS

    async def pause(self) -> None:
        """Let the loop run other tasks, if this slice is used up."""
        if time.perf_counter() >= self._until:
            await asyncio.sleep(0)
            self._until = time.perf_counter() + SLICE_SECONDS


class OtlpExporter(HttpExporter):
    """Delivers batches as OTLP/HTTP traces and logs (``AGENTSIGHT_PROTOCOL=otlp``).

    An :class:`HttpExporter` (client, retry clock, failure reporting) whose
    settings are the user's with the endpoint resolved to the receiver's base
    URL and *no API key*: this receiver is not AgentSight, and the client's
    default headers must not carry the key to it.

    Args:
        settings, stats: as for every :class:`Exporter`.
        **kwargs: ``transport``, ``sleep``, ``clock``, as for :class:`HttpExporter`.
    """

    name = "otlp"
    retry_statuses = OTLP_RETRY_STATUSES

    def __init__(self, settings: Settings, stats: Stats, **kwargs: Any) -> None:
        base_url = otlp_base_url(settings.api_endpoint)
        keyless = settings.model_copy(update={"api_key": None, "api_endpoint": base_url})
        super().__init__(keyless, stats, **kwargs)
        self.base_url = base_url
        self._secrets = secret_fragments(settings.otlp_header_pairs.values())
        json_body = settings.otlp_encoding == "json"
        self.content_type = JSON if json_body else PROTOBUF
        self._encoders: dict[str, Callable[[Scope, Sequence[Block]], bytes]] = (
            {"traces": traces_json, "logs": logs_json}
            if json_body
            else {"traces": traces_protobuf, "logs": logs_protobuf}
        )
        self.scope = Scope(
            resource_attributes(settings, secrets.token_hex(16)), SCOPE_NAME, __version__
        )
        self.turns = Turns()
        self._auth_logged = False

    def url(self, route: str) -> str:
        """Where *route* (``v1/traces`` or ``v1/logs``) is posted: OTLP paths have no
        trailing slash."""
        return f"{self.base_url}/{route}"

    def _scrub(self, text: str) -> str:
        """*text* with API keys and every OTLP header value replaced."""
        text = redact(text)
        for value in self._secrets:
            text = text.replace(value, "<redacted>")
        return text

    # -- export --------------------------------------------------------------------

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Map every conversation (yielding to the loop), then post traces and logs."""
        convs = batch.conversations
        results: list[list[Outcome | None]] = [[None] * len(c.events) for c in convs]
        span_blocks: list[Block] = []
        log_blocks: list[Block] = []
        slices = LoopSlices()
        for ci, conv in enumerate(convs):
            try:
                mapper = await self._map(conv, slices)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or odd data must not sink the other conversations
                self.report(f"could not map conversation {conv.conversation_id!r}: {exc!r}")
                failed = Outcome(False, error=repr(exc), drop_reason=REJECTED, exception=exc)
                results[ci] = [failed] * len(conv.events)
                continue
            if mapper.spans:
                span_blocks.append((mapper.shared, mapper.spans))
            if mapper.logs:
                log_blocks.append((mapper.shared, mapper.logs))
        sent = {
            "traces": await self._send("traces", span_blocks, deadline) if span_blocks else None,
            "logs": await self._send("logs", log_blocks, deadline) if log_blocks else None,
        }
        return [
            [
                slot or sent[SIGNAL[ev.kind]] or DELIVERED
                for slot, ev in zip(row, conv.events, strict=True)
            ]
            for row, conv in zip(results, convs, strict=True)
        ]

    async def _map(self, conv: ConversationBatch, slices: LoopSlices) -> ConversationMapper:
        """One conversation's spans and log records, :data:`SLICE_CHECK` events at a time."""
        settings = self.settings
        mapper = ConversationMapper(
            conv,
            self.turns.begin(conv),
            capture=settings.otlp_capture_content,
            agent_name=settings.otlp_agent_name,
        )
        events = conv.events
        for first in range(0, len(events), SLICE_CHECK):
            for ev in events[first : first + SLICE_CHECK]:
                mapper.add(ev)
            await slices.pause()
        return mapper

    async def _send(self, signal: str, blocks: Sequence[Block], deadline: float) -> Outcome:
        """Encode, gzip and post one signal's request; its outcome, every failure reported."""
        body = self._encoders[signal](self.scope, blocks)
        content, headers = await wire_body(body, True)
        del body
        headers = {
            **headers,
            "Content-Type": self.content_type,
            "Accept": self.content_type,
            **self.settings.otlp_header_pairs,
        }
        route = f"v1/{signal}"
        what = f"POST /{route}"
        result = await self.post_bytes(route, content, headers, deadline)
        if isinstance(result, RetryFailure):
            failed = self.gave_up(route, result)
            text = self._scrub(failed.error or "")
            return Outcome(False, error=text, drop_reason=result.reason, exception=failed.exception)
        ctype = result.headers.get("content-type", "")
        if 200 <= result.status_code < 300:
            answer = read_answer(result.content, ctype, signal)
            if not answer.rejected and not answer.message:
                return DELIVERED
            self.stats.partially_rejected += answer.rejected
            text = self._scrub(
                f"{what} partial success: {answer.rejected} rejected"
                + (f" ({answer.message})" if answer.message else "")
            )
            if answer.rejected:  # not retried; the events count as delivered
                self.report(text)
            else:  # a warning from the receiver, nothing lost
                logger.debug("agentsight_async otlp exporter: %s", text)
            return Outcome(
                True, response={"rejected": answer.rejected, "error_message": answer.message}
            )
        detail = self._scrub(error_message(result.content, ctype)[:500])
        text = f"{what} rejected: HTTP {result.status_code}" + (f": {detail}" if detail else "")
        if result.status_code in (401, 403) and not self._auth_logged:
            self._auth_logged = True
            logger.error(
                "agentsight_async otlp exporter: %s refused the credentials (HTTP %s); "
                "check AGENTSIGHT_OTLP_HEADERS.",
                self.base_url,
                result.status_code,
            )
        self.report(text)
        exc = ConversationApiException(text, result.status_code)
        return Outcome(False, error=text, drop_reason=REJECTED, exception=exc)


__all__ = ["DEFAULT_OTLP_ENDPOINT", "OTLP_RETRY_STATUSES", "OtlpExporter", "otlp_base_url"]
