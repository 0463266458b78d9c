"""Our HTTP client and what goes through it: routes, headers, bodies, answers.

* One ``httpx.AsyncClient`` per exporter and event loop (:class:`ClientHolder`):
  keep-alive, HTTP/1.1, a pool as large as the concurrency we allow, the
  request timeout from the settings.  ``transport=`` is passed straight to
  httpx, so tests inject an ``httpx.MockTransport`` instead of monkeypatching.
* URLs are joined the way the current client does it (one slash, every route
  ending in ``/``): the backend runs with ``APPEND_SLASH = False`` and the
  legacy client's ``//api/...`` (§1.3) only works by luck.
* Bodies are serialised once by the caller; :func:`post_once` sends them in a
  :class:`OneShotBody`, and :func:`wire_body` gzips a large ingest body (§3.2).
* Every request runs inside :func:`~._redaction.our_request`, so httpx's and
  httpcore's records about it - and only those - are redacted.
* Answers are parsed with credentials scrubbed (:func:`parse_body`,
  :func:`error_detail`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.cookiejar
import importlib
import json
import logging
import ssl
import threading
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpx

from .._config import Settings, is_loopback_url
from .._version import __version__
from ._base import SDK_NAME
from ._redaction import our_request, redact, scrub
from ._transport import build_transport

logger = logging.getLogger("agentsight_async")

USER_AGENT: Final = f"{SDK_NAME}/{__version__}"
JSON_CONTENT_TYPE: Final = "application/json"

# Routes (all end in "/": the backend does not redirect a missing slash).
ROUTE_INGEST: Final = "api/ingest/"
ROUTE_ME: Final = "api/me/"
ROUTE_CONVERSATIONS: Final = "api/conversations/"
ROUTE_TRACK: Final = "api/track/"
ROUTE_ACTION_LOGS: Final = "api/action_logs/"
ROUTE_BUTTONS: Final = "api/buttons/"
ROUTE_ATTACHMENTS: Final = "api/attachments/"

#: Idle keep-alive connections are closed after this many seconds.
KEEPALIVE_EXPIRY: Final = 30.0

#: Bodies larger than this are gzipped, if the backend said it can take them (§3.2).
GZIP_THRESHOLD: Final = 8192
#: zlib level 1.  On a 500-message batch (~550 KB of JSON) level 1 took ~1.1 ms of CPU
#: for ~17.8 KB, level 6 ~2.4 ms for ~14.6 KB (min of 25 runs; 5-8 ms under load).
#: Twice the CPU for 18% fewer bytes is a bad trade inside the agent's process, and
#: the server cannot tell the levels apart.
GZIP_LEVEL: Final = 1
#: Bodies at least this large are gzipped in a worker thread, not on the loop.
OFFLOAD_GZIP_BYTES: Final = 64 * 1024


# --- client ---------------------------------------------------------------------------


def api_url(base: str, route: str) -> str:
    """Join *base* and *route* with exactly one slash; the result ends in ``/``."""
    url = f"{base.rstrip('/')}/{route.strip('/')}"
    return url if url.endswith("/") else url + "/"


def default_headers(settings: Settings) -> dict[str, str]:
    """Headers on every request.  ``Content-Type`` is per request (multipart differs)."""
    headers = {"User-Agent": USER_AGENT, "Accept": JSON_CONTENT_TYPE}
    if settings.api_key is not None:
        headers["Authorization"] = f"Api-Key {settings.api_key.get_secret_value()}"
    return headers


_tls_lock = threading.Lock()
_verified_tls: ssl.SSLContext | None = None
_warned_insecure: set[str] = set()


def tls_context(settings: Settings) -> ssl.SSLContext | bool:
    """What the client gets as ``verify=``; built once per process, and only for https.

    Loading the CA bundle costs 50-100 ms of CPU; httpx would do it for every
    client (one per exporter and event loop), even for a plain ``http://``
    endpoint that never uses TLS.  Such an endpoint gets a bare context with
    no CA loaded: every URL we request is built from the endpoint and redirects
    are not followed, so it is never used - and would refuse any certificate
    if it were (hostname checks and verification stay on).
    """
    global _verified_tls
    if urlsplit(settings.api_endpoint).scheme.lower() != "https":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not settings.verify_tls:
        return False
    with _tls_lock:
        if _verified_tls is None:
            _verified_tls = httpx.create_ssl_context(verify=True, trust_env=True)
        return _verified_tls


def warn_if_insecure(endpoint: str) -> None:
    """Warn once per endpoint when the key would travel over plain HTTP off this host."""
    if urlsplit(endpoint).scheme.lower() != "http" or is_loopback_url(endpoint):
        return
    with _tls_lock:
        if endpoint in _warned_insecure:
            return
        _warned_insecure.add(endpoint)
    logger.warning(
        "agentsight_async: %s is plain http:// to a non-loopback host; the API key and "
        "conversation data travel unencrypted. Use https:// outside local development.",
        endpoint,
    )


class NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing.

    AgentSight authenticates with the API key, never with cookies, and the
    original client (``requests.post``, no session) never sent one back.  With
    a real jar httpx turns every response's headers into an ``email.message``
    to look for ``Set-Cookie``: ~25 µs of CPU per request, for nothing.
    """

    def extract_cookies(self, response: Any, request: Any) -> None:
        """Ignore the response's cookies."""
        return None


def build_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A keep-alive HTTP/1.1 client sized for ``settings.max_concurrency``.

    Without *transport*, its sockets are :mod:`._transport`'s (asyncio-native,
    one send per request) - unless the environment names a proxy: then httpx
    builds its own transports, which honour ``HTTP(S)_PROXY``/``NO_PROXY``.
    """
    limits = httpx.Limits(
        max_connections=settings.max_concurrency,
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    verify = tls_context(settings)
    if transport is None and not getproxies():
        transport = build_transport(verify, limits)
    return httpx.AsyncClient(
        base_url="",
        headers=default_headers(settings),
        cookies=NoCookies(),
        timeout=httpx.Timeout(settings.request_timeout),
        limits=limits,
        verify=verify,
        http1=True,
        http2=False,
        follow_redirects=False,
        transport=transport,
    )


def preload_io_modules() -> None:
    """Import now what httpcore imports on its first request, not then.

    httpcore's pool locks go through anyio, which loads its asyncio backend on
    first use: ~15 ms of CPU, on the event loop, in the middle of the first
    delivery.  An exporter calls this when it is built (once per process does
    the work), so that cost lands at set-up like every other import.
    """
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")


class ClientHolder:
    """One client per event loop.

    The async tracker may be used across several ``asyncio.run()`` calls; a
    pooled connection belongs to the loop that opened it, so a new loop gets a
    new client instead of a pool full of dead sockets.
    """

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> httpx.AsyncClient:
        """The running loop's client (built on first use on that loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = build_client(self._settings, transport=self._transport)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client if it belongs to the running loop (a dead loop's cannot be)."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            with our_request():
                await client.aclose()
        self._loop = None


# --- requests -----------------------------------------------------------------------


class OneShotBody(httpx.AsyncByteStream):
    """A request body that lets go of its bytes once they are sent.

    httpx leaves each request in reference cycles (request and response streams,
    exception tracebacks) that only the cyclic garbage collector frees, so a
    500 KB batch body stays alive until the next full collection.  Draining a
    backlog after an outage measured +1 KB of RSS per delivered event that way.
    Each attempt gets its own ``OneShotBody``; once sent, only this small object
    remains in the cycle.  The caller sets ``Content-Length``, so the request is
    not chunked.
    """

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body, self._body = self._body, b""
        yield body

    async def aclose(self) -> None:
        """Drop the bytes (httpx calls this when the request is done)."""
        self._body = b""


async def post_once(
    client: httpx.AsyncClient, url: httpx.URL | str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    """One ``POST`` of *body* (same bytes on the wire) in a :class:`OneShotBody`, as ours.

    Raises whatever httpx raises; the retry policy classifies it.
    """
    with our_request():
        return await client.post(
            url,
            content=OneShotBody(body),
            headers={**headers, "Content-Length": str(len(body))},
        )


async def get_once(client: httpx.AsyncClient, url: str, *, timeout: float) -> httpx.Response:
    """One JSON ``GET`` (the ``/api/me/`` preflight), as ours; raises what httpx raises."""
    with our_request():
        return await client.get(url, headers={"Content-Type": JSON_CONTENT_TYPE}, timeout=timeout)


# --- bodies -----------------------------------------------------------------------------


def dumps(value: Any) -> bytes:
    """The JSON bytes of one REST request body: compact, ASCII-only, no NaN (§1.4)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode(
        "ascii"
    )


def compress_body(body: bytes, gzip_ok: bool) -> tuple[bytes, dict[str, str]]:
    """*body* and its headers; gzipped (level :data:`GZIP_LEVEL`, mtime 0) only when
    *gzip_ok* and strictly larger than :data:`GZIP_THRESHOLD` (§3.2)."""
    headers = {"Content-Type": JSON_CONTENT_TYPE}
    if gzip_ok and len(body) > GZIP_THRESHOLD:
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return body, headers


async def wire_body(body: bytes, gzip_ok: bool) -> tuple[bytes, dict[str, str]]:
    """:func:`compress_body`, in a worker thread for a large body (zlib releases the GIL),
    so the agent's tasks on this loop keep running.  Same bytes either way."""
    if gzip_ok and len(body) >= OFFLOAD_GZIP_BYTES:
        try:
            return await asyncio.to_thread(compress_body, body, gzip_ok)
        except RuntimeError:  # executors shut down (interpreter exit): do it here
            pass
    return compress_body(body, gzip_ok)


# --- answers ------------------------------------------------------------------------------


def parse_body(response: httpx.Response) -> Any:
    """The parsed JSON body; ``{}`` for an empty or non-JSON body (as both clients do).

    Credentials are scrubbed from every string in it: a server that echoes the
    key back must not carry it into ``send_tracked_data()`` results, exceptions
    or the ``on_error`` callback.
    """
    if not response.content:
        return {}
    try:
        return scrub(response.json())
    except ValueError:
        return {}


def error_detail(response: httpx.Response) -> str:
    """A short, human-readable reason from a DRF-style error body (credentials redacted)."""
    return redact(_error_detail(response))


def _error_detail(response: httpx.Response) -> str:
    body = parse_body(response)
    prefix = f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("detail", "error"):
            if isinstance(body.get(key), str):
                return f"{prefix}: {body[key]}"
        parts = []
        for field, msgs in body.items():
            if isinstance(msgs, list):
                parts.append(f"{field}: {', '.join(str(m) for m in msgs)}")
            else:
                parts.append(f"{field}: {msgs}")
        if parts:
            return f"{prefix}: {'; '.join(parts)}"[:1000]
    elif isinstance(body, list) and body:
        return f"{prefix}: {'; '.join(str(m) for m in body)}"[:1000]
    text = response.text.strip()[:200]
    return f"{prefix}: {text}" if text else prefix


def response_pk(body: Any) -> int | None:
    """The integer ``id`` of a create/upsert answer, if it has one."""
    if isinstance(body, dict):
        pk = body.get("id")
        if isinstance(pk, int) and not isinstance(pk, bool):
            return pk
        if isinstance(pk, str) and pk.isdigit():
            return int(pk)
    return None
