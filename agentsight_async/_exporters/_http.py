"""What both HTTP exporters share: the client, URLs, headers, bodies, redaction.

* One ``httpx.AsyncClient`` per exporter and event loop: keep-alive, HTTP/1.1,
  a pool as large as the concurrency we allow, the request timeout from the
  settings.  ``transport=`` is passed straight to httpx, so tests inject an
  ``httpx.MockTransport`` instead of monkeypatching anything.
* URLs are joined the way the current client does it (one slash, every route
  ending in ``/``): the backend runs with ``APPEND_SLASH = False`` and the
  legacy client's ``//api/...`` (§1.3) only works by luck.
* Multipart bodies are encoded here with a boundary derived from the event id,
  so a retried upload is byte-identical, like every JSON body.
* :class:`RedactingFilter` scrubs ``Api-Key ...`` and ``ags_...`` from records
  of our own logger.  A library must not install handlers; a filter on its own
  logger changes nothing for anyone else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from .._config import Settings, is_loopback_url
from .._stats import ErrorCallback, Stats
from .._version import __version__
from ._base import Exporter
from ._retry import RetryFailure, send_with_retry

logger = logging.getLogger("agentsight_async")

SDK_NAME: Final = "agentsight-async"
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
#: Conversation pks remembered per exporter (conversation_id -> pk).
PK_CACHE_SIZE: Final = 10_000

_KEY_PATTERNS: Final = (
    re.compile(r"(Api-Key)\s+\S+", re.IGNORECASE),
    re.compile(r"ags_[A-Za-z0-9_]+"),
)


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


def build_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A keep-alive HTTP/1.1 client sized for ``settings.max_concurrency``."""
    limits = httpx.Limits(
        max_connections=settings.max_concurrency,
        max_keepalive_connections=settings.max_concurrency,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    return httpx.AsyncClient(
        base_url="",
        headers=default_headers(settings),
        timeout=httpx.Timeout(settings.request_timeout),
        limits=limits,
        verify=tls_context(settings),
        http1=True,
        http2=False,
        follow_redirects=False,
        transport=transport,
    )


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
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = build_client(self._settings, transport=self._transport)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()
        self._loop = None


# --- bodies ---------------------------------------------------------------------


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
        self._body = b""


def post_once(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> Awaitable[httpx.Response]:
    """``client.post`` with a :class:`OneShotBody` (same bytes on the wire)."""
    return client.post(
        url,
        content=OneShotBody(body),
        headers={**headers, "Content-Length": str(len(body))},
    )


def dumps(value: Any) -> bytes:
    """The JSON bytes of one request body: compact, ASCII-only, no NaN (§1.4)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode(
        "ascii"
    )


def dumps_attr(value: Any) -> str:
    """A structured value carried inside a string attribute (metadata, arguments)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


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


def scrub(value: Any) -> Any:
    """*value* with :func:`redact` applied to every string inside it."""
    if isinstance(value, str):
        lowered = value.lower()
        return redact(value) if "ags_" in lowered or "api-key" in lowered else value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


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


def b64_attachments(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments as the base64 JSON upload wants them (form-data bytes encoded)."""
    out = []
    for att in attachments:
        data = att.get("data")
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(data).decode("ascii")
        out.append(
            {"filename": att.get("filename"), "mime_type": att.get("mime_type"), "data": data}
        )
    return out


def _quote(value: str) -> str:
    # RFC 7578 §4.2: percent-encode the characters that would end the quoted string.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def encode_multipart(
    fields: Iterable[tuple[str, str]],
    files: Iterable[tuple[str, str, str, bytes]],
    trailing: Iterable[tuple[str, str]],
    boundary: str,
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with parts in exactly the given order.

    *fields* come first, then *files* as ``(name, filename, content_type, bytes)``,
    then *trailing* fields.  Returns the body and its ``Content-Type`` header.
    """
    out: list[bytes] = []
    dash = f"--{boundary}\r\n".encode("ascii")
    for name, value in fields:
        out += [
            dash,
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value.encode("utf-8"),
            b"\r\n",
        ]
    for name, filename, ctype, data in files:
        out += [
            dash,
            (
                f'Content-Disposition: form-data; name="{_quote(name)}"; '
                f'filename="{_quote(filename)}"\r\nContent-Type: {ctype}\r\n\r\n'
            ).encode(),
            data,
            b"\r\n",
        ]
    for name, value in trailing:
        out += [
            dash,
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value.encode("utf-8"),
            b"\r\n",
        ]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


# --- conversation pks -------------------------------------------------------------


class PkCache:
    """A bounded LRU of conversation_id -> backend pk (§2.2 threading)."""

    def __init__(self, maxsize: int = PK_CACHE_SIZE) -> None:
        self._data: OrderedDict[str, int] = OrderedDict()
        self._maxsize = maxsize

    def get(self, conversation_id: str) -> int | None:
        pk = self._data.get(conversation_id)
        if pk is not None:
            self._data.move_to_end(conversation_id)
        return pk

    def put(self, conversation_id: str, pk: int) -> None:
        self._data[conversation_id] = pk
        self._data.move_to_end(conversation_id)
        while len(self._data) > self._maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def response_pk(body: Any) -> int | None:
    """The integer ``id`` of a create/upsert answer, if it has one."""
    if isinstance(body, dict):
        pk = body.get("id")
        if isinstance(pk, int) and not isinstance(pk, bool):
            return pk
        if isinstance(pk, str) and pk.isdigit():
            return int(pk)
    return None


# --- logging hygiene ----------------------------------------------------------------


def redact(text: str) -> str:
    """*text* with API keys and ``Api-Key`` credentials replaced."""
    text = _KEY_PATTERNS[0].sub(r"\1 <redacted>", text)
    return _KEY_PATTERNS[1].sub("ags_<redacted>", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message would contain a credential.

    Cheap when there is nothing to hide: only records whose rendered message
    mentions ``ags_`` or ``api-key`` are rewritten.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is not ours to fix here
            return True
        lowered = message.lower()
        if "ags_" in lowered or "api-key" in lowered:
            record.msg = redact(message)
            record.args = ()
        return True


_install_lock = threading.Lock()
_redaction_installed = False
_warned_insecure: set[str] = set()


#: Loggers whose records can carry request or response headers at DEBUG level.
#: A filter on a logger applies only to records logged on it (not to those that
#: propagate from its children), so httpcore's loggers are named one by one.
REDACTED_LOGGERS = (
    "agentsight_async",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


def install_redaction() -> None:
    """Attach one :class:`RedactingFilter` to our logger and httpx's/httpcore's (once).

    A filter, never a handler: where records go stays the application's choice;
    this only guarantees that a credential is not in them.
    """
    global _redaction_installed
    with _install_lock:
        if not _redaction_installed:
            redacting = RedactingFilter()
            for name in REDACTED_LOGGERS:
                logging.getLogger(name).addFilter(redacting)
            _redaction_installed = True


def warn_if_insecure(endpoint: str) -> None:
    """Warn once per endpoint when the key would travel over plain HTTP off this host."""
    if urlsplit(endpoint).scheme.lower() != "http" or is_loopback_url(endpoint):
        return
    with _install_lock:
        if endpoint in _warned_insecure:
            return
        _warned_insecure.add(endpoint)
    logger.warning(
        "agentsight_async: %s is plain http:// to a non-loopback host; the API key and "
        "conversation data travel unencrypted. Use https:// outside local development.",
        endpoint,
    )


# --- failure reporting -----------------------------------------------------------

#: Seconds between two warnings about rejected requests (drops are logged by Stats).
WARN_INTERVAL: Final = 60.0


class FailureReporter:
    """Records a delivery failure everywhere it must show, never raising.

    ``stats.last_error`` gets a key-free one-liner, ``on_error`` gets an
    exception and a context dict, and the logger gets a warning at most once per
    :data:`WARN_INTERVAL` (a backend rejecting everything must not flood logs).
    An API key refused by the backend is logged as an error, once per exporter.
    """

    def __init__(self, exporter_name: str, stats: Any, on_error: Any) -> None:
        self._name = exporter_name
        self._stats = stats
        self._on_error = on_error
        self._last_warning = -WARN_INTERVAL
        self._auth_logged = False

    def __call__(self, exc: BaseException, message: str, **context: Any) -> None:
        from .._stats import call_on_error

        message = redact(message)
        self._stats.record_error(f"{self._name}: {message}")
        call_on_error(self._on_error, exc, {"exporter": self._name, **context})
        now = time.monotonic()
        if now - self._last_warning >= WARN_INTERVAL:
            self._last_warning = now
            logger.warning("agentsight_async %s exporter: %s", self._name, message)

    def auth_refused(self, status: int, detail: str) -> None:
        if self._auth_logged:
            return
        self._auth_logged = True
        logger.error(
            "agentsight_async %s exporter: AgentSight refused the API key (%s). Events are "
            "dropped until AGENTSIGHT_API_KEY is fixed or the key gets the 'write' role.",
            self._name,
            redact(detail) if detail else f"HTTP {status}",
        )


class HttpExporter(Exporter):
    """What both AgentSight HTTP exporters share: client, retry clock, pk cache, reporting.

    ``transport`` is handed to httpx (tests pass ``httpx.MockTransport``);
    ``sleep`` and ``clock`` drive the retry policy (tests pass fakes).
    """

    def __init__(
        self,
        settings: Settings,
        stats: Stats,
        on_error: ErrorCallback | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, stats, on_error)
        self._client = ClientHolder(settings, transport)
        self._sleep = sleep
        self._clock = clock
        self._base = settings.api_endpoint
        self.pks = PkCache()
        self._report = FailureReporter(self.name, stats, on_error)
        install_redaction()
        warn_if_insecure(settings.api_endpoint)

    async def _post_bytes(
        self,
        route: str,
        content: bytes,
        headers: dict[str, str],
        deadline: float,
        idempotency_key: str | None = None,
    ) -> httpx.Response | RetryFailure:
        """POST bytes serialised once, retried by the policy until *deadline*."""
        url = api_url(self._base, route)
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        client = self._client.get()
        return await send_with_retry(
            lambda: post_once(client, url, content, headers),
            deadline=deadline,
            settings=self.settings,
            stats=self.stats,
            what=f"POST /{route}",
            sleep=self._sleep,
            clock=self._clock,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
