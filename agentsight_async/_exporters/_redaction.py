"""Credentials out of everything we log, parse or report - and only ours.

* :func:`redact` replaces ``Api-Key <key>`` and ``ags_...`` in a string;
  :func:`scrub` applies it to every string inside a parsed JSON value (a server
  that echoes the key back must not carry it into results or exceptions).
* :func:`install_redaction` attaches filters, never handlers (where records go
  stays the application's choice):

  - on our own logger, ``agentsight_async``, every record is redacted;
  - on ``httpx`` and ``httpcore.*``, whose DEBUG records can carry request and
    response headers, only records emitted *while one of our requests runs*.
    :func:`our_request` marks that span of time in a :class:`~contextvars.ContextVar`;
    logging calls run filters synchronously in the caller's context, so the
    filter sees the mark exactly for records our own client produces.  The
    application's other httpx clients log through the same loggers, and their
    records pass through untouched.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

_KEY_PATTERNS: Final = (
    re.compile(r"(Api-Key)\s+\S+", re.IGNORECASE),
    re.compile(r"ags_[A-Za-z0-9_]+"),
)

#: True while one of our own HTTP requests runs (in that task's context only).
_OUR_REQUEST: ContextVar[bool] = ContextVar("agentsight_async_request", default=False)

#: Our own logger: every record on it is redacted.
OWN_LOGGER: Final = "agentsight_async"
#: httpx's and httpcore's loggers, whose records can carry request or response headers
#: at DEBUG level.  A filter on a logger applies only to records logged on it (not to
#: those that propagate from its children), so httpcore's loggers are named one by one.
HTTP_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)


def _mentions_key(text: str) -> bool:
    lowered = text.lower()
    return "ags_" in lowered or "api-key" in lowered


def redact(text: str) -> str:
    """*text* with API keys and ``Api-Key`` credentials replaced by ``<redacted>``."""
    text = _KEY_PATTERNS[0].sub(r"\1 <redacted>", text)
    return _KEY_PATTERNS[1].sub("ags_<redacted>", text)


def scrub(value: Any) -> Any:
    """*value* (parsed JSON) with :func:`redact` applied to every string inside it."""
    if isinstance(value, str):
        return redact(value) if _mentions_key(value) else value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


@contextmanager
def our_request() -> Iterator[None]:
    """Mark the enclosed code as one of our requests: its httpx/httpcore records get redacted."""
    token = _OUR_REQUEST.set(True)
    try:
        yield
    finally:
        _OUR_REQUEST.reset(token)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message would contain a credential.

    Args:
        only_our_requests: when true (the filter on httpx's and httpcore's
            loggers), records are touched only inside :func:`our_request`;
            everyone else's pass exactly as they were.

    Cheap when there is nothing to hide: only records whose rendered message
    mentions ``ags_`` or ``api-key`` are rewritten.  Never drops a record.
    """

    def __init__(self, *, only_our_requests: bool = False) -> None:
        super().__init__()
        self.only_our_requests = only_our_requests

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact *record* in place when it is ours and mentions a credential; keep it."""
        if self.only_our_requests and not _OUR_REQUEST.get():
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is not ours to fix here
            return True
        if _mentions_key(message):
            record.msg = redact(message)
            record.args = ()
        return True


_install_lock = threading.Lock()
_installed = False


def install_redaction() -> None:
    """Attach the filters (once per process): all of our logger, our requests on httpx's."""
    global _installed
    with _install_lock:
        if _installed:
            return
        logging.getLogger(OWN_LOGGER).addFilter(RedactingFilter())
        ours_only = RedactingFilter(only_our_requests=True)
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(ours_only)
        _installed = True
