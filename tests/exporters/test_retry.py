"""The retry policy: pure decisions, then send_with_retry on a fake clock (no real sleeps)."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from agentsight_async._exporters import _retry
from agentsight_async._exporters._retry import (
    RetryFailure,
    backoff,
    retry_after_seconds,
    send_with_retry,
    should_retry,
    wait_seconds,
)
from agentsight_async._stats import Stats

RETRYABLE = [408, 429, 500, 502, 503, 504]
FINAL = [200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 413, 422, 501]
TRANSPORT_ERRORS = [
    httpx.ConnectError("refused"),
    httpx.ConnectTimeout("slow connect"),
    httpx.ReadTimeout("slow read"),
    httpx.WriteTimeout("slow write"),
    httpx.PoolTimeout("no connection"),
    httpx.ReadError("reset"),
    httpx.WriteError("broken pipe"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
]


@pytest.mark.parametrize("status", RETRYABLE)
def test_retryable_statuses(status: int) -> None:
    assert should_retry(status)


@pytest.mark.parametrize("status", FINAL)
def test_final_statuses(status: int) -> None:
    assert not should_retry(status)


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
def test_transport_errors_are_retried(exc: Exception) -> None:
    assert should_retry(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("bug"), httpx.TooManyRedirects("loop"), httpx.DecodingError("gz")]
)
def test_other_exceptions_are_not(exc: Exception) -> None:
    assert not should_retry(exc)


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("120", 30.0),  # capped
        (email.utils.formatdate(NOW + 10, usegmt=True), 10.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # in the past
        (email.utils.formatdate(NOW + 3600, usegmt=True), 30.0),  # capped
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_forms(value: str, expected: float | None) -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": value}), NOW, 30.0) == expected


def test_retry_after_missing_and_custom_cap() -> None:
    assert retry_after_seconds(httpx.Headers({}), NOW) is None
    assert retry_after_seconds(httpx.Headers({"retry-after": "9"}), NOW, cap=4) == 4


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (7, 30.0), (500, 30.0)]
)
def test_backoff_full_jitter(attempt: int, ceiling: float) -> None:
    assert backoff(attempt, lambda: 0.0) == 0.0
    assert backoff(attempt, lambda: 0.5) == pytest.approx(ceiling / 2)
    assert backoff(attempt, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)


def test_wait_prefers_positive_retry_after() -> None:
    resp = httpx.Response(429, headers={"Retry-After": "2"})
    assert wait_seconds(resp, 1, now=NOW, retry_after_cap=30, rand=lambda: 0.1) == 2.0
    zero = httpx.Response(503, headers={"Retry-After": "0"})
    assert wait_seconds(zero, 3, now=NOW, retry_after_cap=30, rand=lambda: 0.5) == 1.0
    assert (
        wait_seconds(httpx.ConnectError("x"), 1, now=NOW, retry_after_cap=30, rand=lambda: 1) == 0.5
    )


# --- send_with_retry ---------------------------------------------------------------------


def scripted(*answers: Any) -> tuple[Callable[[], Any], list[int]]:
    """A send() that plays *answers* (a status, (status, headers) or an exception)."""
    calls: list[int] = []
    queue = list(answers)

    async def send() -> httpx.Response:
        calls.append(1)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, BaseException):
            raise item
        status, headers = item if isinstance(item, tuple) else (item, {})
        return httpx.Response(status, headers=headers, json={"n": len(calls)})

    return send, calls


async def run(send: Any, clock: Any, settings: Any, stats: Stats, budget: float = 60.0) -> Any:
    return await send_with_retry(
        send,
        deadline=clock.now + budget,
        settings=settings,
        stats=stats,
        sleep=clock.sleep,
        clock=clock,
        wall_clock=lambda: NOW,
        rand=lambda: 1.0,
        delivery=True,
    )


@pytest.mark.parametrize("status", [s for s in RETRYABLE if s != 429])
async def test_retryable_status_then_success(status, clock, make_settings, stats) -> None:
    send, calls = scripted(status, status, 201)
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    assert result.status_code == 201
    assert len(calls) == 3
    assert stats.requests == 3
    assert stats.retried == 2
    assert clock.sleeps == [0.5, 1.0]


@pytest.mark.parametrize("exc", TRANSPORT_ERRORS, ids=lambda e: type(e).__name__)
async def test_transport_error_then_success(exc, clock, make_settings, stats) -> None:
    send, calls = scripted(exc, 200)
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    assert result.status_code == 200
    assert len(calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501])
async def test_no_retry_on_final_status(status, clock, make_settings, stats) -> None:
    send, calls = scripted(status, 201)
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    assert result.status_code == status
    assert len(calls) == 1
    assert clock.sleeps == []
    assert stats.retried == 0


async def test_retry_after_seconds_honoured(clock, make_settings, stats) -> None:
    send, _ = scripted((429, {"Retry-After": "1"}), (503, {"Retry-After": "3"}), 201)
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    # a 429 waits Retry-After and a widened interval (level 1: 2 x flush_interval 1 s),
    # plus up to half again at random (rand is 1.0 here); a 503's Retry-After is as given
    assert clock.sleeps == [3.0, 3.0]


async def test_retry_after_http_date_honoured(clock, make_settings, stats) -> None:
    date = email.utils.formatdate(NOW + 7, usegmt=True)
    send, _ = scripted((503, {"Retry-After": date}), 201)
    await run(send, clock, make_settings(), stats)
    assert clock.sleeps == [7.0]


async def test_retry_after_capped_by_settings(clock, make_settings, stats) -> None:
    send, _ = scripted((503, {"Retry-After": "3600"}), 201)
    await run(send, clock, make_settings(retry_after_cap=5.0), stats)
    assert clock.sleeps == [5.0]
    send, _ = scripted((429, {"Retry-After": "3600"}), 201)
    await run(send, clock, make_settings(retry_after_cap=5.0), stats)
    # capped to 5 s; level ceil(log2 5) = 3, so max(5, 8) x 1.5
    assert clock.sleeps == [5.0, 12.0]


async def test_budget_never_slept_past(clock, make_settings, stats) -> None:
    send, calls = scripted(503)
    start = clock.now
    result = await run(send, clock, make_settings(), stats, budget=10.0)
    assert isinstance(result, RetryFailure)
    assert result.reason == "retries_exhausted"
    assert result.response is not None
    assert result.response.status_code == 503
    # waits 0.5, 1, 2, 4 (=7.5); the next 8 s would cross the 10 s deadline: give up now.
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert clock.now - start < 10.0
    assert len(calls) == result.attempts == 5
    assert "retries_exhausted after 5 attempt(s) (HTTP 503)" in result.describe()


async def test_retry_after_beyond_deadline_gives_up_at_once(clock, make_settings, stats) -> None:
    send, calls = scripted((503, {"Retry-After": "20"}))
    result = await run(send, clock, make_settings(), stats, budget=10.0)
    assert isinstance(result, RetryFailure)
    assert clock.sleeps == []
    assert len(calls) == 1


async def test_throttled_time_is_not_taken_from_the_budget(clock, make_settings, stats) -> None:
    """A 429 is the allowance speaking, not a failure: the events wait for it."""
    answers = [(429, {"Retry-After": "20"})] * 3 + [201]
    send, calls = scripted(*answers)
    result = await run(send, clock, make_settings(), stats, budget=10.0)
    assert isinstance(result, httpx.Response)
    assert result.status_code == 201
    # Retry-After 20 s: level ceil(log2 20) = 5, then 6 (the top): max(20, 32) x 1.5, then
    # max(20, 64) x 1.5 twice - all far past the 10 s budget
    assert clock.sleeps == [48.0, 96.0, 96.0]
    assert len(calls) == 4
    assert stats.throttle.hits == 3
    # the success came a whole widened interval (64 s) after the last 429: one step back
    assert stats.throttle.level == 5


async def test_a_429_pauses_every_request_of_the_exporter(clock, make_settings, stats) -> None:
    throttled, _ = scripted((429, {"Retry-After": "4"}), 201)
    await run(throttled, clock, make_settings(), stats)
    assert clock.sleeps == [6.0]  # level 2: max(4, 4) x 1.5
    # another batch, whose own answers are fine, still waits for the pause to end
    stats.throttle.until = clock.now + 2.0
    other, calls = scripted(201)
    result = await run(other, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    assert clock.sleeps == [6.0, 2.0]
    assert len(calls) == 1


async def test_deadline_already_passed_sends_nothing(clock, make_settings, stats) -> None:
    send, calls = scripted(201)
    result = await run(send, clock, make_settings(), stats, budget=0.0)
    assert isinstance(result, RetryFailure)
    assert result.attempts == 0
    assert calls == []


async def test_transport_errors_exhausted(clock, make_settings, stats) -> None:
    send, _ = scripted(httpx.ConnectError("refused"))
    result = await run(send, clock, make_settings(), stats, budget=3.0)
    assert isinstance(result, RetryFailure)
    assert isinstance(result.exception, httpx.ConnectError)
    assert "ConnectError" in result.describe()


async def test_non_transient_httpx_error_is_rejected(clock, make_settings, stats) -> None:
    send, calls = scripted(httpx.TooManyRedirects("loop"))
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, RetryFailure)
    assert result.reason == "rejected"
    assert len(calls) == 1


async def test_bug_in_send_propagates(clock, make_settings, stats) -> None:
    send, _ = scripted(ValueError("bug"))
    with pytest.raises(ValueError, match="bug"):
        await run(send, clock, make_settings(), stats)


def test_constants_in_one_place() -> None:
    assert frozenset(RETRYABLE) == _retry.RETRY_STATUSES
    assert _retry.BACKOFF_BASE == 0.5


async def test_outside_delivery_a_429_is_an_ordinary_retry(clock, make_settings, stats) -> None:
    """A user's read call honours Retry-After as it is, within its own deadline."""
    send, calls = scripted((429, {"Retry-After": "20"}))
    result = await send_with_retry(
        send,
        deadline=clock.now + 10.0,
        settings=make_settings(),
        stats=stats,
        sleep=clock.sleep,
        clock=clock,
        wall_clock=lambda: NOW,
        rand=lambda: 1.0,
    )
    assert isinstance(result, RetryFailure)
    assert clock.sleeps == []  # 20 s would end past the deadline: give up at once
    assert len(calls) == 1
    assert stats.throttle.hits == 0
    assert stats.failing_since is None  # not a delivery outage


async def test_repeated_429s_without_retry_after_back_off(clock, make_settings, stats) -> None:
    send, calls = scripted(429, 429, 201)
    result = await run(send, clock, make_settings(), stats)
    assert isinstance(result, httpx.Response)
    assert len(calls) == 3
    # backoff 0.5 s then 1 s; levels 1 then 2: max(0.5, 2) x 1.5, max(1, 4) x 1.5
    assert clock.sleeps == [3.0, 6.0]


@pytest.mark.parametrize(
    ("wait", "base", "level"),
    [(1.0, 1.0, 1), (5.0, 1.0, 3), (1.0, 0.05, 5), (0.2, 1.0, 1), (3600.0, 1.0, 6)],
)
def test_the_first_429_widens_the_interval_past_retry_after(
    wait: float, base: float, level: int
) -> None:
    from agentsight_async._stats import Throttle

    t = Throttle()
    t.throttled(wait, now=100.0, base=base, jitter=0.0)
    assert t.level == level
    pause = t.delay(100.0)
    assert pause >= wait  # never before the server said
    assert pause == pytest.approx(max(wait, base * 2**level))


def test_room_is_taken_back_one_step_per_quiet_interval() -> None:
    from agentsight_async._stats import Throttle

    t = Throttle()
    t.throttled(1.0, now=0.0, base=1.0, jitter=0.0)
    t.throttled(1.0, now=1.0, base=1.0, jitter=0.0)
    assert t.level == 2
    t.succeeded(now=2.0, base=1.0)  # only 1 s since the last 429: not yet
    assert t.level == 2
    t.succeeded(now=5.0, base=1.0)  # a whole widened interval (4 s) was quiet
    assert t.level == 1
    t.succeeded(now=6.0, base=1.0)  # the next step needs its own quiet interval (2 s)
    assert t.level == 1
    t.succeeded(now=7.0, base=1.0)
    assert t.level == 0
