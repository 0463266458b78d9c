"""HTTP for the reading and managing clients: GETs retried, writes sent once, errors mapped.

The pieces are the SDK's own, shared with the exporters (``_exporters._client``,
``_redaction``, ``_retry``): one ``httpx.AsyncClient`` per event loop
(``ClientHolder``: keep-alive, the request timeout, ``transport=`` injectable),
URLs joined with one slash, JSON bodies serialised the same way, answers parsed
with credentials scrubbed, httpx's log records of our requests redacted, and
the retry policy of ``_exporters._retry`` (transport errors, 408/429/5xx,
``Retry-After`` in seconds or as an HTTP-date, clamped; full-jitter backoff).

What is particular to an interactive call (protocol §3.5, "Data-plane
transport"):

* **Only GET is retried**, until the call's deadline (``retry_budget`` seconds
  after it started): the caller is waiting, so the budget is short.  A
  ``Retry-After`` longer than what is left ends the retries at once and the
  error carries it.
* **A write is sent exactly once.**  Feedback is not idempotent (a replay
  files a second row), and a rename, mark, update or delete that timed out may
  have been applied.  A throttled write raises :class:`RateLimitException`
  with ``retry_after``; whether to send it again is the caller's decision.
* Every request has a total deadline of ``request_timeout`` (httpx's own
  timeouts apply per phase - connect, write, read, pool - and could add up).
* Errors map to the original client's exception names (see :func:`api_error`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from .._config import Settings
from .._exceptions import (
    ApiServerException,
    ConversationApiException,
    ConversationNetworkException,
    ForbiddenException,
    NotFoundException,
    RateLimitException,
    UnauthorizedException,
)
from .._exporters import _client as wire
from .._exporters._redaction import install_redaction, our_request, redact
from .._exporters._retry import RetryFailure, is_success, retry_after_seconds, send_with_retry
from .._portal import wait_within
from .._stats import Stats

#: Lets a request whose call is past its deadline still be tried once.
MIN_ATTEMPT_WINDOW: Final = 0.001


class ApiHttp:
    """The requests of one reading or managing client.

    *sleep* and *clock* drive the retry waits and deadlines (tests pass fakes);
    *transport* is handed to httpx (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None,
        retry_budget: float,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.retry_budget = retry_budget
        self.stats = Stats()
        self._clients = wire.ClientHolder(settings, transport)
        self._sleep = sleep
        self._clock = clock
        install_redaction()
        wire.warn_if_insecure(settings.api_endpoint)

    def deadline(self) -> float:
        """When a call starting now stops retrying (a ``clock()`` value)."""
        return self._clock() + self.retry_budget

    async def get(self, route: str, params: dict[str, Any] | None, deadline: float) -> Any:
        """``GET`` *route*, retried until *deadline*; the parsed answer or a mapped error.

        It is always tried once, even past *deadline* (the second request of a
        call whose first one took long); retries never start after it.
        """
        deadline = max(deadline, self._clock() + MIN_ATTEMPT_WINDOW)
        client = self._clients.get()
        url = wire.api_url(self.settings.api_endpoint, route)
        outcome = await send_with_retry(
            lambda: self._send(client, "GET", url, params=params),
            deadline=deadline,
            settings=self.settings,
            stats=self.stats,
            what=f"GET /{route}",
            sleep=self._sleep,
            clock=self._clock,
        )
        if isinstance(outcome, RetryFailure):
            if outcome.response is None:
                raise ConversationNetworkException(
                    redact(f"GET /{route} could not reach AgentSight: {outcome.describe()}")
                )
            outcome = outcome.response
        return self._answer(outcome)

    async def write(self, method: str, route: str, body: dict[str, Any] | None) -> Any:
        """*method* (POST, PATCH, DELETE) *route* with a JSON *body*, sent exactly once."""
        client = self._clients.get()
        url = wire.api_url(self.settings.api_endpoint, route)
        content = None if body is None else wire.dumps(body)
        self.stats.requests += 1
        try:
            response = await self._send(client, method, url, content=content)
        except httpx.HTTPError as exc:
            raise ConversationNetworkException(
                redact(
                    f"{method} /{route} could not reach AgentSight (not retried: a write is "
                    f"sent at most once): {type(exc).__name__}: {exc}"
                )
            ) from None
        return self._answer(response)

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        headers = {"Content-Type": wire.JSON_CONTENT_TYPE}
        timeout = self.settings.request_timeout
        try:
            with our_request():  # httpx's and httpcore's records of it get redacted
                return await wait_within(
                    client.request(method, url, params=params, content=content, headers=headers),
                    timeout,
                )
        except asyncio.TimeoutError:
            # A TransportError, so the retry policy treats it like httpx's own timeouts.
            raise httpx.TimeoutException(f"no answer within {timeout} s") from None

    def _answer(self, response: httpx.Response) -> Any:
        if is_success(response.status_code):
            return wire.parse_body(response)
        raise api_error(response, self.settings.retry_after_cap)

    async def aclose(self) -> None:
        """Close this loop's connections (another loop's cannot be, and need not be)."""
        await self._clients.aclose()


#: The classes of 401/403/404, and their message when the body has no ``detail`` (the
#: original client's words).
_BY_STATUS: Final[dict[int, tuple[type[ConversationApiException], str]]] = {
    401: (UnauthorizedException, "Invalid or missing API key"),
    403: (ForbiddenException, "Access forbidden - not authorized to access this resource"),
    404: (NotFoundException, "Resource not found"),
}


def api_error(response: httpx.Response, retry_after_cap: float) -> ConversationApiException:
    """The exception for an error answer, named as the original client named it.

    * 404 :class:`NotFoundException`, 401 :class:`UnauthorizedException`, 403
      :class:`ForbiddenException`: the message is the body's ``detail``;
    * 429 :class:`RateLimitException` with ``retry_after``;
    * 5xx :class:`ApiServerException`;
    * any other status :class:`ConversationApiException`, ``"API error (400):
      field: msg; ..."``.

    Every one carries ``status_code`` and ``response_data`` (the parsed body,
    credentials scrubbed), and no credential in its message.
    """
    status = response.status_code
    body = wire.parse_body(response)
    detail = wire.error_detail(response).removeprefix(f"HTTP {status}").removeprefix(": ")
    if status in _BY_STATUS:
        cls, default = _BY_STATUS[status]
        given = body.get("detail") if isinstance(body, dict) else None
        return cls(redact(given) if isinstance(given, str) else default, response_data=body)
    message = f"API error ({status}): {detail or 'Unknown error'}"
    if status == 429:
        wait = retry_after_seconds(response.headers, time.time(), retry_after_cap)
        return RateLimitException(message, retry_after=wait, response_data=body)
    if status >= 500:
        return ApiServerException(message, status, body)
    return ConversationApiException(message, status, body)
