"""What every AgentSight HTTP exporter shares: :class:`HttpExporter`.

It owns the client (one per event loop), the retry clock, the conversation pk
cache and failure reporting, and posts a body serialised once through the
retry policy (:meth:`HttpExporter.post_bytes`, :meth:`HttpExporter.post`).
The wire formats live in the subclasses (``ingest``, ``rest``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from .._config import Settings
from .._events import Outcome
from .._exceptions import ConversationApiException
from .._stats import Stats
from ._base import Exporter
from ._client import (
    JSON_CONTENT_TYPE,
    ClientHolder,
    api_url,
    dumps,
    error_detail,
    parse_body,
    post_once,
    preload_io_modules,
    warn_if_insecure,
)
from ._redaction import install_redaction, redact
from ._retry import REJECTED, RETRY_STATUSES, RetryFailure, is_success, send_with_retry

logger = logging.getLogger("agentsight_async")

#: Conversation pks remembered per exporter (conversation_id -> pk).
PK_CACHE_SIZE: Final = 10_000
#: Seconds between two warnings about rejected requests (drops are logged by Stats).
WARN_INTERVAL: Final = 60.0


class PkCache:
    """A bounded LRU of conversation_id -> backend pk (§2.2 threading)."""

    def __init__(self, maxsize: int = PK_CACHE_SIZE) -> None:
        self._data: OrderedDict[str, int] = OrderedDict()
        self._maxsize = maxsize

    def get(self, conversation_id: str) -> int | None:
        """The remembered pk (now the most recent entry), or None."""
        pk = self._data.get(conversation_id)
        if pk is not None:
            self._data.move_to_end(conversation_id)
        return pk

    def put(self, conversation_id: str, pk: int) -> None:
        """Remember *pk*, forgetting the least recently used entry beyond the bound."""
        self._data[conversation_id] = pk
        self._data.move_to_end(conversation_id)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class FailureReporter:
    """Records a delivery failure in the counters and the log, never raising.

    ``stats.last_error`` gets a key-free one-liner and the logger a warning at
    most once per :data:`WARN_INTERVAL` (a backend rejecting everything must not
    flood logs).  An API key refused by the backend is logged as an error, once
    per exporter.  ``on_error`` is not called here: the flusher calls it once
    per batch that lost events, from the failed outcomes.
    """

    def __init__(self, exporter_name: str, stats: Stats) -> None:
        self._name = exporter_name
        self._stats = stats
        self._last_warning = -WARN_INTERVAL
        self._auth_logged = False

    def __call__(self, message: str) -> None:
        """Report a failure described by *message* (redacted before it goes anywhere)."""
        message = redact(message)
        self._stats.record_error(f"{self._name}: {message}")
        now = time.monotonic()
        if now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            logger.warning("agentsight_async %s exporter: %s", self._name, message)

    def auth_refused(self, status: int, detail: str) -> None:
        """Log, once, that the backend refused the API key (401/403)."""
        if self._auth_logged:
            return
        self._auth_logged = True
        logger.error(
            "agentsight_async %s exporter: AgentSight refused the API key (%s). Events are "
            "dropped until AGENTSIGHT_API_KEY is fixed or the key gets the 'write' role.",
            self._name,
            redact(detail) if detail else f"HTTP {status}",
        )


class HttpExporter(Exporter):
    """Base of the AgentSight HTTP exporters: client, retry clock, pk cache, reporting.

    Args:
        settings, stats: as for every :class:`Exporter`.
        transport: handed to httpx (tests pass ``httpx.MockTransport``).
        sleep, clock: drive the retry policy (tests pass fakes).
    """

    #: The statuses :meth:`post_bytes` retries (a protocol with other rules overrides it).
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __init__(
        self,
        settings: Settings,
        stats: Stats,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, stats)
        self._client = ClientHolder(settings, transport)
        self._sleep = sleep
        self._clock = clock
        self.pks = PkCache()
        self._urls: dict[str, httpx.URL] = {}
        self.report = FailureReporter(self.name, stats)
        install_redaction()
        warn_if_insecure(settings.api_endpoint)
        preload_io_modules()

    def url(self, route: str) -> str:
        """The absolute URL of *route* on the configured endpoint."""
        return api_url(self.settings.api_endpoint, route)

    async def post_bytes(
        self,
        route: str,
        content: bytes,
        headers: dict[str, str],
        deadline: float,
        idempotency_key: str | None = None,
    ) -> httpx.Response | RetryFailure:
        """POST bytes serialised once, retried by the policy until *deadline*.

        Returns the first final answer (any status the policy does not retry),
        or why there was none.
        """
        url = self._urls.get(route)
        if url is None:  # parsed once per route, not by httpx on every request
            url = self._urls[route] = httpx.URL(self.url(route))
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        client = self._client.get()
        return await send_with_retry(
            lambda: post_once(client, url, content, headers),
            deadline=deadline,
            settings=self.settings,
            stats=self.stats,
            what=f"POST /{route}",
            sleep=self._sleep,
            clock=self._clock,
            delivery=True,
            retry_statuses=self.retry_statuses,
        )

    def gave_up(self, route: str, failure: RetryFailure) -> Outcome:
        """Report a POST that got no final answer; the failed outcome of what it carried."""
        text = f"POST /{route} {failure.describe()}"
        status = failure.response.status_code if failure.response is not None else None
        exc = failure.exception or ConversationApiException(text, status)
        self.report(text)
        return Outcome(False, error=text, drop_reason=failure.reason, exception=exc)

    def refused(self, route: str, response: httpx.Response) -> Outcome:
        """Report a POST answered with a final non-2xx status; the failed outcome."""
        detail = error_detail(response)
        body = parse_body(response)
        if response.status_code in (401, 403):
            self.report.auth_refused(response.status_code, detail)
        text = f"POST /{route} rejected: {detail}"
        self.report(text)
        exc = ConversationApiException(text, response.status_code, body)
        return Outcome(False, response=body, error=detail, drop_reason=REJECTED, exception=exc)

    async def post(
        self,
        route: str,
        deadline: float,
        idempotency_key: str | None = None,
        *,
        json: Any = None,
        raw: tuple[bytes, str] | None = None,
    ) -> Outcome:
        """POST one REST body with retries; its outcome, every failure reported.

        Args:
            route: e.g. ``api/track/``.
            deadline: no attempt starts after it (``clock()`` time).
            idempotency_key: sent as ``Idempotency-Key`` when given.
            json: a JSON body (serialised once by :func:`._client.dumps`), or
            raw: ``(bytes, content type)`` for a body encoded by the caller.

        Returns:
            ``Outcome(True, response=<parsed answer>)``, or a failed outcome
            whose ``drop_reason`` says whether retrying later could help.
        """
        content, ctype = raw if raw is not None else (dumps(json), JSON_CONTENT_TYPE)
        result = await self.post_bytes(
            route, content, {"Content-Type": ctype}, deadline, idempotency_key
        )
        if isinstance(result, RetryFailure):
            return self.gave_up(route, result)
        if is_success(result.status_code):
            return Outcome(True, response=parse_body(result))
        return self.refused(route, result)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()
