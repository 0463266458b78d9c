"""Call-site validation: turn user arguments into an event's plain ``data``.

Each function either returns the data (and a size estimate in bytes) or raises
a :class:`ConversationTrackingException` subclass whose message starts with the
argument's name.  Nothing here touches the queues, so a rejected call leaves
everything already tracked untouched.

The checks follow the original SDK (non-blank message, action name and button
fields; strict base64 in base64 mode; bytes or file objects in form-data mode)
and add what a backend would otherwise reject for the whole batch later:
values that are not JSON (NaN, sets, cycles), text that is not valid UTF-8
(lone surrogates), over-long conversation fields, invalid IP addresses and
oversized attachments.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import mimetypes
from datetime import datetime, timezone
from typing import Any

from . import _events as events
from ._exceptions import (
    ConversationTrackingException,
    InvalidAttachmentException,
    InvalidConversationDataException,
    MissingConversationIdException,
)

#: Estimated JSON overhead of one event beyond its text (keys, ids, timestamps).
EVENT_OVERHEAD = 160
#: Longest value the backend accepts in a conversation's string fields.
MAX_FIELD_CHARS = 255

_MODES = {"base64": "base64", "form_data": "form_data", "form-data": "form_data"}
_SENDERS = ("end_user", "agent")
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
)


def type_name(value: Any) -> str:
    return type(value).__name__


def check_text(
    value: Any,
    name: str,
    exc: type[ConversationTrackingException],
    max_chars: int,
    *,
    allow_blank: bool = False,
) -> str:
    """A non-blank ``str`` of at most *max_chars* that encodes as UTF-8."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise exc(f"{name}: must be a str, got {type_name(value)}")
        value = str(value)  # str subclasses (enums) become plain text
    if not allow_blank and (not value or value.isspace()):
        raise exc(f"{name}: must not be empty or blank")
    if len(value) > max_chars:
        raise exc(f"{name}: is {len(value)} characters long; the limit is {max_chars}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise exc(
                f"{name}: contains a character that is not valid UTF-8 "
                f"(unpaired surrogate at position {err.start})"
            ) from None
    text: str = value
    return text


def optional_text(
    value: Any, name: str, exc: type[ConversationTrackingException], max_chars: int
) -> str | None:
    if value is None:
        return None
    return check_text(value, name, exc, max_chars, allow_blank=True)


def json_snapshot(
    value: Any, name: str, exc: type[ConversationTrackingException], *, want_dict: bool = True
) -> tuple[Any, int]:
    """A deep copy of *value* through JSON, and its encoded size.

    The copy means a caller who mutates its dict after tracking does not change
    what was tracked; the round trip is also the strictest check that the value
    is JSON (no NaN, no cycles, no bytes or custom objects, valid UTF-8).
    """
    if want_dict and not isinstance(value, dict):
        raise exc(f"{name}: must be a dict (a JSON object), got {type_name(value)}")
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except RecursionError:
        raise exc(f"{name}: is nested too deeply to be sent as JSON") from None
    except ValueError as err:
        reason = str(err)
        if "Circular reference" in reason:
            reason = "contains a reference to itself (a cycle)"
        elif "surrogate" in reason or isinstance(err, UnicodeEncodeError):
            reason = "contains text that is not valid UTF-8 (an unpaired surrogate)"
        elif "Out of range float" in reason:
            reason = "contains NaN or Infinity, which JSON cannot carry"
        raise exc(f"{name}: {reason}") from None
    except TypeError as err:
        raise exc(f"{name}: is not JSON-serialisable ({err})") from None
    try:
        _check_keys(value, name, exc)
    except RecursionError:
        raise exc(f"{name}: is nested too deeply to be sent as JSON") from None
    return json.loads(text), len(text)


def _check_keys(value: Any, name: str, exc: type[ConversationTrackingException]) -> None:
    """JSON object keys are strings; refuse others rather than let json.dumps coerce them.

    ``{1: "a", "1": "b"}`` would otherwise arrive as ``{"1": "b"}``.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise exc(f"{name}: keys must be str; got the {type_name(key)} key {key!r}")
            if isinstance(item, (dict, list, tuple)):
                _check_keys(item, name, exc)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (dict, list, tuple)):
                _check_keys(item, name, exc)


def optional_metadata(
    metadata: Any, exc: type[ConversationTrackingException], name: str = "metadata"
) -> tuple[dict[str, Any], int]:
    """``metadata`` as the original accepted it: a dict, or None/empty for ``{}``."""
    if metadata is None or (isinstance(metadata, dict) and not metadata):
        return {}, 2
    snap, size = json_snapshot(metadata, name, exc)
    return snap, size


def conversation_id(value: Any, name: str = "conversation_id") -> str:
    if value is None or (isinstance(value, str) and (not value or value.isspace())):
        raise MissingConversationIdException(f"{name}: must be a non-blank string")
    return check_text(value, name, InvalidConversationDataException, MAX_FIELD_CHARS)


def conversation_fields(
    *,
    customer_id: Any,
    customer_ip_address: Any,
    device: Any,
    source: Any,
    language: Any,
    name: Any,
    environment: Any,
    metadata: Any,
) -> tuple[dict[str, Any], int]:
    """The conversation item's fields (every key present, unused ones ``None``)."""
    exc = InvalidConversationDataException
    fields: dict[str, Any] = {
        "customer_id": optional_text(customer_id, "customer_id", exc, MAX_FIELD_CHARS),
        "customer_ip_address": None,
        "device": optional_text(device, "device", exc, MAX_FIELD_CHARS),
        "source": optional_text(source, "source", exc, MAX_FIELD_CHARS),
        "language": optional_text(language, "language", exc, MAX_FIELD_CHARS),
        "name": optional_text(name, "name", exc, MAX_FIELD_CHARS),
        "environment": optional_text(environment, "environment", exc, MAX_FIELD_CHARS),
        "metadata": None,
    }
    if customer_ip_address is not None:
        ip = check_text(customer_ip_address, "customer_ip_address", exc, 64)
        try:
            fields["customer_ip_address"] = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise exc(f"customer_ip_address: {ip!r} is not an IPv4 or IPv6 address") from None
    size = EVENT_OVERHEAD
    if metadata is not None:
        fields["metadata"], msize = json_snapshot(metadata, "metadata", exc)
        size += msize
    size += sum(len(v) for v in fields.values() if isinstance(v, str))
    return fields, size


def mode(value: Any, name: str = "mode") -> str:
    raw = getattr(value, "value", value)  # the original's AttachmentMode enum
    if not isinstance(raw, str) or raw.lower() not in _MODES:
        raise InvalidAttachmentException(
            f"{name}: invalid mode {raw!r}; must be 'base64' or 'form_data'"
        )
    return _MODES[raw.lower()]


def sender(value: Any) -> str:
    if value is None:
        return "end_user"
    raw = getattr(value, "value", value)
    if raw not in _SENDERS:
        raise InvalidAttachmentException(f"sender: must be 'end_user' or 'agent', got {raw!r}")
    return str(raw)


def sniff_mime(data: bytes, filename: str | None) -> str:
    """Guess a MIME type from the file name, then from magic bytes."""
    if filename:
        guessed, _ = mimetypes.guess_type(filename, strict=False)
        if guessed:
            return guessed
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return "application/octet-stream"


def attachments(
    value: Any, att_mode: str, max_bytes: int, name: str = "attachments"
) -> tuple[list[dict[str, Any]], int]:
    """Validate an attachment list; returns the processed list and its size estimate.

    Base64 mode keeps ``{filename, mime_type, data}`` with ``data`` a strictly
    valid base64 string.  Form-data mode keeps raw bytes (file objects are read
    now, so the bytes tracked are the bytes sent) with a filename and MIME type
    filled in when missing.  *max_bytes* bounds the decoded bytes of the whole
    call, not of each file: they travel in one request, which the backend
    bounds too.
    """
    exc = InvalidAttachmentException
    if not isinstance(value, list):
        raise exc(f"{name}: must be a list of dicts, got {type_name(value)}")
    if not value:
        raise exc(f"{name}: must not be empty")
    out: list[dict[str, Any]] = []
    size = EVENT_OVERHEAD
    total = 0
    for i, att in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(att, dict):
            raise exc(f"{where}: must be a dict, got {type_name(att)}")
        if att_mode == "base64":
            missing = [k for k in ("filename", "mime_type", "data") if k not in att]
            if missing:
                raise exc(f"{where}: missing required key(s): {', '.join(missing)}")
            filename = check_text(att["filename"], f"{where}.filename", exc, MAX_FIELD_CHARS)
            mime = check_text(att["mime_type"], f"{where}.mime_type", exc, MAX_FIELD_CHARS)
            data = att["data"]
            if not isinstance(data, str):
                raise exc(
                    f"{where}.data: must be a base64 str in base64 mode, got {type_name(data)}"
                )
            try:
                raw_len = len(base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                raise exc(f"{where}.data: is not valid base64 ({filename!r})") from None
            total += raw_len
            if total > max_bytes:
                raise exc(
                    f"{where}.data: {raw_len} bytes decoded brings the call to {total}; "
                    f"the limit is {max_bytes} bytes per call"
                )
            out.append({"filename": filename, "mime_type": mime, "data": data})
            size += len(data) + len(filename) + len(mime) + 48
        else:
            if "data" not in att:
                raise exc(f"{where}: missing required key: 'data'")
            raw = _read_bytes(att["data"], f"{where}.data", max_bytes - total)
            total += len(raw)
            given_name = att.get("filename")
            given_mime = att.get("mime_type") or att.get("content_type")
            name_ = (
                None
                if given_name is None
                else check_text(given_name, f"{where}.filename", exc, MAX_FIELD_CHARS)
            )
            if given_mime is not None:
                mime = check_text(given_mime, f"{where}.mime_type", exc, MAX_FIELD_CHARS)
            else:
                mime = sniff_mime(raw, name_)
            filename = name_ or f"attachment_{i}{mimetypes.guess_extension(mime) or ''}"
            processed = {"filename": filename, "mime_type": mime, "data": raw}
            out.append(processed)
            # base64 on the ingest path grows the bytes by a third
            size += len(raw) * 4 // 3 + len(filename) + len(mime) + 48
    return out, size


def _read_bytes(data: Any, name: str, max_bytes: int) -> bytes:
    exc = InvalidAttachmentException
    if isinstance(data, str):
        raise exc(f"{name}: must be bytes or a file object in form_data mode, not str")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif hasattr(data, "read"):
        try:
            raw = data.read(max_bytes + 1)
        except Exception as err:
            raise exc(f"{name}: reading the file object failed: {err}") from None
        if isinstance(raw, str):
            raise exc(f"{name}: the file object returned str; open it in binary mode ('rb')")
        if not isinstance(raw, (bytes, bytearray)):
            raise exc(f"{name}: the file object's read() returned {type_name(raw)}")
        raw = bytes(raw)
    else:
        raise exc(f"{name}: must be bytes or a file object, got {type_name(data)}")
    if len(raw) > max_bytes:
        raise exc(f"{name}: is larger than the {max_bytes} bytes left of the per-call limit")
    return raw


def iso_time(value: Any, name: str) -> str | None:
    """``started_at``/``ended_at``: an ISO-8601 string or an aware/naive datetime."""
    if value is None:
        return None
    exc = InvalidConversationDataException
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return dt.isoformat()
    if not isinstance(value, str):
        raise exc(f"{name}: must be an ISO-8601 str or a datetime, got {type_name(value)}")
    parse_iso(value, name)
    return value


def parse_iso(value: str, name: str = "timestamp") -> datetime:
    """*value* as an aware datetime, or :class:`InvalidConversationDataException` naming *name*."""
    dt = events.parse_iso(value)
    if dt is None:
        raise InvalidConversationDataException(f"{name}: {value!r} is not an ISO-8601 date-time")
    return dt


#: Largest duration accepted (ms): ten years.  Beyond it a value is a bug, and
#: converting it to nanoseconds for the wire would overflow.
MAX_DURATION_MS = 10 * 365 * 24 * 3600 * 1000
#: Largest token count accepted: fits a signed 64-bit integer with room to add up.
MAX_TOKENS = 2**53


def non_negative_number(
    value: Any, name: str, *, integer: bool = False, maximum: float = MAX_DURATION_MS
) -> float | int | None:
    if value is None:
        return None
    ok_types = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        kind = "an int" if integer else "a number"
        raise InvalidConversationDataException(f"{name}: must be {kind}, got {type_name(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidConversationDataException(f"{name}: must be finite")
    if value < 0:
        raise InvalidConversationDataException(f"{name}: must not be negative, got {value}")
    if value > maximum:
        raise InvalidConversationDataException(f"{name}: {value} is larger than {maximum}")
    return value


def token_count(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConversationDataException(f"{name}: must be an int, got {type_name(value)}")
    if value < 0:
        raise InvalidConversationDataException(f"{name}: must not be negative, got {value}")
    if value > MAX_TOKENS:
        raise InvalidConversationDataException(f"{name}: {value} is larger than {MAX_TOKENS}")
    return value
