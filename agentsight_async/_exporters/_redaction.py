"""Credentials out of everything we log, parse or report.

* :func:`redact` replaces ``Api-Key <key>`` and ``ags_...`` in a string;
  :func:`scrub` applies it to every string inside a parsed JSON value (a server
  that echoes the key back must not carry it into results or exceptions).
* :func:`install_redaction` attaches a filter, never a handler (where records
  go stays the application's choice), to our logger and to httpx's and
  httpcore's, whose DEBUG records can carry request and response headers.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Final

_KEY_PATTERNS: Final = (
    re.compile(r"(Api-Key)\s+\S+", re.IGNORECASE),
    re.compile(r"ags_[A-Za-z0-9_]+"),
)

#: Our own logger.
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


class RedactingFilter(logging.Filter):
    """Rewrites a record whose message would contain a credential.

    Cheap when there is nothing to hide: only records whose rendered message
    mentions ``ags_`` or ``api-key`` are rewritten.  Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact *record* in place when it mentions a credential; keep it."""
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
    """Attach one :class:`RedactingFilter` to our logger and httpx's/httpcore's (once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        redacting = RedactingFilter()
        for name in (OWN_LOGGER, *HTTP_LOGGERS):
            logging.getLogger(name).addFilter(redacting)
        _installed = True
