"""Credential redaction: everything on our logger, and only our own requests on httpx's.

The application's other httpx clients log through the same ``httpx`` and
``httpcore`` loggers; their records must reach the application exactly as
httpx wrote them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from agentsight_async._events import Batch, ConversationBatch
from agentsight_async._exporters import _redaction
from agentsight_async._exporters._ingest import IngestExporter
from agentsight_async._exporters._redaction import RedactingFilter, our_request

#: Looks like a key; appears in URLs and echoed headers below.
URL_KEY = "ags_" + "f" * 32 + "_abcdef"


def test_redact_and_scrub() -> None:
    text = f"Authorization: Api-Key {URL_KEY} and api-key   x1 and {URL_KEY}"
    assert _redaction.redact(text) == (
        "Authorization: Api-Key <redacted> and api-key <redacted> and ags_<redacted>"
    )
    body = {"detail": f"bad key {URL_KEY}", "echo": [{f"k {URL_KEY}": "Api-Key 123"}], "n": 1}
    scrubbed = _redaction.scrub(body)
    assert URL_KEY not in repr(scrubbed)
    assert scrubbed["n"] == 1
    assert scrubbed["echo"] == [{"k ags_<redacted>": "Api-Key <redacted>"}]


def test_filter_on_our_logger_redacts_every_record() -> None:
    record = logging.LogRecord(
        "agentsight_async", logging.WARNING, __file__, 1, "sent %s with %s", None, None
    )
    record.args = ("Authorization: Api-Key ags_" + "a" * 32 + "_abcdef", "ags_deadbeef")
    assert RedactingFilter().filter(record)  # outside any request of ours
    message = record.getMessage()
    assert "ags_a" not in message
    assert "deadbeef" not in message
    assert "Api-Key <redacted>" in message


def test_request_filter_touches_records_only_inside_our_requests() -> None:
    flt = RedactingFilter(only_our_requests=True)

    def record() -> logging.LogRecord:
        return logging.LogRecord(
            "httpx", logging.INFO, __file__, 1, "HTTP Request: GET %s", (URL_KEY,), None
        )

    theirs = record()
    assert flt.filter(theirs)
    assert (theirs.msg, theirs.args) == ("HTTP Request: GET %s", (URL_KEY,))
    ours = record()
    with our_request():
        assert flt.filter(ours)
    assert ours.getMessage() == "HTTP Request: GET ags_<redacted>"


def test_filters_installed_once_and_no_handlers(make_settings, stats) -> None:
    IngestExporter(make_settings(), stats)
    IngestExporter(make_settings(), stats)
    own = [
        f for f in logging.getLogger("agentsight_async").filters if isinstance(f, RedactingFilter)
    ]
    assert len(own) == 1
    assert own[0].only_our_requests is False
    for name in _redaction.HTTP_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name
        assert filters[0].only_our_requests is True, name
    assert logging.getLogger("agentsight_async").handlers == []  # a library installs none


def batch() -> Batch:
    from agentsight_async import _events as ev_mod

    ev = ev_mod.Event(ev_mod.QUESTION, "c", 1_795_000_000 * 10**9, ev_mod.next_seq(), {}, 1)
    return Batch([ConversationBatch("c", [ev], {})])


async def test_httpx_records_of_our_requests_redacted_users_untouched(
    make_settings, stats, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    endpoint = f"https://agentsight.test/{URL_KEY}"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": 1})

    exporter = IngestExporter(
        make_settings(api_endpoint=endpoint), stats, transport=httpx.MockTransport(answer)
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as users:

        async def user_requests() -> None:
            for _ in range(3):  # interleaved with ours on the same loop
                await users.get(f"{endpoint}/api/other/")
                await asyncio.sleep(0)

        outcomes, _ = await asyncio.gather(
            exporter.export(batch(), asyncio.get_running_loop().time() + 60), user_requests()
        )
    await exporter.aclose()
    assert outcomes[0][0].ok
    records = [r for r in caplog.records if r.name == "httpx"]
    theirs = [r for r in records if "/api/other/" in r.getMessage()]
    ours = [r for r in records if r not in theirs]
    assert len(theirs) == 3
    assert {r.getMessage().split()[3] for r in ours} == {
        "https://agentsight.test/ags_<redacted>/api/me/",
        "https://agentsight.test/ags_<redacted>/api/ingest/",
    }
    for r in theirs:  # exactly as httpx logged it: the format string and its arguments
        assert r.msg == 'HTTP Request: %s %s "%s %d %s"'
        assert isinstance(r.args, tuple)
        assert str(r.args[1]) == f"{endpoint}/api/other/"
        assert URL_KEY in r.getMessage()


class EchoServer:
    """Answers 201 with the request's ``Authorization`` header echoed back in ``X-Echo``."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = b'{"id": 1}'
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Echo", self.headers.get("Authorization", ""))
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


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    try:
        yield server
    finally:
        server.stop()


async def test_httpcore_header_records_of_our_requests_only_are_redacted(
    make_settings, stats, caplog, api_key, echo_server
) -> None:
    caplog.set_level(logging.DEBUG, logger="httpcore")
    exporter = IngestExporter(make_settings(api_endpoint=echo_server.url), stats)
    outcomes = await exporter.export(batch(), asyncio.get_running_loop().time() + 60)
    await exporter.aclose()
    assert outcomes[0][0].ok
    ours = [r for r in caplog.records if r.name.startswith("httpcore")]
    echoed = [r for r in ours if "X-Echo" in r.getMessage()]
    assert len(echoed) == 2  # GET /api/me/ and POST /api/ingest/
    assert all("Api-Key <redacted>" in r.getMessage() for r in echoed)
    assert api_key not in caplog.text
    assert api_key[4:] not in "\n".join(r.getMessage() for r in ours)

    caplog.clear()
    async with httpx.AsyncClient(headers={"Authorization": f"Api-Key {api_key}"}) as users:
        response = await users.get(f"{echo_server.url}/api/mine/")
    assert response.headers["X-Echo"] == f"Api-Key {api_key}"
    theirs = [r for r in caplog.records if "X-Echo" in r.getMessage()]
    assert len(theirs) == 1
    assert api_key in theirs[0].getMessage()  # the application's record, as httpcore wrote it
    assert api_key in theirs[0].msg
