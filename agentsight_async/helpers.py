"""The original package's helpers (``agentsight.helpers``), under the same names.

Code that did ``from agentsight.helpers import get_mime_type`` works with
``from agentsight_async.helpers import get_mime_type``.
"""

from __future__ import annotations

import json
import secrets
import time
from enum import Enum
from typing import Any

from . import _validation
from ._events import iso_utc

__all__ = [
    "AgentSightJSONEncoder",
    "generate_conversation_id",
    "get_iso_timestamp",
    "get_mime_type",
]

_OCTET_STREAM = "application/octet-stream"


def generate_conversation_id() -> str:
    """A new random conversation id: ``conv_`` and 12 hex characters (``conv_1a2b3c4d5e6f``).

    The tracker generates the same form for a script that never names a
    conversation.

    Returns:
        The new id.
    """
    return f"conv_{secrets.token_hex(6)}"


def get_iso_timestamp() -> str:
    """The current time, ISO-8601 in UTC, as the wire carries it.

    Returns:
        ``2026-11-28T10:35:20.614093+00:00``: microseconds and ``+00:00``, the
        fraction left out when it is zero - exactly
        ``datetime.now(timezone.utc).isoformat()``.
    """
    return iso_utc(time.time_ns())


def get_mime_type(source: str | bytes) -> str:
    """Guess a MIME type from a file name (``str``) or from file content (``bytes``).

    The tracker's own guess, which it uses for attachments sent without a type:
    a name by its extension (``report.csv`` -> ``text/csv``), content by its
    magic bytes (PDF, PNG, JPEG, GIF, ZIP); content that is none of those but
    valid UTF-8 text is ``text/plain``.

    The original also told JSON, CSV and Markdown text, Office and OpenDocument
    files, audio and video apart by their content; this guess names them by
    their file name only.

    Args:
        source: a file name, or the file's bytes.

    Returns:
        The MIME type; ``application/octet-stream`` when nothing matched, or for
        a value that is neither ``str`` nor ``bytes``.
    """
    if isinstance(source, str):
        return _validation.sniff_mime(b"", source)
    if not isinstance(source, (bytes, bytearray)) or not source:
        return _OCTET_STREAM
    guess = _validation.sniff_mime(bytes(source), None)
    if guess == _OCTET_STREAM and _is_text(bytes(source)):
        return "text/plain"
    return guess


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\n\r\t" for ch in text)


class AgentSightJSONEncoder(json.JSONEncoder):
    """A ``json`` encoder that writes an ``Enum`` as its value (``Sender.USER`` → ``"end_user"``).

    Use it as ``json.dumps(data, cls=AgentSightJSONEncoder)``.
    """

    def default(self, o: Any) -> Any:
        """Encode what ``json`` cannot: an ``Enum`` as its value.

        Args:
            o: the object ``json`` could not encode.

        Returns:
            The enum's ``value``.

        Raises:
            TypeError: for anything else, as ``json`` does.
        """
        if isinstance(o, Enum):
            return o.value
        return super().default(o)
