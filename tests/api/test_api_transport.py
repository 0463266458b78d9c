"""Retries, errors and edge answers of the reading and managing clients (scripted transport).

Reads are retried (network errors, 408, 429, 5xx, ``Retry-After`` in seconds or
as an HTTP-date, capped) within the call's budget; writes are sent exactly once;
every answer maps to the original client's exception names.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from api_support import KEY, Script, reply

from agentsight_async import (
    ApiServerException,
    AsyncAgentSightAPI,
    AsyncConversationManager,
    ConfigurationError,
    ConversationApiException,
    ConversationNetworkException,
    ForbiddenException,
    NoApiKeyException,
    NotFoundException,
    RateLimitException,
    UnauthorizedException,
)

MakeApi = Callable[..., AsyncAgentSightAPI]
MakeManager = Callable[..., AsyncConversationManager]
OK_PAGE = {"count": 0, "next": None, "previous": None, "results": []}


# -- reads: retried --------------------------------------------------------------------------


async def test_a_429_with_retry_after_seconds_is_waited_out_and_retried(
    make_api: MakeApi, fake_time: Any
) -> None:
    script = Script(reply(429, {"detail": "slow down"}, Retry_After="7"), reply(200, OK_PAGE))
    api = make_api(script, retry_budget=60)
    assert await api.fetch_conversations() == OK_PAGE
    assert fake_time.sleeps == [7.0]
    assert script.calls == [("GET", "/api/conversations/")] * 2


async def test_a_retry_after_http_date_is_understood(make_api: MakeApi, fake_time: Any) -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    script = Script(reply(503, Retry_After=when), reply(200, OK_PAGE))
    await make_api(script, retry_budget=60).fetch_conversations()
    assert fake_time.sleeps == [pytest.approx(5, abs=1.5)]


async def test_a_long_retry_after_is_capped(make_api: MakeApi, fake_time: Any) -> None:
    script = Script(reply(429, Retry_After="3600"), reply(200, OK_PAGE))
    await make_api(script, retry_budget=100, retry_after_cap=30).fetch_conversations()
    assert fake_time.sleeps == [30.0]


async def test_a_retry_after_beyond_the_budget_raises_at_once_with_retry_after(
    make_api: MakeApi, fake_time: Any
) -> None:
    script = Script(reply(429, {"detail": "Request was throttled."}, Retry_After="25"))
    with pytest.raises(RateLimitException) as caught:
        await make_api(script, retry_budget=10).fetch_conversations()
    assert caught.value.retry_after == 25.0
    assert caught.value.status_code == 429
    assert "Request was throttled." in str(caught.value)
    assert len(script.requests) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_transient_statuses_are_retried_until_they_pass(
    make_api: MakeApi, status: int
) -> None:
    script = Script(reply(status), reply(status), reply(200, OK_PAGE))
    assert await make_api(script).fetch_conversations() == OK_PAGE
    assert len(script.requests) == 3


async def test_a_5xx_that_lasts_raises_api_server_exception_after_retries(
    make_api: MakeApi, fake_time: Any
) -> None:
    script = Script(reply(503, {"detail": "maintenance"}))
    with pytest.raises(ApiServerException) as caught:
        await make_api(script, retry_budget=10).fetch_conversation(42)
    err = caught.value
    assert isinstance(err, ConversationApiException)  # what 0.0.44 raised for a 5xx
    assert err.status_code == 503
    assert err.response_data == {"detail": "maintenance"}
    assert str(err) == "API error (503): maintenance"
    assert len(script.requests) > 2
    assert sum(fake_time.sleeps) < 10  # no wait crosses the budget


async def test_network_errors_are_retried(make_api: MakeApi) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), reply(200, OK_PAGE))
    assert await make_api(script).fetch_conversations() == OK_PAGE
    assert len(script.requests) == 3


async def test_an_unreachable_server_raises_network_exception_after_retries(
    make_api: MakeApi,
) -> None:
    script = Script(httpx.ConnectError("connection refused"))
    with pytest.raises(ConversationNetworkException, match="connection refused"):
        await make_api(script, retry_budget=5).fetch_conversations()
    assert len(script.requests) > 1


async def test_a_request_without_an_answer_times_out_and_is_retried(make_api: MakeApi) -> None:
    """httpx's timeouts apply per phase; a call has a total one per request as well."""
    import asyncio

    attempts = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await asyncio.sleep(5)
        return reply(200, OK_PAGE)

    api = AsyncAgentSightAPI(
        KEY, "https://agentsight.test", transport=httpx.MockTransport(handler), request_timeout=0.05
    )
    started = time.monotonic()
    assert await api.fetch_conversations() == OK_PAGE
    assert attempts == 2
    assert time.monotonic() - started < 3


# -- errors: mapped, not retried ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (404, {"detail": "Not found."}, NotFoundException, "Not found."),
        (404, {}, NotFoundException, "Resource not found"),
        (401, {"detail": "Invalid API key."}, UnauthorizedException, "Invalid API key."),
        (401, {}, UnauthorizedException, "Invalid or missing API key"),
        (403, {"detail": "read-only key"}, ForbiddenException, "read-only key"),
        (
            400,
            {"name": ["Ensure this field has no more than 255 characters."], "device": ["bad"]},
            ConversationApiException,
            "API error (400): name: Ensure this field has no more than 255 characters.; "
            "device: bad",
        ),
        (409, {"detail": "conflict"}, ConversationApiException, "API error (409): conflict"),
        (422, {"error": "nope"}, ConversationApiException, "API error (422): nope"),
    ],
)
async def test_client_errors_map_to_the_original_names_and_are_not_retried(
    make_api: MakeApi, status: int, body: Any, cls: type[Exception], message: str
) -> None:
    script = Script(reply(status, body))
    with pytest.raises(cls) as caught:
        await make_api(script).fetch_conversation(7)
    err = caught.value
    assert type(err) is cls
    assert str(err) == message
    assert isinstance(err, ConversationApiException)
    assert err.status_code == status
    assert err.response_data == body
    assert len(script.requests) == 1


async def test_a_redirect_is_an_error_not_followed(make_api: MakeApi) -> None:
    script = Script(httpx.Response(301, headers={"Location": "https://elsewhere.test/"}))
    with pytest.raises(ConversationApiException) as caught:
        await make_api(script).fetch_conversations()
    assert caught.value.status_code == 301
    assert len(script.requests) == 1


async def test_an_empty_success_body_is_an_empty_dict(make_manager: MakeManager) -> None:
    script = Script(httpx.Response(204))
    assert await make_manager(script).delete_conversation(3) == {}


# -- writes: exactly once ------------------------------------------------------------------------

WRITES: list[tuple[str, Callable[[AsyncConversationManager], Awaitable[Any]], str, str]] = [
    (
        "feedback",
        lambda m: m.submit_feedback(3, "positive"),
        "POST",
        "/api/conversation-feedbacks/",
    ),
    ("rename", lambda m: m.rename_conversation(3, "New"), "PATCH", "/api/conversations/3/rename/"),
    ("mark", lambda m: m.mark_conversation(3, True), "POST", "/api/conversations/3/mark/"),
    (
        "update",
        lambda m: m.update_conversation(3, device="ios"),
        "PATCH",
        "/api/conversations/3/update/",
    ),
    ("delete", lambda m: m.delete_conversation(3), "DELETE", "/api/conversations/3/delete/"),
]
WRITE_IDS = [w[0] for w in WRITES]


@pytest.mark.parametrize(("name", "call", "method", "path"), WRITES, ids=WRITE_IDS)
async def test_a_write_is_sent_once(
    make_manager: MakeManager, name: str, call: Any, method: str, path: str
) -> None:
    script = Script(reply(201, {"id": 3}))
    assert await call(make_manager(script)) == {"id": 3}
    assert script.calls == [(method, path)]


@pytest.mark.parametrize(("name", "call", "method", "path"), WRITES, ids=WRITE_IDS)
async def test_a_throttled_write_raises_with_retry_after_and_is_not_replayed(
    make_manager: MakeManager, fake_time: Any, name: str, call: Any, method: str, path: str
) -> None:
    script = Script(reply(429, {"detail": "throttled"}, Retry_After="7"), reply(201))
    with pytest.raises(RateLimitException) as caught:
        await call(make_manager(script))
    assert caught.value.retry_after == 7.0
    assert script.calls == [(method, path)]
    assert fake_time.sleeps == []


@pytest.mark.parametrize(
    "failure",
    [reply(503), reply(500), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "500", "connect-error", "read-timeout"],
)
@pytest.mark.parametrize(("name", "call", "method", "path"), WRITES, ids=WRITE_IDS)
async def test_a_failed_write_is_not_replayed(
    make_manager: MakeManager, failure: Any, name: str, call: Any, method: str, path: str
) -> None:
    script = Script(failure, reply(201))
    expected = (
        ApiServerException if isinstance(failure, httpx.Response) else ConversationNetworkException
    )
    with pytest.raises(expected):
        await call(make_manager(script))
    assert script.calls == [(method, path)]


async def test_a_string_id_is_resolved_through_lookup_and_the_lookup_is_retried(
    make_manager: MakeManager,
) -> None:
    script = Script(
        reply(503),
        reply(200, {"id": 42, "conversation_id": "chat-1"}),
        reply(200, {"id": 42, "name": "New"}),
    )
    assert await make_manager(script).rename_conversation("chat-1", "  New  ") == {
        "id": 42,
        "name": "New",
    }
    assert script.calls == [
        ("GET", "/api/conversations/lookup/"),
        ("GET", "/api/conversations/lookup/"),
        ("PATCH", "/api/conversations/42/rename/"),
    ]
    assert script.params(0) == {"conversation_id": "chat-1"}
    assert script.body() == {"name": "New"}


async def test_an_unknown_string_id_raises_not_found_and_writes_nothing(
    make_manager: MakeManager,
) -> None:
    script = Script(reply(404, {"detail": "Not found."}))
    with pytest.raises(NotFoundException):
        await make_manager(script).mark_conversation("nope", True)
    assert script.calls == [("GET", "/api/conversations/lookup/")]


async def test_feedback_sends_a_string_id_as_is_and_a_pk_as_conversation(
    make_manager: MakeManager,
) -> None:
    script = Script(reply(201, {"id": 1}))
    manager = make_manager(script)
    await manager.submit_feedback("chat-1", "negative", comment="slow", metadata={"k": 1})
    await manager.submit_feedback(9, "neutral", comment="")
    assert script.calls == [("POST", "/api/conversation-feedbacks/")] * 2  # no lookup
    assert script.body(0) == {
        "sentiment": "negative",
        "conversation_id": "chat-1",
        "comment": "slow",
        "metadata": {"k": 1},
    }
    assert script.body(1) == {"sentiment": "neutral", "conversation": 9}


# -- requests ---------------------------------------------------------------------------------


async def test_requests_carry_the_key_our_user_agent_and_json(make_manager: MakeManager) -> None:
    script = Script(reply(201))
    await make_manager(script).update_conversation(5, name="n", is_marked=False)
    request = script.requests[0]
    assert request.headers["Authorization"] == f"Api-Key {KEY}"
    assert request.headers["User-Agent"].startswith("agentsight-async/")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert script.body() == {"name": "n", "is_marked": False}


async def test_the_endpoint_joins_with_one_slash(make_api: MakeApi) -> None:
    script = Script(reply(200, OK_PAGE))
    api = AsyncAgentSightAPI(KEY, "https://agentsight.test/base/", transport=script.transport)
    await api.fetch_conversations()
    assert str(script.requests[0].url) == "https://agentsight.test/base/api/conversations/"


async def test_async_with_closes_the_connections(make_api: MakeApi) -> None:
    script = Script(reply(200, OK_PAGE))
    async with make_api(script) as api:
        await api.fetch_conversations()
    # usable again after closing: a new client is built on first use
    await api.fetch_conversations()
    await api.aclose()
    assert len(script.requests) == 2


# -- configuration --------------------------------------------------------------------------


def test_a_missing_key_raises_when_the_client_is_built() -> None:
    with pytest.raises(NoApiKeyException):
        AsyncAgentSightAPI(endpoint="https://agentsight.test")
    with pytest.raises(NoApiKeyException):
        AsyncConversationManager()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIGHT_API_KEY", KEY)
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", "https://env.test/")
    monkeypatch.setenv("AGENTSIGHT_REQUEST_TIMEOUT", "3")
    api = AsyncAgentSightAPI()
    assert api.settings.api_endpoint == "https://env.test"
    assert api.settings.request_timeout == 3
    overridden = AsyncAgentSightAPI(endpoint="https://arg.test", request_timeout=4)
    assert (overridden.settings.api_endpoint, overridden.settings.request_timeout) == (
        "https://arg.test",
        4,
    )


async def test_a_collector_on_this_machine_needs_no_key() -> None:
    """The tracker's rule: ``agentsight-async serve --dev`` accepts requests without one."""
    script = Script(reply(200, OK_PAGE))
    api = AsyncAgentSightAPI(endpoint="http://127.0.0.1:8765", transport=script.transport)
    await api.fetch_conversations()
    assert "Authorization" not in script.requests[0].headers
    with pytest.raises(NoApiKeyException):
        AsyncAgentSightAPI(endpoint="http://collector.example:8765")


@pytest.mark.parametrize("endpoint", ["sqlite:///x.db", "memory://", "ftp://host"])
def test_reading_needs_an_http_endpoint(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_API_ENDPOINT"):
        AsyncAgentSightAPI(KEY, endpoint)


def test_a_malformed_key_is_refused_without_showing_it() -> None:
    bad = "ags_not-a-real-key-but-secret-ish"
    with pytest.raises(ConfigurationError) as caught:
        AsyncAgentSightAPI(bad, "https://agentsight.test")
    assert "secret-ish" not in str(caught.value)


# -- secrets --------------------------------------------------------------------------------


async def test_the_key_never_shows_in_errors_reprs_or_logs(
    make_api: MakeApi, make_manager: MakeManager, caplog: pytest.LogCaptureFixture
) -> None:
    echo = {"detail": f"bad key Api-Key {KEY}", "key": KEY}
    script = Script(reply(400, echo), reply(401, echo), reply(503, echo), reply(429, echo))
    caplog.set_level(logging.DEBUG)
    api, manager = make_api(script, retry_budget=1), make_manager(script, retry_budget=1)
    seen: list[str] = [repr(api), repr(manager), str(api.settings), repr(api.settings)]
    for call in (
        lambda: api.fetch_conversations(),
        lambda: api.fetch_conversation(1),
        lambda: api.fetch_conversation_attachments(1),
        lambda: manager.submit_feedback("c", "positive"),
    ):
        with pytest.raises(ConversationApiException) as caught:
            await call()
        seen += [str(caught.value), repr(caught.value), repr(caught.value.response_data)]
    seen += [r.getMessage() for r in caplog.records]
    secret = KEY.split("_")[1]
    assert not [s for s in seen if secret in s]
