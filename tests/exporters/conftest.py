"""Fixtures for the exporter tests: events, settings, a fake clock, a real server.

``recording_server`` is a small real HTTP/1.1 server on 127.0.0.1 (stdlib
``http.server`` in a thread) that answers like AgentSight, records every
request it receives and can be told to misbehave: answer a status (503, 429
with ``Retry-After``), or drop the connection without answering.
"""

from __future__ import annotations

import gzip
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentsight_async import _events as ev_mod
from agentsight_async._config import Settings
from agentsight_async._events import Event
from agentsight_async._stats import Stats

API_KEY = "ags_0123456789abcdef0123456789abcdef_abc123"
BASE_TS = 1_795_000_000_123_456_000  # 2026-11-18T...; arbitrary fixed time


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_key": API_KEY,
            "api_endpoint": "https://agentsight.test",
            "retry_after_cap": 30.0,
            "_env_file": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def stats() -> Stats:
    return Stats()


class EventFactory:
    """Builds events in tracking order with stable, increasing timestamps."""

    def __init__(self) -> None:
        self._tick = itertools.count()

    def __call__(self, kind: str, conversation_id: str = "chat-1", **data: Any) -> Event:
        ts = BASE_TS + next(self._tick) * 1_000_000  # 1 ms apart
        return Event(kind, conversation_id, ts, ev_mod.next_seq(), data, 200)

    # Shorthands with the data shapes _validation produces.
    def conversation(self, cid: str = "chat-1", *, opened: bool = False, **fields: Any) -> Event:
        data: dict[str, Any] = dict.fromkeys(
            (
                "customer_id",
                "customer_ip_address",
                "device",
                "source",
                "language",
                "name",
                "environment",
                "metadata",
            )
        )
        data.update(fields)
        data["is_used"] = not opened
        kind = ev_mod.CONVERSATION_OPENED if opened else ev_mod.CONVERSATION
        return self(kind, cid, **data)

    def question(self, content: str = "hi", cid: str = "chat-1", **extra: Any) -> Event:
        return self(
            ev_mod.QUESTION, cid, **{"sender": "end_user", "metadata": {}, **extra}, content=content
        )

    def answer(self, content: str = "hello", cid: str = "chat-1", **extra: Any) -> Event:
        return self(
            ev_mod.ANSWER, cid, **{"sender": "agent", "metadata": {}, **extra}, content=content
        )


@pytest.fixture
def make_event() -> EventFactory:
    return EventFactory()


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- the recording server ------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    status: int | str
    at: float


@dataclass
class RecordingServer:
    """State shared with the handler thread; guarded by ``lock``."""

    capabilities: list[str] = field(default_factory=lambda: ["gzip-ingest"])
    faults: deque[tuple[Any, ...]] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pks: dict[str, int] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(5000))
    url: str = ""

    def fail_next(self, *faults: tuple[Any, ...]) -> None:
        """Queue faults for the next POSTs: ``("status", 503)``, ``("status", 429,
        {"Retry-After": "1"})`` or ``("drop",)``."""
        with self.lock:
            self.faults.extend(faults)

    def delivered(self, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if isinstance(r.status, int)
                and 200 <= r.status < 300
                and r.method == "POST"
                and (path is None or r.path == path)
            ]


def _make_handler(state: RecordingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, delayed ACKs
            # stall every keep-alive request by ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(
                    Recorded("GET", self.path, dict(self.headers), b"", None, 200, time.monotonic())
                )
            if self.path == "/api/me/":
                self._answer(
                    200,
                    {
                        "agent_id": 1,
                        "agent_name": "test",
                        "role": "write",
                        "environments": [{"slug": "production"}, {"slug": "development"}],
                        "capabilities": state.capabilities,
                    },
                )
            else:
                self._answer(404, {"detail": "Not found."})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            decoded = raw
            if self.headers.get("Content-Encoding") == "gzip":
                decoded = gzip.decompress(raw)
            body: Any
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(decoded)
            else:
                body = None
            with state.lock:
                fault = state.faults.popleft() if state.faults else None
                status: int | str = "dropped" if fault and fault[0] == "drop" else 0
                if fault and fault[0] == "status":
                    status = fault[1]
                elif not fault:
                    status = 201
                rec = Recorded(
                    "POST", self.path, dict(self.headers), raw, body, status, time.monotonic()
                )
                state.requests.append(rec)
                if status == 201 and self.path == "/api/conversations/" and body:
                    cid = body["conversation_id"]
                    answer: Any = {"id": state.pks.setdefault(cid, 1000 + len(state.pks))}
                elif status == 201:
                    answer = {"id": next(state.ids)}
                else:
                    answer = {"detail": "fault"}
            if status == "dropped":
                self.close_connection = True
                self.connection.shutdown(2)  # hang up without an answer
                return
            assert isinstance(status, int)
            headers = fault[2] if fault and len(fault) > 2 else None
            self._answer(status, answer, headers)

    return Handler


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    state = RecordingServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="recording-server", daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
