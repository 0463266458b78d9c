"""Secrets and transport safety.

The API key must never show in logs (any level, any logger - ours, httpx's,
httpcore's), reprs, exceptions, ``stats()``, ``on_error`` payloads or a
process's output - even against a server that refuses the key and echoes it
back.  TLS verification is on by default, and plain ``http://`` to another
host is warned about.  No test here sends anything beyond 127.0.0.1: the
non-loopback check uses an ``httpx.MockTransport`` that refuses to connect.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from reliability_support import KEY, KEY_SECRET_PART, AllRecords

from agentsight_async import (
    AgentSightError,
    AsyncConversationTracker,
    ConfigurationError,
    Settings,
)
from agentsight_async._exporters._client import build_client


class BadServer:
    """Answers 401/403/500; *echo* ``body`` or ``header`` sends the Authorization header
    it got back in the JSON body or in a ``WWW-Authenticate`` response header."""

    def __init__(self, echo: str = "none") -> None:
        self.requests = 0
        self.saw_key = False
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                auth = self.headers.get("Authorization", "")
                state.requests += 1
                state.saw_key = state.saw_key or KEY in auth
                if self.path.startswith("/api/ingest/"):
                    status = 403
                elif self.path.startswith(("/api/track/", "/api/me/", "/api/conversations/")):
                    status = 401
                else:
                    status = 500
                detail = {"detail": "Invalid API key."}
                if echo == "body":
                    detail = {"detail": f"Invalid API key: {auth}", "key": auth}
                body = json.dumps(detail).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if echo == "header":
                    self.send_header("WWW-Authenticate", f"Api-Key realm={auth}")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


#: Found by this suite: a server echoing the key in its error body got it into
#: ``ConversationApiException.response_data`` and ``send_tracked_data()`` results; one
#: echoing it in a response header got it logged by httpcore at DEBUG.
ECHOES = [
    pytest.param("none", id="no-echo"),
    pytest.param("body", id="echo-in-body"),
    pytest.param("header", id="echo-in-header"),
]


@pytest.fixture(params=["none"])
def bad_server(request: pytest.FixtureRequest) -> Iterator[BadServer]:
    server = BadServer(echo=request.param)
    try:
        yield server
    finally:
        server.stop()


def assert_no_key(where: str, text: str) -> None:
    assert KEY_SECRET_PART not in text, f"the API key leaked into {where}"
    assert KEY_SECRET_PART.upper() not in text, f"the API key leaked into {where}"


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
@pytest.mark.parametrize("bad_server", ECHOES, indirect=True)
async def test_key_never_in_logs_reprs_stats_exceptions(
    protocol: str, bad_server: BadServer, all_logs: AllRecords
) -> None:
    seen: list[str] = []

    def on_error(exc: BaseException, context: dict[str, Any]) -> None:
        seen.extend([str(exc), repr(exc), repr(context), repr(exc.args)])
        seen.append(repr(getattr(exc, "response_data", None)))

    tracker = AsyncConversationTracker(
        api_key=KEY,
        endpoint=bad_server.url,
        protocol=protocol,
        on_error=on_error,
        flush_interval=0.05,
        retry_budget=1.0,
        log_level="DEBUG",
        _env_file=None,
    )
    async with tracker:
        await tracker.get_or_create_conversation("secret-chat", name="n")
        await tracker.track_human_message("hello", conversation_id="secret-chat")
        await tracker.track_action("tool", response="r", conversation_id="secret-chat")
        report = await tracker.send_tracked_data(conversation_id="secret-chat", timeout=10)
        try:
            await tracker.initialize_conversation("secret-2", timeout=5)
        except AgentSightError as exc:
            seen.extend([str(exc), repr(exc), repr(getattr(exc, "response_data", None))])
        stats = tracker.stats()
        seen.extend([repr(tracker), str(tracker), repr(tracker.settings), str(tracker.settings)])
        seen.append(tracker.settings.model_dump_json())
        seen.append(repr(tracker.settings.model_dump()))
    assert bad_server.saw_key  # the key did travel, to the server it is meant for
    assert stats["dropped_total"] >= 3
    assert all_logs.records, "nothing was logged at DEBUG"
    assert any(r.name == "httpx" for r in all_logs.records)
    assert any(r.levelno >= logging.WARNING for r in all_logs.records)
    assert_no_key("logs", all_logs.text)
    assert_no_key("stats()", repr(stats))
    assert_no_key("send_tracked_data()", repr(report))
    assert_no_key("on_error, exceptions and reprs", "\n".join(seen))


def test_configuration_errors_never_echo_the_key() -> None:
    for bad in (KEY + "0", KEY[:-1] + "z", KEY.upper() + "_", " " + KEY + "!"):
        with pytest.raises(ConfigurationError) as info:
            AsyncConversationTracker(api_key=bad, endpoint="https://x.invalid", _env_file=None)
        assert str(info.value).startswith("AGENTSIGHT_API_KEY")
        assert_no_key("a configuration error", f"{info.value!s} {info.value!r} {info.value.args}")


SCRIPT = r"""
import asyncio, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                    format="%(levelname)s %(name)s %(message)s")
for name in ("agentsight_async", "httpx", "httpcore"):
    logging.getLogger(name).setLevel(logging.DEBUG)

from agentsight_async import AsyncConversationTracker, conversation_tracker

def on_error(exc, ctx):
    print("on_error:", exc, repr(exc), ctx, getattr(exc, "response_data", None))

async def main(protocol):
    t = AsyncConversationTracker(protocol=protocol, on_error=on_error, retry_budget=1.0,
                                 flush_interval=0.05)
    print(repr(t), t.settings, t.settings.model_dump())
    async with t:
        await t.track_human_message("hi", conversation_id="c-" + protocol)
        print(await t.send_tracked_data(conversation_id="c-" + protocol, timeout=10))
        try:
            await t.initialize_conversation("i-" + protocol, timeout=5)
        except Exception as exc:
            print("raised:", repr(exc), exc)
        print("stats:", t.stats())

asyncio.run(main("ingest"))
asyncio.run(main("rest"))
# the documented sync singleton, configured from the environment
conversation_tracker.get_or_create_conversation("sync-chat")
conversation_tracker.track_human_message("hello")
print(conversation_tracker.send_tracked_data(timeout=10))
print(repr(conversation_tracker), conversation_tracker.stats())
conversation_tracker.track_agent_message("left for the exit flush")
raise SystemExit(0)
"""


@pytest.mark.parametrize(
    "bad_server", [ECHOES[0], ECHOES[1]], indirect=True
)  # the header echo only shows at DEBUG in httpcore: covered above
def test_key_never_in_a_process_output(bad_server: BadServer, tmp_path: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
    env.update(
        AGENTSIGHT_API_KEY=KEY,
        AGENTSIGHT_API_ENDPOINT=bad_server.url,
        AGENTSIGHT_RETRY_BUDGET="1",
        AGENTSIGHT_SHUTDOWN_TIMEOUT="3",
        PYTHONFAULTHANDLER="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert bad_server.saw_key
    assert "httpx HTTP Request:" in output  # the loggers really were on
    assert "DEBUG httpcore" in output
    assert "stats:" in output
    assert_no_key("the process's stdout/stderr", output)


def test_tls_verification_is_on_by_default() -> None:
    settings = Settings(api_key=KEY, _env_file=None)
    assert settings.verify_tls is True
    assert settings.api_endpoint.startswith("https://")
    client = build_client(settings)
    context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


@pytest.mark.parametrize(
    ("endpoint", "warned"),
    [
        ("http://agentsight.reliability-test.invalid", True),
        ("http://10.11.12.13:8000", True),
        ("http://127.0.0.1:9", False),
        ("http://localhost:9", False),
        ("https://agentsight.reliability-test.invalid", False),
    ],
)
async def test_plain_http_to_another_host_is_warned_about(
    endpoint: str, warned: bool, all_logs: AllRecords
) -> None:
    attempts: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(str(request.url))
        raise httpx.ConnectError("refused by the test transport", request=request)

    tracker = AsyncConversationTracker(
        api_key=KEY,
        endpoint=endpoint,
        transport=httpx.MockTransport(refuse),
        flush_interval=0.05,
        retry_budget=0.3,
        _env_file=None,
    )
    async with tracker:
        await tracker.track_human_message("hi", conversation_id="tls")
        flushed = await tracker.flush(timeout=5)
    assert not flushed
    assert flushed.pending == 0
    assert attempts, "the exporter never tried the (mock) transport"
    warnings = [
        r.getMessage()
        for r in all_logs.records
        if r.levelno == logging.WARNING and "plain http://" in r.getMessage()
    ]
    assert bool(warnings) is warned, warnings
    assert_no_key("the warning", "\n".join(warnings))
    assert tracker.stats()["dropped"]["retries_exhausted"] == 1
