"""``LocalCollector``: the collector on a free loopback port, in a background thread.

For tests, the demo and benchmarks.  uvicorn runs in its own thread with its
own event loop; we bind the socket ourselves (port 0 picks a free port, known
before the server starts) and hand it to ``Server.serve(sockets=...)``.
uvicorn installs signal handlers only on the main thread, so a server in a
worker thread leaves the host's signals alone.  The thread's loop is uvloop
when it is installed (the ``[collector]`` extra brings it), as ``uvicorn.run``
and ``agentsight-async serve`` would pick it: ``asyncio.run`` alone would give
the stdlib loop, about twice the CPU per small request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from ._app import create_app
from ._http import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DECOMPRESSED_BYTES
from ._storage import Storage
from ._throttle import IngestAllowance

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for the server's thread: uvloop's if installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_in_new_loop(
    main: Callable[[], Coroutine[Any, Any, None]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop,
) -> None:
    """``asyncio.run(main())`` on a loop from *loop_factory* (Python 3.10 has no ``Runner``)."""
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


class OneWriteTransport:
    """A transport whose response head waits for its body, so a response is one ``send()``.

    uvicorn writes a response's status line and headers, then its body, in two
    ``transport.write()`` calls; each is a ``send()`` of its own and a segment
    the client must wake up for - on small machines that is a good part of a
    small request's cost.  A write that is a response head (``HTTP/1.1 ...``
    ending in an empty line) is held and sent with the next write - the body,
    which Starlette sends in the same turn of the loop - or at the end of the
    turn if none comes (``HEAD``, ``100 Continue``), or before closing.  The
    bytes on the wire are the same.  Everything else is the wrapped
    transport's.
    """

    __slots__ = ("_held", "_loop", "_transport")

    #: A write longer than this is never held.
    HEAD_MAX = 64 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""

    def write(self, data: bytes) -> None:
        """Send *data* - with a held head in front - or hold it if it is a response head."""
        if self._held:
            data, self._held = self._held + data, b""
        elif (
            len(data) <= self.HEAD_MAX
            and data.startswith(b"HTTP/1.1 ")
            and data.endswith(b"\r\n\r\n")
        ):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Send a held head now (nothing if none, or if the connection is closing)."""
        data, self._held = self._held, b""
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Flush, then close (the transport sends what it buffered first)."""
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol writing each response in one send (:class:`OneWriteTransport`).

    ``"auto"`` (uvicorn's choice, unchanged) when httptools is not installed.
    """
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"

    class OneWriteHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            wrapped = OneWriteTransport(transport, self.loop)
            super().connection_made(wrapped)  # type: ignore[arg-type]

    return OneWriteHttpToolsProtocol


def generate_api_key() -> str:
    """A new random key in the AgentSight format (``ags_`` + 32 hex + ``_`` + 6 hex).

    Returns:
        The key, for ``LocalCollector(api_keys=[...])`` or ``serve --api-key``.
    """
    return f"ags_{secrets.token_hex(16)}_{secrets.token_hex(3)}"


class LocalCollector:
    """The collector running in this process, on a thread, for development and tests.

    Use it as a context manager (``with LocalCollector() as collector:``) or call
    :meth:`start` and :meth:`stop`; :attr:`url` and :attr:`api_key` are what a
    tracker needs, :attr:`storage` reads what arrived.

    Args:
        db_path: the SQLite file; ``None`` uses a fresh file in a temporary
            directory, removed by :meth:`stop`.
        api_keys: the keys it accepts; without them (and without *dev*) one is
            generated: :attr:`api_key`.
        dev: accept any well-formed key, or none, and open the pages without a
            key.
        host: the address to bind; loopback by default.
        port: the port; ``0`` picks a free one.
        max_body_bytes: the largest request body accepted on the wire.
        max_decompressed_bytes: the largest body after gzip.
        log_level: uvicorn's log level.
        access_log: turn uvicorn's access log on.
        ingest_rate: emulate AgentSight's per-key allowance: that many ingest
            batches a minute per key, beyond it ``429`` with ``Retry-After``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        api_keys: Sequence[str] = (),
        dev: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
        log_level: str = "warning",
        access_log: bool = False,
        ingest_rate: float | None = None,
    ) -> None:
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if db_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="agentsight-collector-")
            db_path = Path(self._tmpdir.name) / "collector.db"
        self.db_path = os.fspath(db_path)
        self.api_keys = list(api_keys) or ([] if dev else [generate_api_key()])
        self.dev = dev
        self.host = host
        self._port = port
        self._limits = (max_body_bytes, max_decompressed_bytes)
        self._log_level = log_level
        self._access_log = access_log
        self._ingest_rate = ingest_rate
        #: The emulated ingest allowance (``ingest_rate``), once started.
        self.ingest_allowance: IngestAllowance | None = None
        self._storage: Storage | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None

    # -- properties ------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """A key the collector accepts (the first configured, or a valid dev key)."""
        return self.api_keys[0] if self.api_keys else generate_api_key()

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._socket is None:
            raise RuntimeError("collector is not started")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    @property
    def storage(self) -> Storage:
        """The collector's :class:`Storage`, to read what arrived (once started)."""
        if self._storage is None:
            raise RuntimeError("collector is not started")
        return self._storage

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> LocalCollector:
        """Start the server on its thread and wait until it accepts requests.

        Returns:
            The collector itself.

        Raises:
            RuntimeError: it was already started, or it failed to start.
            TimeoutError: it did not start within 10 seconds.
        """
        if self._thread is not None:
            raise RuntimeError("collector already started")
        self._storage = Storage(self.db_path)
        app = create_app(
            self._storage,
            self.api_keys,
            dev=self.dev,
            max_body_bytes=self._limits[0],
            max_decompressed_bytes=self._limits[1],
            ingest_rate=self._ingest_rate,
        )
        self.ingest_allowance = app.state.ingest_allowance
        config = uvicorn.Config(
            app,
            log_level=self._log_level,
            access_log=self._access_log,
            http=http_protocol(),
            proxy_headers=False,  # loopback only, nobody in front of it
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._port))
        self._socket = sock
        self._thread = threading.Thread(
            target=self._run, name=f"agentsight-collector-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("collector failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"collector did not start within {START_TIMEOUT} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None
        assert self._socket is not None
        try:
            server, sockets = self._server, [self._socket]
            run_in_new_loop(lambda: server.serve(sockets=sockets), new_event_loop)
        except BaseException as exc:  # reported to start()/stop(), never lost
            self._error = exc

    def stop(self) -> None:
        """Stop the server, close the storage and remove a temporary database.

        Safe to call twice.

        Raises:
            TimeoutError: the server thread did not stop within 10 seconds.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                raise TimeoutError(f"collector did not stop within {STOP_TIMEOUT} s")
        self._thread = None
        self._server = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> LocalCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
