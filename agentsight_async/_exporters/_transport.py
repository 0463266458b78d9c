"""The network layer under our httpx client: asyncio-native, one send per request.

httpx stays our client (requests, headers, timeouts, pooling, errors); below it,
httpcore reads and writes through an ``AsyncNetworkBackend``.  Its default
goes through anyio, and it writes an HTTP/1.1 request in two sends - the
head, then the body.  On the small machines we measure on, a ``send()`` on
loopback cost ~40-230 µs of CPU (waking the other side), and each segment also
costs the server a wake-up and a parse step; the anyio layer added cancel
scopes and checkpoints to every read and write.  REST sends one small request
per event, so that was most of our CPU per event.

:class:`AsyncioBackend` gives httpcore streams built on an asyncio
``Protocol``:

* a request head (a write ending in an empty line) is held and sent together
  with the body that follows - or before the next read, or dropped on close -
  so a request leaves in one ``send()``; the bytes on the wire are unchanged;
* reads wait on one future with a ``call_later`` timeout, no task-group or
  cancel-scope machinery;
* every failure is raised as the httpcore exception the default backend
  raises (``ConnectError``, ``ConnectTimeout``, ``ReadError``, ``ReadTimeout``,
  ``WriteError``, ``WriteTimeout``), so httpx maps them to the same
  ``httpx.TransportError`` subclasses and the retry policy is unchanged.

:func:`build_transport` puts it under an ``httpx.AsyncHTTPTransport`` with the
client's TLS context and limits.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, cast

import httpcore
import httpx

#: A write this long at most, ending in an empty line, is held as a request head.
HEAD_MAX: Final = 64 * 1024
#: Stop reading from the socket while this many received bytes wait unread.
READ_HIGH_WATER: Final = 256 * 1024
#: Seconds after the last bytes received during which an idle connection is taken to be
#: open unless the loop already saw it close (see :meth:`AsyncioStream.get_extra_info`).
RECENTLY_ACTIVE: Final = 0.5

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def _socket_readable(sock: socket.socket | None) -> bool:
    """Whether *sock* has something to read - data or EOF - right now (never blocks)."""
    if sock is None or sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)


def _expire(waiter: asyncio.Future[None], exc: Exception) -> None:
    if not waiter.done():
        waiter.set_exception(exc)


class _Protocol(asyncio.Protocol):
    """Buffers what the loop receives and wakes the one reader waiting for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reading_paused = False
        self.last_received = time.monotonic()
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._write_paused = False

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self.reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # -- for the stream -------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self, timeout: float | None) -> None:
        """Until data, EOF or a lost connection; ``httpcore.ReadTimeout`` after *timeout*."""
        waiter = self._waiter = self._loop.create_future()
        await _wait(self._loop, waiter, timeout, httpcore.ReadTimeout)

    async def drain(self, timeout: float | None) -> None:
        """Until the transport's write buffer is below its high-water mark again."""
        if not self._write_paused or self.eof:
            return
        waiter = self._writable = self._loop.create_future()
        await _wait(self._loop, waiter, timeout, httpcore.WriteTimeout)


async def _wait(
    loop: asyncio.AbstractEventLoop,
    waiter: asyncio.Future[None],
    timeout: float | None,
    timeout_error: type[Exception],
) -> None:
    if timeout is None:
        await waiter
        return
    handle = loop.call_later(max(timeout, 0.0), _expire, waiter, timeout_error("timed out"))
    try:
        await waiter
    finally:
        handle.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection: a transport and our protocol; a held request head (see module doc)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._head = b""
        self._head_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._head:
            await self._send(self._take_head(), self._head_timeout)
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.chunks:
            data = protocol.chunks.popleft()
            if len(data) > max_bytes:
                protocol.chunks.appendleft(data[max_bytes:])
                data = data[:max_bytes]
            protocol.buffered -= len(data)
            if protocol.reading_paused and protocol.buffered <= READ_HIGH_WATER // 2:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._head:
            buffer = self._take_head() + buffer
        elif len(buffer) <= HEAD_MAX and buffer.endswith(b"\r\n\r\n"):
            self._head, self._head_timeout = buffer, timeout  # the body follows, or a read
            return
        if buffer:
            await self._send(buffer, timeout)

    def _take_head(self) -> bytes:
        head, self._head = self._head, b""
        return head

    async def _send(self, data: bytes, timeout: float | None) -> None:
        protocol = self._protocol
        if protocol.eof or self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        try:
            self._transport.write(data)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(str(exc)) from exc
        await protocol.drain(timeout)
        if protocol.error is not None:
            raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        self._head = b""
        transport = self._transport
        if transport.is_closing():
            return
        transport.close()
        # One turn of the loop lets the transport close its socket now (a loop that
        # stops right after would leave it to the garbage collector); then drop anything
        # still unsent rather than wait for it, as the default backend does.
        await asyncio.sleep(0)
        transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                ),
                timeout,
            )
        except asyncio.TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, RuntimeError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # pragma: no cover - the loop closed the connection
            raise httpcore.ConnectError("TLS handshake failed")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks this of every idle connection, each time it assigns a request
            # (about 20 times per request with 8 connections): data or EOF on an idle
            # connection means the server closed it.  The loop hands us both as soon as
            # it polls; a poll() of our own only covers what arrived since.  A server
            # does not close a connection within half a second of answering on it (keep-
            # alive timeouts are seconds), so a recently active one skips the syscall.
            protocol = self._protocol
            if protocol.chunks or protocol.eof:
                return True
            if time.monotonic() - protocol.last_received < RECENTLY_ACTIVE:
                return False
            return _socket_readable(transport.get_extra_info("socket"))
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on plain asyncio (see the module doc)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local_addr = None if local_address is None else (local_address, 0)
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(loop), host, port, local_addr=local_addr),
                timeout,
            )
        except asyncio.TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _stream(transport, protocol, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _Protocol(loop), path), timeout
            )
        except asyncio.TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _stream(transport, protocol, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _stream(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    socket_options: Iterable[_SocketOption] | None,
) -> AsyncioStream:
    assert isinstance(protocol, _Protocol)
    transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses (see above)
    sock = transport.get_extra_info("socket")
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
    except OSError as exc:
        transport.close()
        raise httpcore.ConnectError(str(exc)) from exc
    return AsyncioStream(transport, protocol)


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport, with its connection pool on :class:`AsyncioBackend`."""

    def __init__(self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, limits=limits, http1=True, http2=False)
        # httpx builds its pool without a backend argument; ours is the same pool with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )


def build_transport(
    verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> httpx.AsyncBaseTransport:
    """An ``httpx.AsyncHTTPTransport`` (HTTP/1.1, *limits*) whose sockets are ours.

    *verify* is what the client would get: an ``SSLContext``, or ``False`` for
    no verification (``True`` is not taken: the caller builds its context).
    """
    if verify is True:
        raise ValueError("pass an ssl.SSLContext, not True")
    context = verify if isinstance(verify, ssl.SSLContext) else None
    if context is None:  # verification off, as httpx builds it for verify=False
        context = httpx.create_ssl_context(verify=False)
    return _Transport(ssl_context=context, limits=limits)
