"""The blocking clients: thin shells that run the async core on a private loop thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_support import BASE, KEY, Script, page, reply

import agentsight_async
from agentsight_async import (
    AgentSightAPI,
    ConfigurationError,
    ConversationManager,
    ConversationNetworkException,
    NoApiKeyException,
    NotFoundException,
    RateLimitException,
    agentsight_api,
    conversation_manager,
)
from agentsight_async._portal import LoopThread


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


@pytest.fixture
def singletons() -> Iterator[None]:
    """The module-level clients, closed (so they read the environment again) around a test."""
    agentsight_api.close()
    conversation_manager.close()
    try:
        yield
    finally:
        agentsight_api.close()
        conversation_manager.close()


def test_each_method_returns_what_the_async_core_returns() -> None:
    script = Script(
        page([{"id": 1}]),
        reply(200, {"id": 1, "transcript": []}),
        reply(200, {"count": 0, "results": []}),
    )
    with AgentSightAPI(KEY, BASE, transport=script.transport) as api:
        assert api.fetch_conversations(customer_id="c", has_feedback=False, ordering="x") == {
            "count": 1,
            "next": None,
            "previous": None,
            "results": [{"id": 1}],
        }
        assert api.fetch_conversation(1) == {"id": 1, "transcript": []}
        assert api.fetch_conversation_attachments(1) == {"count": 0, "results": []}
    assert script.params(0) == {"customer_id": "c", "has_feedback": "false", "ordering": "x"}
    assert script.calls[1:] == [
        ("GET", "/api/conversations/1/"),
        ("GET", "/api/conversations/1/attachments/"),
    ]


def test_the_manager_forwards_every_argument() -> None:
    script = Script(reply(200, {"id": 8}), reply(201, {"id": 2}))
    with ConversationManager(KEY, BASE, transport=script.transport) as manager:
        assert manager.update_conversation(
            "chat-8",
            name="n",
            is_marked=True,
            customer_id="c",
            device="d",
            language="l",
            metadata={"m": 1},
        ) == {"id": 2}
    assert script.calls == [
        ("GET", "/api/conversations/lookup/"),
        ("PATCH", "/api/conversations/8/update/"),
    ]
    assert script.body() == {
        "name": "n",
        "is_marked": True,
        "customer_id": "c",
        "device": "d",
        "language": "l",
        "metadata": {"m": 1},
    }


def test_errors_raise_in_the_caller_with_their_own_type() -> None:
    script = Script(reply(404, {"detail": "Not found."}), reply(429, Retry_After="9"))
    with ConversationManager(KEY, BASE, transport=script.transport) as manager:
        with pytest.raises(NotFoundException, match=r"^Not found\.$"):
            manager.delete_conversation("gone")
        with pytest.raises(RateLimitException) as caught:
            manager.submit_feedback(3, "positive")
        assert caught.value.retry_after == 9.0
        with pytest.raises(ValueError, match="At least one field"):
            manager.update_conversation(3)


def test_sync_iteration_walks_every_page() -> None:
    script = Script(
        page([{"id": 3}, {"id": 2}], count=3, next_url="n"),
        page([{"id": 1}], count=3, next_url=None),
    )
    with AgentSightAPI(KEY, BASE, transport=script.transport) as api:
        assert [c["id"] for c in api.iter_conversations(page_size=2)] == [3, 2, 1]
    assert [r.url.params["page"] for r in script.requests] == ["1", "2"]


@pytest.mark.allow_blocking
async def test_a_blocking_call_works_inside_a_running_event_loop() -> None:
    """As in a Jupyter cell or a FastAPI handler: the work runs on the client's own loop."""
    script = Script(page([{"id": 1}]))
    with AgentSightAPI(KEY, BASE, transport=script.transport) as api:
        assert api.fetch_conversations()["count"] == 1


def test_a_blocking_call_from_the_clients_own_loop_thread_raises_instead_of_deadlocking() -> None:
    inner: list[BaseException] = []
    api: AgentSightAPI

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/7/"):
            try:
                api.fetch_conversation(8)  # called back from the loop thread
            except BaseException as exc:
                inner.append(exc)
        return reply(200, {"id": 7})

    with AgentSightAPI(KEY, BASE, transport=httpx.MockTransport(handler)) as api:
        assert api.fetch_conversation(7) == {"id": 7}
    assert len(inner) == 1
    assert isinstance(inner[0], RuntimeError)
    assert "own event-loop thread" in str(inner[0])


def test_the_loop_thread_gives_up_at_its_deadline_and_cancels_the_work() -> None:
    portal = LoopThread("agentsight-async-test-portal", own_thread_error="own thread")
    cancelled = threading.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(ConversationNetworkException, match=r"did not finish within 0\.2 s"):
        portal.call(
            hang,
            0.2,
            lambda: ConversationNetworkException("the call did not finish within 0.2 s"),
        )
    assert time.monotonic() - started < 5
    assert cancelled.wait(5)
    portal.stop()
    assert not _threads("agentsight-async-test-portal")


def test_the_loop_thread_starts_on_first_call_and_close_stops_it() -> None:
    script = Script(page([]))
    api = AgentSightAPI(KEY, BASE, transport=script.transport)
    api.close()  # never used: nothing to close, no thread started for it
    assert not _threads("agentsight-async-AgentSightAPI")
    api.fetch_conversations()
    (thread,) = _threads("agentsight-async-AgentSightAPI")
    assert thread.daemon
    api.close()
    assert not thread.is_alive()
    api.fetch_conversations()  # usable again
    api.close()
    api.close()  # twice is fine
    assert len(script.requests) == 2


def test_threads_calling_at_once_share_the_client() -> None:
    script = Script(page([{"id": 1}]))
    results: list[int] = []
    with AgentSightAPI(KEY, BASE, transport=script.transport) as api:
        workers = [
            threading.Thread(target=lambda: results.append(api.fetch_conversations()["count"]))
            for _ in range(8)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
    assert results == [1] * 8
    assert len(_threads("agentsight-async-AgentSightAPI")) == 0


# -- construction, configuration, the module-level clients -----------------------------------


def test_a_client_checks_its_credentials_when_built() -> None:
    with pytest.raises(NoApiKeyException):
        AgentSightAPI(endpoint=BASE)
    with pytest.raises(ConfigurationError):
        ConversationManager(KEY, "sqlite:///local.db")


def test_importing_and_the_module_level_clients_never_raise_until_used(
    singletons: None,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import agentsight_async as a; print(a.agentsight_api)"],
        capture_output=True,
        text=True,
        timeout=60,  # no AGENTSIGHT_* here (conftest)
    )
    assert out.returncode == 0, out.stderr
    assert "AgentSightAPI" in out.stdout
    with pytest.raises(NoApiKeyException):
        agentsight_api.fetch_conversations()
    with pytest.raises(NoApiKeyException):
        conversation_manager.mark_conversation(1, True)


def test_the_module_level_clients_read_the_environment_on_first_use(
    singletons: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSIGHT_API_KEY", KEY)
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", "https://from-env.test")
    assert agentsight_api.settings.api_endpoint == "https://from-env.test"
    assert conversation_manager.settings.api_endpoint == "https://from-env.test"
    assert agentsight_async.agentsight_api is agentsight_api
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", "https://changed.test")
    agentsight_api.close()  # closing forgets the settings: they are read again
    assert agentsight_api.settings.api_endpoint == "https://changed.test"


def test_configure_changes_settings_and_refuses_bad_ones_without_breaking() -> None:
    first, second = Script(page([{"id": 1}])), Script(page([{"id": 2}]))
    with AgentSightAPI(KEY, BASE, transport=first.transport) as api:
        api.fetch_conversations()
        api.configure(endpoint="https://second.test", transport=second.transport)
        assert api.fetch_conversations()["results"] == [{"id": 2}]
        assert str(second.requests[0].url).startswith("https://second.test/")
        with pytest.raises(NoApiKeyException):
            api.configure(api_key=None)
        with pytest.raises(ConfigurationError):
            api.configure(endpoint="memory://")
        assert api.fetch_conversations()["results"] == [{"id": 2}]  # still the good settings
        api.configure(request_timeout=3)  # what is not given keeps the value in effect
        assert api.settings.api_endpoint == "https://second.test"
        api.close()  # forgets configure(): back to the constructor's arguments
        assert api.fetch_conversations()["results"] == [{"id": 1}]
        assert api.settings.request_timeout == 15
    assert len(first.requests) == 2


def test_reprs_show_the_endpoint_and_never_the_key() -> None:
    api = AgentSightAPI(KEY, BASE, transport=Script().transport)
    lazy = ConversationManager(lazy=True)
    assert repr(api) == "<AgentSightAPI endpoint='https://agentsight.test'>"
    assert KEY not in repr(api) + repr(lazy) + str(api.settings)
    assert "first use" in repr(lazy)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_loop_thread(tmp_path: Any) -> None:
    script = textwrap.dedent(
        f"""
        import os, httpx
        from agentsight_async import AgentSightAPI
        answer = lambda request: httpx.Response(200, json={{"pid": os.getpid()}})
        api = AgentSightAPI({KEY!r}, "https://x.test", transport=httpx.MockTransport(answer))
        assert api.fetch_conversation(1)["pid"] == os.getpid()
        pid = os.fork()
        if pid == 0:
            ok = api.fetch_conversation(1)["pid"] == os.getpid()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert api.fetch_conversation(1)["pid"] == os.getpid()
        api.close()
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
