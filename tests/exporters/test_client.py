"""Our HTTP client and what goes through it: URLs, headers, TLS, bodies, gzip, answers."""

from __future__ import annotations

import gzip
import json
import logging
import ssl
from typing import Any

import httpx
import pytest

from agentsight_async._exporters import _client
from agentsight_async._version import __version__


@pytest.mark.parametrize(
    ("base", "route", "url"),
    [
        ("https://api.x.io", "api/ingest/", "https://api.x.io/api/ingest/"),
        ("https://api.x.io/", "/api/ingest/", "https://api.x.io/api/ingest/"),
        ("https://api.x.io//", "api/me", "https://api.x.io/api/me/"),
        ("http://h:8000/prefix/", "api/track/", "http://h:8000/prefix/api/track/"),
    ],
)
def test_api_url(base: str, route: str, url: str) -> None:
    assert _client.api_url(base, route) == url


async def test_client_headers_and_config(make_settings, api_key) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    settings = make_settings(request_timeout=7.0, max_concurrency=3)
    client = _client.build_client(settings, transport=httpx.MockTransport(handler))
    async with client:
        await client.get("https://agentsight.test/api/me/")
    req = seen[0]
    assert req.headers["Authorization"] == f"Api-Key {api_key}"
    assert req.headers["User-Agent"] == f"agentsight-async/{__version__}"
    assert req.headers["Accept"] == "application/json"
    assert "Content-Type" not in req.headers  # set per request (multipart differs)
    assert client.timeout.read == 7.0
    assert client.follow_redirects is False


def test_no_key_no_authorization_header(make_settings) -> None:
    assert "Authorization" not in _client.default_headers(make_settings(api_key=None))


def test_parsed_bodies_are_scrubbed_of_credentials() -> None:
    key = "ags_" + "ab" * 16 + "_abc123"
    body = {"detail": f"bad key {key}", "echo": [{"auth": f"Api-Key {key}"}], "n": 1}
    response = httpx.Response(401, json=body)
    parsed = _client.parse_body(response)
    assert key not in str(parsed)
    assert parsed["n"] == 1


def test_insecure_warning_once(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="agentsight_async")
    _client.warn_if_insecure("http://collector.example.com:8080")
    _client.warn_if_insecure("http://collector.example.com:8080")
    _client.warn_if_insecure("http://127.0.0.1:8000")
    _client.warn_if_insecure("http://localhost:8000")
    _client.warn_if_insecure("https://api.agentsight.io")
    warnings = [r for r in caplog.records if "plain http://" in r.getMessage()]
    assert len(warnings) == 1


def test_error_detail_shapes() -> None:
    assert _client.error_detail(httpx.Response(400, json={"detail": "bad"})) == "HTTP 400: bad"
    fm = httpx.Response(400, json={"content": ["blank"], "conversation": ["null", "x"]})
    assert _client.error_detail(fm) == "HTTP 400: content: blank; conversation: null, x"
    assert _client.error_detail(httpx.Response(502, text="")) == "HTTP 502"


def test_tls_context_only_loaded_for_https(make_settings) -> None:
    plain = _client.tls_context(make_settings(api_endpoint="http://127.0.0.1:1"))
    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode == ssl.CERT_REQUIRED  # fails closed if ever used
    assert plain.check_hostname
    secure = _client.tls_context(make_settings(api_endpoint="https://agentsight.test"))
    assert secure is _client.tls_context(make_settings(api_endpoint="https://other.test"))
    assert _client.tls_context(make_settings(verify_tls=False)) is False


async def test_one_shot_body_sends_the_same_bytes_then_lets_go() -> None:
    seen: list[tuple[bytes, str | None, str | None]] = []

    class StreamingTransport(httpx.AsyncBaseTransport):
        """Consumes the body as a network transport does (MockTransport reads a copy)."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
            headers = request.headers
            seen.append((body, headers.get("content-length"), headers.get("transfer-encoding")))
            return httpx.Response(201, json={"id": 1})

    body = b'{"x":"' + b"y" * 100_000 + b'"}'
    async with httpx.AsyncClient(transport=StreamingTransport()) as client:
        response = await _client.post_once(client, "http://test/api/ingest/", body, {})
    assert response.status_code == 201
    assert seen == [(body, str(len(body)), None)]  # not chunked, byte for byte


async def test_one_shot_body_releases_its_bytes_once_read() -> None:
    one = _client.OneShotBody(b"payload")
    assert [chunk async for chunk in one] == [b"payload"]
    assert [chunk async for chunk in one] == [b""]  # nothing held any more
    other = _client.OneShotBody(b"payload")
    await other.aclose()
    assert [chunk async for chunk in other] == [b""]


def test_gzip_threshold_is_strict() -> None:
    body = b"x" * 8192
    same, headers = _client.compress_body(body, gzip_ok=True)
    assert same == body
    assert headers == {"Content-Type": "application/json"}
    big, headers = _client.compress_body(body + b"x", gzip_ok=True)
    assert headers == {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert gzip.decompress(big) == body + b"x"
    plain, headers = _client.compress_body(body * 2, gzip_ok=False)
    assert plain == body * 2
    assert "Content-Encoding" not in headers


@pytest.mark.parametrize("size", [9000, _client.OFFLOAD_GZIP_BYTES + 1])
async def test_wire_body_same_bytes_on_or_off_the_loop(size: int) -> None:
    body = json.dumps({"a": "y" * size}).encode()
    assert await _client.wire_body(body, True) == _client.compress_body(body, True)
    assert gzip.decompress((await _client.wire_body(body, True))[0]) == body


def test_rest_bodies_are_compact_ascii_json() -> None:
    value: dict[str, Any] = {"text": "é 日本", "n": [1, None]}
    raw = _client.dumps(value)
    assert raw == b'{"text":"\\u00e9 \\u65e5\\u672c","n":[1,null]}'
    assert json.loads(raw) == value
    with pytest.raises(ValueError, match="Out of range"):
        _client.dumps({"x": float("nan")})


@pytest.mark.parametrize(
    ("body", "pk"),
    [({"id": 7}, 7), ({"id": "12"}, 12), ({"id": True}, None), ({"id": "x"}, None), ([], None)],
)
def test_response_pk(body: Any, pk: int | None) -> None:
    assert _client.response_pk(body) == pk


def test_building_an_http_exporter_preloads_what_the_first_request_would_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from agentsight_async._config import Settings\n"
        "from agentsight_async._stats import Stats\n"
        "from agentsight_async._exporters._rest import RestExporter\n"
        "assert 'anyio._backends._asyncio' not in sys.modules\n"
        "RestExporter(Settings(api_key=None, api_endpoint='http://127.0.0.1:9', _env_file=None),"
        " Stats())\n"
        "assert 'anyio._backends._asyncio' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_cookies_from_the_server_are_never_sent_back(make_settings) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 1}, headers={"Set-Cookie": "sticky=abc; Path=/"})

    client = _client.build_client(make_settings(), transport=httpx.MockTransport(handler))
    async with client:
        for _ in range(2):
            await _client.post_once(client, "https://agentsight.test/api/track/", b"{}", {})
    assert "cookie" not in seen[1].headers  # as the original client: no session, no cookies
    assert len(client.cookies) == 0
