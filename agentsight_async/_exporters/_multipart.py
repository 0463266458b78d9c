"""Attachment bytes on the wire: ``multipart/form-data`` bodies and base64 helpers.

Multipart bodies are encoded here rather than by httpx so that the boundary can
derive from the event id: a retried upload is byte-identical, like every JSON
body we send.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, Final

#: Appended to a message's event id to key the upload of the message's own files
#: (``Idempotency-Key``, stable across retries, distinct from the message's key).
LINKED_SUFFIX: Final = ":attachments"


def b64_attachments(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments as a base64 JSON upload wants them (raw bytes encoded, text kept)."""
    out = []
    for att in attachments:
        data = att.get("data")
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(data).decode("ascii")
        out.append(
            {"filename": att.get("filename"), "mime_type": att.get("mime_type"), "data": data}
        )
    return out


def raw_files(attachments: list[dict[str, Any]]) -> list[tuple[str, str, str, bytes]]:
    """Attachments as multipart file parts ``(part name, filename, mime type, bytes)``.

    Base64 text is decoded; a missing filename or mime type gets a default.
    """
    out = []
    for i, att in enumerate(attachments):
        data = att.get("data")
        raw = base64.b64decode(data) if isinstance(data, str) else bytes(data or b"")
        filename = att.get("filename") or f"attachment_{i}"
        mime = att.get("mime_type") or "application/octet-stream"
        out.append((f"attachment_{i}", str(filename), str(mime), raw))
    return out


def decoded_size(data: Any) -> int:
    """Bytes of an attachment's content: raw bytes, or a base64 string's decoded length."""
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, str):
        return len(data) * 3 // 4 - data[-2:].count("=")
    return 0


def _quote(value: str) -> str:
    # RFC 7578 §4.2: percent-encode the characters that would end the quoted string.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _text_part(name: str, value: str) -> list[bytes]:
    return [
        f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
        value.encode("utf-8"),
    ]


def encode_multipart(
    fields: Iterable[tuple[str, str]],
    files: Iterable[tuple[str, str, str, bytes]],
    trailing: Iterable[tuple[str, str]],
    boundary: str,
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with parts in exactly the given order.

    Args:
        fields: text parts ``(name, value)`` that come first.
        files: file parts ``(name, filename, content_type, bytes)``.
        trailing: text parts after the files.
        boundary: the part boundary (the caller derives it from the event id).

    Returns:
        The body and its ``Content-Type`` header value.
    """
    parts = [_text_part(name, value) for name, value in fields]
    for name, filename, ctype, data in files:
        head = (
            f'Content-Disposition: form-data; name="{_quote(name)}"; '
            f'filename="{_quote(filename)}"\r\nContent-Type: {ctype}\r\n\r\n'
        )
        parts.append([head.encode(), data])
    parts.extend(_text_part(name, value) for name, value in trailing)
    dash = f"--{boundary}\r\n".encode("ascii")
    out: list[bytes] = []
    for part in parts:
        out += [dash, *part, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
