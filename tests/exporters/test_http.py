"""Shared HTTP pieces: URLs, headers, redaction, multipart, the exporter factory."""

from __future__ import annotations

import logging
import ssl

import httpx
import pytest

from agentsight_async._config import Settings
from agentsight_async._exporters import _http, create_exporter
from agentsight_async._exporters._ingest import IngestExporter
from agentsight_async._exporters._memory import MemoryExporter
from agentsight_async._exporters._rest import RestExporter
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
    assert _http.api_url(base, route) == url


async def test_client_headers_and_config(make_settings, api_key) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    settings = make_settings(request_timeout=7.0, max_concurrency=3)
    client = _http.build_client(settings, transport=httpx.MockTransport(handler))
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
    assert "Authorization" not in _http.default_headers(make_settings(api_key=None))


def test_settings_and_exporter_reprs_hide_the_key(make_settings, stats, api_key) -> None:
    settings = make_settings()
    exporter = IngestExporter(settings, stats)
    assert api_key not in repr(settings)
    assert api_key not in repr(exporter)
    assert api_key not in repr(vars(exporter))


def test_redaction_filter() -> None:
    flt = _http.RedactingFilter()
    record = logging.LogRecord(
        "agentsight_async", logging.WARNING, __file__, 1, "sent %s with %s", None, None
    )
    record.args = ("Authorization: Api-Key ags_" + "a" * 32 + "_abcdef", "ags_deadbeef")
    assert flt.filter(record)
    message = record.getMessage()
    assert "ags_a" not in message
    assert "deadbeef" not in message
    assert "Api-Key <redacted>" in message


def test_redaction_filters_installed_but_no_handlers(make_settings, stats) -> None:
    IngestExporter(make_settings(), stats)
    for name in _http.REDACTED_LOGGERS:
        log = logging.getLogger(name)
        assert sum(isinstance(f, _http.RedactingFilter) for f in log.filters) == 1, name
    assert logging.getLogger("agentsight_async").handlers == []  # a library installs none


def test_parsed_bodies_are_scrubbed_of_credentials() -> None:
    key = "ags_" + "ab" * 16 + "_abc123"
    body = {"detail": f"bad key {key}", "echo": [{"auth": f"Api-Key {key}"}], "n": 1}
    response = httpx.Response(401, json=body)
    parsed = _http.parse_body(response)
    assert key not in str(parsed)
    assert parsed["n"] == 1


def test_insecure_warning_once(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="agentsight_async")
    _http.warn_if_insecure("http://collector.example.com:8080")
    _http.warn_if_insecure("http://collector.example.com:8080")
    _http.warn_if_insecure("http://127.0.0.1:8000")
    _http.warn_if_insecure("http://localhost:8000")
    _http.warn_if_insecure("https://api.agentsight.io")
    warnings = [r for r in caplog.records if "plain http://" in r.getMessage()]
    assert len(warnings) == 1


def test_multipart_encoding_is_ordered_and_deterministic() -> None:
    body, ctype = _http.encode_multipart(
        [("a", "1"), ("b", 'x"y')], [("f", "n.txt", "text/plain", b"DATA")], [("z", "9")], "BND"
    )
    assert ctype == "multipart/form-data; boundary=BND"
    text = body.decode()
    assert text.index('name="a"') < text.index('name="b"') < text.index('name="f"')
    assert text.index('name="f"') < text.index('name="z"')
    assert 'name="b"\r\n\r\nx"y\r\n' in text
    assert 'filename="n.txt"\r\nContent-Type: text/plain\r\n\r\nDATA\r\n' in text
    assert text.endswith("--BND--\r\n")
    assert _http.encode_multipart([("a", "1")], [], [], "BND") == _http.encode_multipart(
        [("a", "1")], [], [], "BND"
    )


def test_pk_cache_is_bounded_lru() -> None:
    cache = _http.PkCache(maxsize=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert cache.get("c") == 3
    assert len(cache) == 2


def test_error_detail_shapes() -> None:
    assert _http.error_detail(httpx.Response(400, json={"detail": "bad"})) == "HTTP 400: bad"
    fm = httpx.Response(400, json={"content": ["blank"], "conversation": ["null", "x"]})
    assert _http.error_detail(fm) == "HTTP 400: content: blank; conversation: null, x"
    assert _http.error_detail(httpx.Response(502, text="")) == "HTTP 502"


def test_create_exporter_by_scheme(make_settings, stats) -> None:
    assert isinstance(
        create_exporter(make_settings(api_endpoint="memory://t"), stats), MemoryExporter
    )
    assert isinstance(create_exporter(make_settings(), stats), IngestExporter)
    assert isinstance(create_exporter(make_settings(protocol="rest"), stats), RestExporter)


def test_create_exporter_sqlite(make_settings, stats) -> None:
    from agentsight_async._exporters._sqlite import SqliteExporter

    settings = make_settings(api_endpoint="sqlite:///x.db")
    assert isinstance(create_exporter(settings, stats), SqliteExporter)


def test_settings_type(make_settings) -> None:
    assert isinstance(make_settings(), Settings)


def test_tls_context_only_loaded_for_https(make_settings) -> None:
    plain = _http.tls_context(make_settings(api_endpoint="http://127.0.0.1:1"))
    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode == ssl.CERT_REQUIRED  # fails closed if ever used
    assert plain.check_hostname
    secure = _http.tls_context(make_settings(api_endpoint="https://agentsight.test"))
    assert secure is _http.tls_context(make_settings(api_endpoint="https://other.test"))
    assert _http.tls_context(make_settings(verify_tls=False)) is False


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
        response = await _http.post_once(client, "http://test/api/ingest/", body, {})
    assert response.status_code == 201
    assert seen == [(body, str(len(body)), None)]  # not chunked, byte for byte


async def test_one_shot_body_releases_its_bytes_once_read() -> None:
    one = _http.OneShotBody(b"payload")
    assert [chunk async for chunk in one] == [b"payload"]
    assert [chunk async for chunk in one] == [b""]  # nothing held any more
    other = _http.OneShotBody(b"payload")
    await other.aclose()
    assert [chunk async for chunk in other] == [b""]
