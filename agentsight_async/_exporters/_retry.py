"""The retry policy shared by every HTTP exporter.

The decisions are small pure functions with their constants in one place, so
they can be tested with a fake clock and a fake random source:

* :func:`should_retry` - which failures are worth another attempt: transport
  errors (connect/read/write errors, timeouts, a server that hung up without an
  answer) and the statuses that mean "not now" (408, 429, 500, 502, 503, 504).
  Every other 4xx is the request's own fault and is never retried; the caller
  classifies it.
* :func:`retry_after_seconds` - a ``Retry-After`` header in either form
  (delta-seconds or an HTTP-date), clamped to ``[0, cap]`` so a hostile or
  confused server cannot park the pipeline for an hour.
* :func:`backoff` - exponential backoff with *full* jitter (a uniform draw in
  ``[0, min(cap, base * 2**n)]``): when a backend comes back after an outage,
  the retries of many processes spread out instead of arriving together.

:func:`send_with_retry` drives one request through tenacity with those
functions.  Its one rule about time: an attempt never starts after the
deadline the flusher gave the batch (the retry budget, or a shutdown deadline),
and we never sleep into it either - when the next wait would cross it we give
up at once and report ``retries_exhausted`` rather than sleeping for nothing.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Final

import httpx
from tenacity import AsyncRetrying, RetryCallState

from .._config import Settings
from .._stats import Stats, Throttle
from ._redaction import redact

logger = logging.getLogger("agentsight_async")

#: Statuses that mean "the request was fine, the server could not take it now".
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
#: First backoff ceiling in seconds; it doubles with every attempt.
BACKOFF_BASE: Final = 0.5
#: Largest backoff ceiling, however many attempts came before.
BACKOFF_MAX: Final = 30.0
#: Default cap of a server's ``Retry-After`` (Settings.retry_after_cap overrides it).
DEFAULT_RETRY_AFTER_CAP: Final = 30.0

#: Drop reasons, as counted by :class:`~agentsight_async._stats.Stats`.
RETRIES_EXHAUSTED: Final = "retries_exhausted"
REJECTED: Final = "rejected"


def should_retry(outcome: int | BaseException, statuses: frozenset[int] = RETRY_STATUSES) -> bool:
    """Whether a status code or an exception raised by the transport deserves a retry.

    ``httpx.TransportError`` covers connect, read and write errors, every
    timeout (including waiting for a pooled connection) and
    ``RemoteProtocolError`` (the server closed the connection without an
    answer).  Anything else raised - an invalid URL, a bug - is not transient.
    *statuses* are the retryable statuses (OTLP retries fewer than AgentSight).
    """
    if isinstance(outcome, BaseException):
        return isinstance(outcome, httpx.TransportError)
    return outcome in statuses


def is_success(status: int) -> bool:
    """2xx is success.  Our collector answers 201; the legacy client resent on 202/204,
    a bug (§5.4) we do not copy: the server *accepted* the item."""
    return 200 <= status < 300


def retry_after_seconds(
    headers: Mapping[str, str], now: float, cap: float = DEFAULT_RETRY_AFTER_CAP
) -> float | None:
    """Seconds to wait according to ``Retry-After``, clamped to ``[0, cap]``.

    *now* is the wall-clock time (``time.time()``) an HTTP-date is measured
    against.  Returns None when the header is missing or unreadable, so the
    caller falls back to its own backoff.
    """
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def backoff(
    attempt: int,
    rand: Callable[[], float] = random.random,
    *,
    base: float = BACKOFF_BASE,
    maximum: float = BACKOFF_MAX,
) -> float:
    """Full-jitter exponential backoff before retry number *attempt* (1-based).

    The ceiling is ``base * 2**(attempt-1)`` capped at *maximum*; the wait is a
    uniform draw below it.  *rand* returns a float in ``[0, 1)``.
    """
    exponent = min(max(attempt - 1, 0), 32)  # no float overflow for absurd attempts
    ceiling = min(maximum, base * (2.0**exponent))
    return ceiling * rand()


def wait_seconds(
    outcome: httpx.Response | BaseException,
    attempt: int,
    *,
    now: float,
    retry_after_cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """How long to wait after a failed *attempt*.

    A positive ``Retry-After`` wins (the server knows when it will have room);
    a zero or past one falls back to backoff, so a server answering
    ``Retry-After: 0`` to every request does not get hammered in a tight loop.
    """
    if isinstance(outcome, httpx.Response):
        hinted = retry_after_seconds(outcome.headers, now, retry_after_cap)
        if hinted is not None and hinted > 0:
            return hinted
    return backoff(attempt, rand)


@dataclass(frozen=True, slots=True)
class RetryFailure:
    """Why :func:`send_with_retry` produced no response worth classifying.

    ``reason`` is ``retries_exhausted`` (a transient failure outlived the
    deadline) or ``rejected`` (a non-transient error raised by the transport,
    e.g. an invalid URL).  ``response`` is the last retryable answer, if any.
    """

    reason: str
    attempts: int
    response: httpx.Response | None = None
    exception: BaseException | None = None

    def describe(self) -> str:
        """A one-line, key-free description for logs, stats and outcomes."""
        if self.response is not None:
            last = f"HTTP {self.response.status_code}"
        elif self.exception is not None:
            last = f"{type(self.exception).__name__}: {self.exception}"
        else:
            last = "deadline already passed"
        return f"{self.reason} after {self.attempts} attempt(s) ({last})"


def describe_outcome(outcome: httpx.Response | BaseException) -> str:
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}"
    return f"{type(outcome).__name__}: {outcome}"


def _last(rs: RetryCallState) -> httpx.Response | BaseException:
    fut = rs.outcome
    assert fut is not None  # tenacity sets it before every callback
    if fut.failed:
        exc = fut.exception()
        assert exc is not None
        return exc
    result: httpx.Response = fut.result()
    return result


async def send_with_retry(
    send: Callable[[], Awaitable[httpx.Response]],
    *,
    deadline: float,
    settings: Settings,
    stats: Stats,
    what: str = "request",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    rand: Callable[[], float] = random.random,
    delivery: bool = False,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
) -> httpx.Response | RetryFailure:
    """Call *send* until it answers something final, within *deadline*.

    Returns the response for any status that is not retryable (2xx, and the
    4xx/other statuses the caller classifies), or a :class:`RetryFailure`.
    *send* must produce the same bytes every time (the caller serialises once),
    so a retry is a replay.  ``stats.requests`` counts every attempt and
    ``stats.retried`` every retry.  No attempt starts at or after *deadline*
    (a ``time.monotonic()`` value, or whatever *clock* returns).
    *retry_statuses* are the statuses worth another attempt (:data:`RETRY_STATUSES`
    by default; every other status is final).

    With *delivery* (a request carrying tracked events, from an exporter):
    outages show while they last - a failed attempt sets ``last_error`` and,
    when delivery starts failing, logs one warning (:meth:`Stats.attempt_failed`)
    - and a 429 pauses every request of the exporter (:class:`Throttle`), the
    time paused not taken from the *deadline*, so a throttled event waits
    rather than being dropped.  Without it (a user's read call) a 429 is
    retried like any other "not now", within the deadline.
    """
    if clock() >= deadline:
        return RetryFailure(RETRIES_EXHAUSTED, 0)
    throttle = stats.throttle if delivery else None
    paused = 0.0  # seconds waited for the throttle: not counted against the deadline

    async def wait_for_allowance() -> None:
        nonlocal paused
        if throttle is None:
            return
        pause = throttle.delay(clock())
        if pause > 0:
            paused += pause
            await sleep(pause)

    def requested_wait(response: httpx.Response, throttle: Throttle) -> float:
        # Retry-After: the earliest the allowance has room again; else backoff.
        hinted = retry_after_seconds(response.headers, wall_clock(), settings.retry_after_cap)
        return hinted if hinted else backoff(throttle.level + 1, rand)

    def observe(outcome: httpx.Response | BaseException) -> None:
        if throttle is None:
            return
        if isinstance(outcome, httpx.Response):
            status = outcome.status_code
            if is_success(status):
                stats.attempt_succeeded(clock(), settings.flush_interval)
                return
            if not should_retry(status, retry_statuses):
                return  # a final answer the caller classifies, not an outage
            if status == 429:
                wait = requested_wait(outcome, throttle)
                throttle.throttled(wait, clock(), settings.flush_interval, rand())
        stats.attempt_failed(redact(f"{what}: {describe_outcome(outcome)}"))

    # The first attempt runs without tenacity: setting up its machinery costs
    # ~45 µs, as much as everything else we do per REST item, and almost every
    # request succeeds at once.  A transient first failure is handed to
    # tenacity as its attempt 1 (replayed, not re-sent), so waits, stops,
    # logging and attempt numbers are exactly what tenacity alone would do.
    await wait_for_allowance()
    stats.requests += 1
    first: httpx.Response | BaseException
    try:
        first = await send()
    except httpx.TransportError as exc:
        first = exc
    except httpx.HTTPError as exc:  # not transient: the request itself cannot work
        return RetryFailure(REJECTED, 1, exception=exc)
    else:
        if not isinstance(first, httpx.Response):
            raise TypeError(f"send() returned {type(first).__name__}, not an httpx.Response")
    observe(first)
    if isinstance(first, httpx.Response) and not should_retry(first.status_code, retry_statuses):
        return first
    replay = [first]

    async def attempt() -> httpx.Response:
        if replay:
            outcome = replay.pop()
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        await wait_for_allowance()
        stats.requests += 1
        try:
            response = await send()
        except httpx.TransportError as exc:
            observe(exc)
            raise
        observe(response)
        return response

    def retry(rs: RetryCallState) -> bool:
        last = _last(rs)
        return should_retry(
            last.status_code if isinstance(last, httpx.Response) else last, retry_statuses
        )

    def wait(rs: RetryCallState) -> float:
        nonlocal paused
        last = _last(rs)
        if throttle is not None and isinstance(last, httpx.Response) and last.status_code == 429:
            pause = throttle.delay(clock())  # the exporter-wide pause, not the budget's
            paused += pause
            return pause
        return wait_seconds(
            last,
            rs.attempt_number,
            now=wall_clock(),
            retry_after_cap=settings.retry_after_cap,
            rand=rand,
        )

    def stop(rs: RetryCallState) -> bool:
        # A throttle pause is not counted: wait() added it to `paused` already.
        return clock() + rs.upcoming_sleep >= deadline + paused

    def before_sleep(rs: RetryCallState) -> None:
        stats.retried += 1
        logger.debug(
            "agentsight_async %s failed (%s, attempt %d); retrying in %.2fs",
            what,
            describe_outcome(_last(rs)),
            rs.attempt_number,
            rs.upcoming_sleep,
        )

    def give_up(rs: RetryCallState) -> RetryFailure:
        last = _last(rs)
        if isinstance(last, httpx.Response):
            return RetryFailure(RETRIES_EXHAUSTED, rs.attempt_number, response=last)
        return RetryFailure(RETRIES_EXHAUSTED, rs.attempt_number, exception=last)

    retrying = AsyncRetrying(
        sleep=sleep,
        retry=retry,
        wait=wait,
        stop=stop,
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )
    try:
        result: Any = await retrying(attempt)
    except httpx.HTTPError as exc:  # not transient: the request itself cannot work
        return RetryFailure(REJECTED, retrying.statistics.get("attempt_number", 1), exception=exc)
    if isinstance(result, (httpx.Response, RetryFailure)):
        return result
    raise TypeError(f"send() returned {type(result).__name__}, not an httpx.Response")
