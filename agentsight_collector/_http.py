"""HTTP plumbing for the collector: keys, bounded bodies, gzip, path clean-up.

Kept apart from the routes so each piece is small and testable on its own.
Nothing here logs a header value or a body.
"""

from __future__ import annotations

import hmac
import json
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: The key format both published clients check locally (protocol §1.1).
API_KEY_RE = re.compile(r"^ags_[a-f0-9]{32}_[a-f0-9]{6}$", re.IGNORECASE)

_MIME_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")

_from_json: Callable[..., Any] | None
try:
    from pydantic_core import from_json as _from_json
except ImportError:  # pragma: no cover - pydantic is an SDK dependency
    _from_json = None

#: ``data.translate(_DIGITS)`` writes each ASCII digit as ``0``, each byte a JSON number
#: can follow (``:[,-`` and whitespace) as ``!`` and any other byte as a blank, so
#: ``_LONG_NUMBER in`` it finds an integer of 19 digits or more - one that may not fit
#: 64 bits (``-9999999999999999999`` does not).  A digit run inside a string that follows
#: a letter or a quote, as in a hex id, is not one.
_DIGITS = bytes(
    0x30 if 0x30 <= i <= 0x39 else 0x21 if i in b":[,- \t\n\r" else 0x20 for i in range(256)
)
_LONG_NUMBER = b"!" + b"0" * 19

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024


class KeyChecker:
    """Decides whether an API key is accepted.

    Configured keys are compared with :func:`hmac.compare_digest`, against all
    of them every time, so timing reveals neither a key nor which one matched.
    In dev mode any well-formed key is accepted, and so is a request with no
    key at all - a tracker pointed at a collector on its own machine needs
    none (the CLI says so).  A malformed key is still refused: it is a
    configuration mistake worth seeing.
    """

    def __init__(self, keys: Sequence[str], *, dev: bool) -> None:
        self._keys = [k.encode() for k in keys if k]
        self.dev = dev

    def accepts(self, key: str | None) -> bool:
        if self.dev:
            return not key or API_KEY_RE.match(key) is not None
        if not key:
            return False
        candidate = key.encode()
        matched = False
        for known in self._keys:
            matched |= hmac.compare_digest(known, candidate)
        return matched


def key_from_headers(request: Request) -> str | None:
    """The key of ``Authorization: Api-Key <key>``; any other scheme is no key."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "api-key":
        return None
    return value.strip() or None


def may_hold_long_integer(data: bytes) -> bool:
    """Whether *data* may hold an integer ``orjson`` reads as a float (beyond 64 bits).

    Conservative: a run of 19 digits after ``:``, ``[``, ``,``, ``-`` or whitespace,
    in a string too.
    """
    return _LONG_NUMBER in data.translate(_DIGITS)


class RequestError(Exception):
    """A request the app refuses before it reaches storage: status plus detail."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


async def read_body(request: Request, *, max_bytes: int, max_decompressed: int) -> bytes:
    """The request body, bounded on the wire and after gzip (see :func:`read_raw_body`)."""
    raw = await read_raw_body(request, max_bytes=max_bytes)
    return decode_body(raw, request.headers.get("content-encoding"), max_decompressed)


async def read_raw_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body as sent, bounded on the wire.

    ``Content-Length`` over the limit is refused before reading anything; a
    body streamed without (or lying about) its length is cut off as soon as
    it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"Request body exceeds the {max_bytes}-byte limit.")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > max_bytes:
            raise RequestError(413, f"Request body exceeds the {max_bytes}-byte limit.")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_body(raw: bytes, content_encoding: str | None, max_decompressed: int) -> bytes:
    """*raw* undone of its ``Content-Encoding``: none, or gzip inflated by :func:`gunzip_bounded`.

    Synchronous and CPU-bound: the app calls it off the event loop.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return gunzip_bounded(raw, max_decompressed)
    raise RequestError(415, f"Unsupported Content-Encoding {encoding[:32]!r}; use gzip.")


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Inflate gzip (several members allowed) without ever holding more than *limit* bytes.

    ``decompressobj.decompress(..., max_length)`` stops producing output at the
    bound, so a gzip bomb is refused after inflating at most ``limit + 1``
    bytes instead of exhausting memory.
    """
    out: list[bytes] = []
    total = 0
    remaining = data
    while remaining:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = remaining
        try:
            while pending and not inflater.eof:
                chunk = inflater.decompress(pending, limit - total + 1)
                total += len(chunk)
                if total > limit:
                    raise RequestError(413, f"Decompressed body exceeds the {limit}-byte limit.")
                out.append(chunk)
                pending = inflater.unconsumed_tail
        except zlib.error as exc:
            raise RequestError(400, f"Invalid gzip body: {exc}.") from None
        if not inflater.eof:
            raise RequestError(400, "Invalid gzip body: truncated.")
        remaining = inflater.unused_data
    return b"".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from *body*, or a 400 whose detail says what is wrong.

    ``orjson.loads`` (an SDK dependency) parses an ingest body in about half
    the time of ``pydantic_core.from_json``, which was about a third faster than
    :func:`json.loads`; with the test below, about 70 %.  It gives the same
    objects, except that it reads an integer beyond 64 bits as a float: a body
    with a run of 19 digits that may be such an integer
    (:func:`may_hold_long_integer`: cheap and conservative, met by some strings
    too) is left to ``from_json``, which keeps such an integer exact, as is
    anything orjson refuses (an
    overflowing ``1E400``, which ``from_json`` reads as infinity).  Whatever
    ``from_json`` refuses is parsed again by :func:`json.loads`, which decides:
    it gives the error messages clients see (``NaN``, ``Infinity``) and it
    accepts what it always accepted (e.g. an escaped lone surrogate).
    """
    if not may_hold_long_integer(body):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(value, dict):
                return value
    if _from_json is not None:
        try:
            value = _from_json(body, allow_inf_nan=False)
        except ValueError:
            pass
        else:
            if isinstance(value, dict):
                return value
    if not body.strip():
        raise RequestError(400, "Request body is empty; expected a JSON object.")
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, f"JSON parse error - {exc}") from None
    if not isinstance(value, dict):
        raise RequestError(400, f"Expected a JSON object, got {type(value).__name__}.")
    return value


class DoubleSlashMiddleware:
    """Collapse a leading ``//`` in the path.

    0.0.44 joins ``endpoint + "/api/..."`` unnormalised, so an endpoint set
    with a trailing slash requests ``//api/conversations/`` (protocol §1.3).
    Only the leading run is collapsed; routing stays strict otherwise.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("//"):
            scope = dict(scope)
            scope["path"] = "/" + scope["path"].lstrip("/")
            raw = scope.get("raw_path")
            if isinstance(raw, bytes):
                scope["raw_path"] = b"/" + raw.lstrip(b"/")
        await self.app(scope, receive, send)


def file_response(filename: str, mime: str, data: bytes) -> Response:
    """Attachment bytes as a download that a browser never renders in our origin."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("\\", "_")
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
    if not _MIME_RE.match(mime):
        mime = "application/octet-stream"
    return Response(
        data,
        media_type=mime,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )
