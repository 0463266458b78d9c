"""Helpers for the reliability suite: a fault-injecting HTTP proxy, a collector
subprocess, a background event loop, and read-back from the collector's SQLite.

Everything here binds to 127.0.0.1 only and is stopped by the fixtures that
create it (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import logging
import os
import random
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

#: A well-formed dummy key (never a real credential).
KEY = "ags_" + "0123456789abcdef" * 2 + "_abc123"
#: The parts of the key that must never leak, even partially re-formatted.
KEY_SECRET_PART = "0123456789abcdef" * 2

#: ``AGENTSIGHT_RELIABILITY_FULL=1`` (``nox -s reliability``) runs the full sizes.
#: Read at import: the root conftest removes every AGENTSIGHT_* variable per test.
FULL = os.environ.get("AGENTSIGHT_RELIABILITY_FULL", "") not in ("", "0")


def size(ci: int, full: int) -> int:
    """The shortened (CI) or the full figure of a workload knob."""
    return full if FULL else ci


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    """Poll *predicate* until it returns something truthy; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AllRecords(logging.Handler):
    """Keeps every record of every logger, formatted with its arguments and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# --- a background event loop (for sync hypothesis tests that call the async API) ---------


class LoopThread:
    """An asyncio loop on a daemon thread; :meth:`run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rel-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(_cancel_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# --- the fault-injecting proxy ----------------------------------------------------------

#: Fault kinds the proxy can inject.
STATUS = "status"  # answer a status itself; the server never sees the request
RETRY_AFTER_SECONDS = "retry_after_seconds"  # 429, Retry-After: <n>
RETRY_AFTER_DATE = "retry_after_date"  # 429, Retry-After: <HTTP-date now + n>
SLOW = "slow"  # forward, then hold the answer longer than the client's timeout
RESET_BEFORE = "reset_before"  # TCP RST before forwarding (server never saw it)
RESET_AFTER = "reset_after"  # forward, let the server commit, then RST (answer lost)


@dataclass(frozen=True)
class Fault:
    kind: str
    value: float = 0.0  # status code, Retry-After seconds, or slow delay

    @property
    def label(self) -> str:
        if self.kind == STATUS:
            return f"http_{int(self.value)}"
        return self.kind


@dataclass
class ProxyRecord:
    method: str
    path: str
    key: str  # Idempotency-Key or a hash of the body: equal across retries of one request
    fault: str | None
    started: float
    upstream_status: int | None = None


Policy = Callable[[str, str, str, int], "Fault | None"]


@dataclass
class FaultProxy:
    """HTTP/1.1 proxy on 127.0.0.1 in front of an upstream server, injecting faults.

    ``policy(method, path, key, attempt)`` decides the fault of each request
    (``attempt`` counts earlier requests with the same *key*, so a policy can
    guarantee that every request heals after a bounded number of faults).
    Only the proxy's own records are used to judge the client: which requests
    arrived, when, and what was done to them.
    """

    upstream_port: int
    policy: Policy = lambda method, path, key, attempt: None
    records: list[ProxyRecord] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    port: int = 0
    _attempts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            assert self._loop is not None
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()
        self._loop = None

    def posts(self) -> list[ProxyRecord]:
        with self._lock:
            return [r for r in self.records if r.method == "POST"]

    # -- per connection ----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_message(reader, is_request=True)
                if request is None:
                    return
                head, body = request
                keep_going = await self._one(head, body, writer)
                if not keep_going:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        request_line, headers = _parse_head(head)
        method, path = request_line.split(" ")[:2]
        key = headers.get("idempotency-key") or hashlib.sha1(body).hexdigest()
        with self._lock:
            attempt = self._attempts[f"{method} {path} {key}"]
            self._attempts[f"{method} {path} {key}"] += 1
            fault = self.policy(method, path, key, attempt)
            record = ProxyRecord(method, path, key, fault.label if fault else None, time.time())
            self.records.append(record)
            if fault is not None:
                self.injected[fault.label] += 1
        if fault is not None and fault.kind == RESET_BEFORE:
            _reset(writer)
            return False
        if fault is not None and fault.kind in (STATUS, RETRY_AFTER_SECONDS, RETRY_AFTER_DATE):
            extra: dict[str, str] = {}
            status = int(fault.value) if fault.kind == STATUS else 429
            if fault.kind == RETRY_AFTER_SECONDS:
                extra["Retry-After"] = str(int(fault.value))
            elif fault.kind == RETRY_AFTER_DATE:
                extra["Retry-After"] = email.utils.formatdate(
                    time.time() + fault.value, usegmt=True
                )
            writer.write(_answer(status, b'{"detail":"injected fault"}', extra))
            await writer.drain()
            return True
        response = await self._forward(head, body)
        record.upstream_status = int(response.split(b" ", 2)[1])
        if fault is not None and fault.kind == RESET_AFTER:
            _reset(writer)
            return False
        if fault is not None and fault.kind == SLOW:
            await asyncio.sleep(fault.value)
        writer.write(response)
        await writer.drain()
        return True

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        """One request on a fresh upstream connection; the whole answer, re-framed."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            writer.write(head + body)
            await writer.drain()
            message = await _read_message(reader, is_request=False)
            if message is None:
                raise ConnectionError("upstream closed without answering")
            rhead, rbody = message
            status_line, headers = _parse_head(rhead)
            keep = {
                k: v
                for k, v in headers.items()
                if k not in ("content-length", "transfer-encoding", "connection")
            }
            lines = [status_line, *(f"{k}: {v}" for k, v in keep.items())]
            lines.append(f"content-length: {len(rbody)}")
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rbody
        finally:
            writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


async def _read_message(
    reader: asyncio.StreamReader, *, is_request: bool
) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    _, headers = _parse_head(head[:-4])
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(n + 2)
            if n == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    elif is_request:
        body = b""
    else:
        body = await reader.read()
    return head, body


def _answer(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Injected", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def mixed_policy(
    kinds: list[Fault],
    *,
    probability: float,
    max_faults: int,
    max_per_request: int,
    seed: int,
) -> Policy:
    """Faults on POSTs at random (seeded), cycling through *kinds* so each kind is
    injected; bounded in total and per request - so every request heals after at
    most *max_per_request* faults."""
    rng = random.Random(seed)
    order = list(kinds)
    rng.shuffle(order)
    count = 0

    def policy(method: str, path: str, key: str, attempt: int) -> Fault | None:
        nonlocal count
        if method != "POST" or count >= max_faults or attempt >= max_per_request:
            return None
        if rng.random() >= probability:
            return None
        count += 1
        return order[(count - 1) % len(order)]

    return policy


# --- the collector as a separate process -----------------------------------------------


def serve_command(port: int, db: Path) -> list[str]:
    """``agentsight-async serve`` as a subprocess command line."""
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db), "--dev"]
    return [sys.executable, "-m", "agentsight_async", *args]


class CollectorProcess:
    """``agentsight-async serve --dev`` in a child process; SIGKILL-able and restartable."""

    def __init__(self, db: Path, log: Path, port: int | None = None) -> None:
        self.db = db
        self.log = log
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> CollectorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                serve_command(self.port, self.db), stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.starts += 1

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, "the collector subprocess to answer /healthz", step=0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight requests die with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# --- read-back -------------------------------------------------------------------------


def connect(db: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def transcript_markers(db: Path | str) -> dict[str, list[str]]:
    """Per conversation id, the marker of every stored item in *insertion* order.

    Markers: a message's content, a button's label, an action's response - the
    workload makes each one unique, so a duplicate or a reordering shows.
    Insertion order (the shared pk sequence) is the order the server received
    them, which is what "delivered in order" means.
    """
    with contextlib.closing(connect(db)) as conn:
        rows = conn.execute(
            """
            SELECT c.conversation_id AS cid, x.id AS id, x.marker AS marker FROM (
                SELECT id, conversation, content AS marker FROM messages
                UNION ALL SELECT id, conversation, label FROM buttons
                UNION ALL SELECT id, conversation, response FROM actions WHERE is_token_usage = 0
            ) x JOIN conversations c ON c.id = x.conversation
            ORDER BY x.id
            """
        ).fetchall()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["cid"], []).append(r["marker"])
    return out


def count_rows(db: Path | str, table: str) -> int:
    with contextlib.closing(connect(db)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def id_report(db: Path | str, protocol: str) -> tuple[int, int]:
    """(event ids stored, ids stored more than once) by the protocol's event id.

    ingest: the span id of every projected message/button/action row;
    rest: the ``Idempotency-Key`` of every write the collector applied.
    """
    with contextlib.closing(connect(db)) as conn:
        if protocol == "ingest":
            rows = conn.execute(
                "SELECT span_id, COUNT(*) FROM (SELECT span_id FROM messages "
                "UNION ALL SELECT span_id FROM buttons UNION ALL SELECT span_id FROM actions) "
                "GROUP BY span_id"
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT key, COUNT(*) FROM idempotency_keys WHERE route IN "
                "('track', 'buttons', 'action_logs', 'conversations') GROUP BY route, key"
            ).fetchall()
    return len(rows), sum(1 for r in rows if r[1] > 1)


def rss_mib(pid: int | None = None) -> float:
    import psutil

    return float(psutil.Process(pid or os.getpid()).memory_info().rss) / (1 << 20)


def first_line_with(text: str, needles: Iterable[str]) -> str | None:
    for line in text.splitlines():
        if any(n in line for n in needles):
            return line
    return None
