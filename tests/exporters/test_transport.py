"""The asyncio-native network layer under our httpx client (``_exporters/_transport``).

Real loopback servers throughout (asyncio servers in the test's loop); one unit
test drives a stream over a recording transport for the write-coalescing rule.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from agentsight_async._exporters import _client, _transport

ANSWER = b'{"id":7}'


def _response(close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(ANSWER)
        + ANSWER
    )


class Server:
    """A tiny HTTP/1.1 server: records every chunk it receives, per connection."""

    def __init__(self, mode: str = "answer") -> None:
        # "answer", "close" (answer, then close), "idle-close" (answer, close when told),
        # "silent", "hangup"
        self.mode = mode
        self.close_idle = asyncio.Event()
        self.connections: list[list[bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks: list[bytes] = []
        self.connections.append(chunks)
        pending = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                chunks.append(data)
                pending += data
                while b"\r\n\r\n" in pending:
                    head, _, rest = pending.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if len(rest) < length:
                        break
                    pending = rest[length:]
                    if self.mode == "silent":
                        await asyncio.sleep(3600)
                    if self.mode == "hangup":
                        return
                    writer.write(_response(close=self.mode == "close"))
                    await writer.drain()
                    if self.mode == "close":
                        return
                    if self.mode == "idle-close":
                        await self.close_idle.wait()
                        return
        finally:
            writer.close()


@asynccontextmanager
async def serving(server: Server, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl_context)
    port = srv.sockets[0].getsockname()[1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        srv.close()


async def test_requests_use_our_backend_one_write_each_on_one_connection(make_settings) -> None:
    server = Server()
    async with serving(server) as url:
        client = _client.build_client(make_settings(api_endpoint=url))
        async with client:
            bodies = [b'{"n":%d}' % i for i in range(5)]
            for body in bodies:
                response = await _client.post_once(
                    client, f"{url}/api/track/", body, {"Content-Type": "application/json"}
                )
                assert response.status_code == 201
                assert response.json() == {"id": 7}
            answer = await _client.get_once(client, f"{url}/api/me/", timeout=5)
            assert answer.status_code == 201
    assert len(server.connections) == 1  # keep-alive: one connection for every request
    chunks = server.connections[0]
    # each request (head and body together) arrived as one chunk: one send() each
    assert len(chunks) == 6
    for chunk, body in zip(chunks, bodies, strict=False):
        assert chunk.startswith(b"POST /api/track/ HTTP/1.1\r\n")
        assert chunk.endswith(b"\r\n\r\n" + body)
    assert chunks[-1].startswith(b"GET /api/me/ ")
    assert chunks[-1].endswith(b"\r\n\r\n")


def test_client_uses_the_asyncio_backend_unless_a_proxy_is_configured(
    make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(api_endpoint="http://127.0.0.1:9")
    client = _client.build_client(settings)
    assert isinstance(client._transport, _transport._Transport)
    assert isinstance(client._transport._pool._network_backend, _transport.AsyncioBackend)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    client = _client.build_client(settings)
    assert not isinstance(client._transport, _transport._Transport)  # httpx honours the proxy


async def test_a_connection_closed_after_an_answer_is_replaced(make_settings) -> None:
    server = Server("close")
    async with serving(server) as url:
        client = _client.build_client(make_settings(api_endpoint=url))
        async with client:
            for _ in range(3):
                response = await _client.post_once(client, f"{url}/api/track/", b"{}", {})
                assert response.status_code == 201
    assert len(server.connections) == 3


async def test_hangup_without_answer_is_a_transport_error(make_settings) -> None:
    async with serving(Server("hangup")) as url:
        client = _client.build_client(make_settings(api_endpoint=url))
        async with client:
            with pytest.raises(httpx.RemoteProtocolError):
                await _client.post_once(client, f"{url}/api/track/", b"{}", {})


async def test_read_timeout_maps_to_httpx(make_settings) -> None:
    async with serving(Server("silent")) as url:
        client = _client.build_client(make_settings(api_endpoint=url, request_timeout=0.2))
        async with client:
            with pytest.raises(httpx.ReadTimeout):
                await _client.post_once(client, f"{url}/api/track/", b"{}", {})


async def test_connection_refused_maps_to_connect_error(make_settings) -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    url = f"http://127.0.0.1:{port}"
    async with _client.build_client(make_settings(api_endpoint=url)) as client:
        with pytest.raises(httpx.ConnectError):
            await _client.post_once(client, f"{url}/api/track/", b"{}", {})


class _RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def test_a_head_is_held_until_its_body_or_a_read() -> None:
    loop = asyncio.get_running_loop()
    protocol = _transport._Protocol(loop)
    fake = _RecordingTransport()
    stream = _transport.AsyncioStream(fake, protocol)  # type: ignore[arg-type]
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
    await stream.write(head)
    assert fake.writes == []
    await stream.write(b"{}")
    await stream.write(b"")  # h11's end of message for a sized body
    assert fake.writes == [head + b"{}"]
    # a head with no body goes out before the answer is read
    get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    await stream.write(get)
    protocol.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert await stream.read(65536) == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert fake.writes[-1] == get
    # a read takes at most max_bytes and keeps the rest
    protocol.data_received(b"abcdef")
    assert await stream.read(4) == b"abcd"
    assert await stream.read(4) == b"ef"
    # a body chunk that is not a head is never held
    await stream.write(b"x" * 10)
    assert fake.writes[-1] == b"x" * 10
    protocol.connection_lost(ConnectionResetError("reset"))
    with pytest.raises(httpcore.ReadError):
        await stream.read(10)
    with pytest.raises(httpcore.WriteError):
        await stream.write(b"late")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_through_start_tls_with_verification(make_settings, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    limits = httpx.Limits(max_connections=2)
    server = Server()
    async with serving(server, server_ctx) as url:
        transport = _transport.build_transport(client_ctx, limits)
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(2):
                response = await _client.post_once(client, f"{url}/api/track/", b"{}", {})
                assert response.json() == {"id": 7}
        untrusted = _transport.build_transport(ssl.create_default_context(), limits)
        async with httpx.AsyncClient(transport=untrusted) as client:
            with pytest.raises(httpx.ConnectError):
                await _client.post_once(client, f"{url}/api/track/", b"{}", {})
    assert len(server.connections) == 1  # kept alive; the refused handshake never got here


def test_works_on_uvloop(make_settings) -> None:
    uvloop = pytest.importorskip("uvloop")
    server = Server()
    results: list[Any] = []

    async def main() -> None:
        async with serving(server) as url:
            client = _client.build_client(make_settings(api_endpoint=url))
            async with client:
                for _ in range(3):
                    response = await _client.post_once(client, f"{url}/api/track/", b"{}", {})
                    results.append(response.json())

    run: Callable[[], None] = lambda: uvloop.run(main())  # noqa: E731
    thread = threading.Thread(target=run)  # a loop of its own, beside the test's
    thread.start()
    thread.join(30)
    assert results == [{"id": 7}] * 3
    assert len(server.connections) == 1


@pytest.mark.parametrize("wait", [0.05, 0.6])  # within / after the quiet period
async def test_an_idle_connection_closed_by_the_server_is_not_reused(
    make_settings, wait: float
) -> None:
    server = Server("idle-close")
    async with serving(server) as url:
        client = _client.build_client(make_settings(api_endpoint=url))
        async with client:
            first = await _client.post_once(client, f"{url}/api/track/", b"{}", {})
            assert first.status_code == 201
            server.close_idle.set()  # the server drops the idle keep-alive connection
            await asyncio.sleep(wait)
            server.close_idle.clear()
            second = await _client.post_once(client, f"{url}/api/track/", b"{}", {})
            assert second.status_code == 201  # on a new connection, no transport error
    assert len(server.connections) == 2
