"""A sink that accepts every request and discards it: the SDK alone, without a server's cost.

A minimal HTTP/1.1 server on raw asyncio streams, in a background thread with
its own event loop: keep-alive, ``Content-Length`` and chunked bodies, no
parsing beyond the headers.  It answers what each client needs to count a
request as delivered:

* ``GET /api/me/`` - 200 with ``capabilities: ["gzip-ingest"]`` (our preflight);
* PostHog's ``/batch/`` and ``/i/...`` - 200 ``{"status": 1}`` (it wants exactly 200);
* OTLP's ``/v1/traces`` and ``/v1/logs`` - 200 with an empty protobuf
  ``Export*ServiceResponse`` (a full success);
* any other request - 201 ``{"id": <n>}`` (REST creates need an ``id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType

_ME = (
    b'{"agent_id":1,"agent_name":"sink","role":"write",'
    b'"environments":["production","development"],"capabilities":["gzip-ingest"]}'
)


class DiscardSink:
    """``with DiscardSink() as sink: sink.url`` - counts requests and body bytes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self.requests = 0
        self.body_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._sock: socket.socket | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None, "sink not started"
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DiscardSink:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(512)
        sock.setblocking(False)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="bench-sink", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("sink did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock, backlog=512)
            self._ready.set()

        loop.run_until_complete(serve())
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path = lines[0].split(b" ", 2)[:2]
                length = 0
                chunked = False
                close = False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        chunked = True
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                        await reader.readexactly(size + 2)
                        length += size
                        if size == 0:
                            break
                elif length:
                    await reader.readexactly(length)
                self.requests += 1
                self.body_bytes += length
                ctype = b"application/json"
                if method == b"GET" and path.startswith(b"/api/me"):
                    status, body = b"200 OK", _ME
                elif path.startswith(b"/v1/"):
                    status, body, ctype = b"200 OK", b"", b"application/x-protobuf"
                elif path.startswith((b"/batch", b"/i/", b"/e/", b"/capture")):
                    status, body = b"200 OK", b'{"status":1}'
                else:
                    status, body = b"201 Created", b'{"id":%d}' % self.requests
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: "
                    + ctype
                    + b"\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():

            def shut() -> None:
                if self._server is not None:
                    self._server.close()
                loop.stop()

            loop.call_soon_threadsafe(shut)
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> DiscardSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released): a collector outage."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
