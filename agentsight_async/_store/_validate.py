"""Input validation for REST items and ingest payloads (standard library only).

Validation turns a parsed JSON body into a small, normalised dict, or raises
with a DRF-shaped error body: the published clients format ``{"detail": ...}``
and ``{"field": ["msg", ...]}`` and nothing else.  Writing happens only after a
whole request validated, so a refused request never leaves half a row behind.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Mapping
from typing import Any, NamedTuple, cast

from .._events import CONVERSATION_FIELDS, TOKEN_DETAIL_KEYS, TOKEN_KEYS
from . import _timeutil
from ._errors import FieldValidationError, IngestValidationError

MAX_STR = 255
MAX_COMMENT = 5000
MAX_LISTED_BLOCKS = 20

#: The environments every agent of a local store has (``GET /api/me/``).
ENVIRONMENTS: tuple[dict[str, Any], ...] = (
    {"id": 1, "slug": "production", "name": "Production", "is_production": True},
    {"id": 2, "slug": "development", "name": "Development", "is_production": False},
)
ENVIRONMENT_SLUGS = frozenset(e["slug"] for e in ENVIRONMENTS)
#: Where a conversation lands when no environment was ever sent.
DEFAULT_ENVIRONMENT = "development"

SENDERS = frozenset({"end_user", "agent", "system"})
SENTIMENTS = frozenset({"positive", "neutral", "negative"})
FEEDBACK_KINDS = frozenset({"conversation", "message", "agent"})
#: Who left a feedback: an end user through the API, or someone on the collector's pages.
FEEDBACK_SOURCES = frozenset({"customer", "platform"})
#: What ``PATCH /api/conversations/{pk}/update/`` may change.
UPDATABLE_FIELDS = ("name", "is_marked", "customer_id", "device", "language", "metadata")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

#: A block may set the conversation's own fields (:data:`CONVERSATION_FIELDS`) besides these.
INGEST_BLOCK_KEYS = frozenset({"conversation_id", "spans", *CONVERSATION_FIELDS})


class Errors:
    """Collects ``field -> [messages]`` while a body is checked."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            raise FieldValidationError(self.fields)


# -- scalar checks -------------------------------------------------------------


def opt_str(
    data: Mapping[str, Any], key: str, errors: Errors, *, max_len: int = MAX_STR
) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(key, "Not a valid string.")
        return None
    if len(value) > max_len:
        errors.add(key, f"Ensure this field has no more than {max_len} characters.")
        return None
    return value


def req_str(
    data: Mapping[str, Any], key: str, errors: Errors, *, max_len: int | None = MAX_STR
) -> str:
    value = data.get(key)
    if value is None:
        errors.add(key, "This field is required.")
        return ""
    if not isinstance(value, str):
        errors.add(key, "Not a valid string.")
        return ""
    if not value.strip():
        errors.add(key, "This field may not be blank.")
        return ""
    if max_len is not None and len(value) > max_len:
        errors.add(key, f"Ensure this field has no more than {max_len} characters.")
    return value


def opt_object(data: Mapping[str, Any], key: str, errors: Errors) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(key, "Expected a JSON object.")
        return None
    return value


def opt_number(data: Mapping[str, Any], key: str, errors: Errors) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.add(key, "A valid number is required.")
        return None
    if value < 0:
        errors.add(key, "Ensure this value is greater than or equal to 0.")
        return None
    return float(value)


def check_ip(value: str | None, errors: Errors, key: str = "customer_ip_address") -> None:
    if value is None:
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        errors.add(key, "Enter a valid IPv4 or IPv6 address.")


def check_environment(value: Any, errors: Errors) -> None:
    if value is None:
        return
    if value not in ENVIRONMENT_SLUGS:
        known = ", ".join(sorted(ENVIRONMENT_SLUGS))
        errors.add("environment", f"Unknown environment {str(value)[:64]!r}; known: {known}.")


def timestamp(data: Mapping[str, Any], errors: Errors, key: str = "timestamp") -> tuple[str, int]:
    """The item's timestamp as sent, and its sort key; server time when absent."""
    value = data.get(key)
    if value is None or value == "":
        return _timeutil.now_at()
    if not isinstance(value, str):
        errors.add(key, "Datetime has wrong format. Use ISO 8601.")
        return "", 0
    try:
        return value, _timeutil.us_from_iso(value)
    except ValueError:
        errors.add(key, "Datetime has wrong format. Use ISO 8601.")
        return "", 0


def pk_ref(data: Mapping[str, Any], key: str, errors: Errors) -> int | None:
    """A primary key sent as an int, a numeric string, ``"None"`` or null.

    The legacy client sends the conversation pk as a string on message-linked
    and multipart attachments, and the literal ``"None"`` when it has none.
    """
    value = data.get(key)
    if value is None or value in ("", "None", "null"):
        return None
    if isinstance(value, bool):
        errors.add(key, f"Incorrect type. Expected pk value, received {type(value).__name__}.")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    errors.add(key, f"Incorrect type. Expected pk value, received {type(value).__name__}.")
    return None


def conversation_ref(data: Mapping[str, Any], errors: Errors) -> dict[str, Any]:
    """``{"pk": int | None, "conversation_id": str | None}`` for an item.

    ``conversation_id == "None"`` is the legacy agent-attachment bug (the
    business id was lost on that code path), so it counts as absent.
    """
    pk = pk_ref(data, "conversation", errors)
    conversation_id = opt_str(data, "conversation_id", errors)
    if conversation_id is not None and (conversation_id == "None" or not conversation_id.strip()):
        conversation_id = None
    return {"pk": pk, "conversation_id": conversation_id}


def require_conversation(ref: Mapping[str, Any], errors: Errors, *, via_message: bool) -> None:
    if ref["pk"] is None and ref["conversation_id"] is None and not via_message:
        errors.add("conversation", "Either 'conversation' (pk) or 'conversation_id' is required.")


def to_bool(value: Any) -> bool | None:
    """A boolean as DRF reads one (JSON ``true``, ``1``, ``"true"``, ``"on"``...), else ``None``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def _req_bool(data: Mapping[str, Any], key: str, errors: Errors) -> bool:
    if data.get(key) is None:
        errors.add(key, "This field is required.")
        return False
    value = to_bool(data[key])
    if value is None:
        errors.add(key, "Must be a valid boolean.")
        return False
    return value


def _name(data: Mapping[str, Any], errors: Errors) -> str:
    """A conversation's new name: trimmed (as DRF trims), non-blank, at most 255 characters."""
    name = req_str(data, "name", errors, max_len=None)
    name = name.strip()
    if len(name) > MAX_STR:
        errors.add("name", f"Ensure this field has no more than {MAX_STR} characters.")
    return name


# -- management bodies ---------------------------------------------------------------


def rename(data: Mapping[str, Any]) -> dict[str, Any]:
    """``PATCH /api/conversations/{pk}/rename/``: ``{"name"}``."""
    errors = Errors()
    name = _name(data, errors)
    errors.raise_if_any()
    return {"name": name}


def mark(data: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /api/conversations/{pk}/mark/``: ``{"is_marked"}``."""
    errors = Errors()
    is_marked = _req_bool(data, "is_marked", errors)
    errors.raise_if_any()
    return {"is_marked": is_marked}


def conversation_update(data: Mapping[str, Any]) -> dict[str, Any]:
    """``PATCH /api/conversations/{pk}/update/``: any of :data:`UPDATABLE_FIELDS`.

    A field sent as ``null`` is cleared (except ``name`` and ``is_marked``,
    which cannot be null); a field that cannot be updated is refused rather
    than ignored, so a typo never looks like a successful write.
    """
    errors = Errors()
    out: dict[str, Any] = {}
    for key in data:
        if key not in UPDATABLE_FIELDS:
            errors.add(
                str(key)[:64],
                f"This field cannot be updated; updatable: {', '.join(UPDATABLE_FIELDS)}.",
            )
    if "name" in data:
        out["name"] = _name(data, errors)
    if "is_marked" in data:
        out["is_marked"] = _req_bool(data, "is_marked", errors)
    for key in ("customer_id", "device", "language"):
        if key in data:
            out[key] = opt_str(data, key, errors)
    if "metadata" in data:
        out["metadata"] = opt_object(data, "metadata", errors)
    if not data:
        errors.add(
            "non_field_errors",
            f"Send at least one of: {', '.join(UPDATABLE_FIELDS)}.",
        )
    errors.raise_if_any()
    return out


# -- REST bodies ------------------------------------------------------------------


def conversation(data: Mapping[str, Any]) -> dict[str, Any]:
    errors = Errors()
    conversation_id = req_str(data, "conversation_id", errors)
    fields: dict[str, Any] = {}
    for key in CONVERSATION_FIELDS:
        value = opt_object(data, key, errors) if key == "metadata" else opt_str(data, key, errors)
        if value is not None:
            fields[key] = value
    check_ip(fields.get("customer_ip_address"), errors)
    check_environment(fields.get("environment"), errors)
    is_used = data.get("is_used")
    if is_used is not None and not isinstance(is_used, bool):
        errors.add("is_used", "Must be a valid boolean.")
    ts, ts_us = timestamp(data, errors)
    errors.raise_if_any()
    return {
        "conversation_id": conversation_id,
        "fields": fields,
        "is_used": bool(is_used),
        "timestamp": ts,
        "ts_us": ts_us,
        # 0.1.4's upload upsert sends no timestamp: not activity of its own.
        "timed": data.get("timestamp") not in (None, ""),
    }


def message(data: Mapping[str, Any]) -> dict[str, Any]:
    errors = Errors()
    content = req_str(data, "content", errors, max_len=None)
    sender = data.get("sender")
    if sender not in SENDERS:
        errors.add("sender", f'"{str(sender)[:64]}" is not a valid choice.')
    ref = conversation_ref(data, errors)
    require_conversation(ref, errors, via_message=False)
    metadata = opt_object(data, "metadata", errors)
    ts, ts_us = timestamp(data, errors)
    errors.raise_if_any()
    return {
        "ref": ref,
        "sender": sender,
        "content": content,
        "metadata": metadata or {},
        "timestamp": ts,
        "ts_us": ts_us,
    }


def token_counts(action_name: str, metadata: Mapping[str, Any] | None) -> dict[str, int] | None:
    """The counters of a synthetic legacy ``token_usage`` action, else None."""
    if action_name != "token_usage" or not metadata:
        return None
    counts = {
        k: int(v)
        for k in (*TOKEN_KEYS, *TOKEN_DETAIL_KEYS)
        if isinstance(v := metadata.get(k), (int, float)) and not isinstance(v, bool)
    }
    return counts or None


def action(data: Mapping[str, Any]) -> dict[str, Any]:
    errors = Errors()
    action_name = req_str(data, "action_name", errors)
    ref = conversation_ref(data, errors)
    require_conversation(ref, errors, via_message=False)
    out: dict[str, Any] = {
        "action_name": action_name,
        "ref": ref,
        # Passed through unvalidated, as the legacy client does.
        "started_at": opt_str(data, "started_at", errors, max_len=64),
        "ended_at": opt_str(data, "ended_at", errors, max_len=64),
        "duration_ms": opt_number(data, "duration_ms", errors),
        "tools_used": data.get("tools_used"),
        "response": opt_str(data, "response", errors, max_len=1_000_000),
        "error_msg": opt_str(data, "error_msg", errors, max_len=1_000_000),
        "metadata": opt_object(data, "metadata", errors) or {},
    }
    out["timestamp"], out["ts_us"] = timestamp(data, errors)
    errors.raise_if_any()
    out["status"] = "error" if out["error_msg"] else "ok"
    out["tokens"] = token_counts(action_name, out["metadata"])
    return out


def button(data: Mapping[str, Any]) -> dict[str, Any]:
    errors = Errors()
    out: dict[str, Any] = {
        "button_event": req_str(data, "button_event", errors),
        "label": req_str(data, "label", errors),
        "value": req_str(data, "value", errors),
        "ref": conversation_ref(data, errors),
        "metadata": opt_object(data, "metadata", errors) or {},
    }
    require_conversation(out["ref"], errors, via_message=False)
    out["timestamp"], out["ts_us"] = timestamp(data, errors)
    errors.raise_if_any()
    return out


def _sender(data: Mapping[str, Any], errors: Errors) -> str:
    sender = data.get("sender") or "end_user"
    if sender not in SENDERS:
        errors.add("sender", f'"{str(sender)[:64]}" is not a valid choice.')
    return str(sender)


def _json_files(value: Any, errors: Errors) -> list[tuple[str, str | None, bytes]]:
    if not isinstance(value, list) or not value:
        errors.add("attachments", "A non-empty list of attachments is required.")
        return []
    files: list[tuple[str, str | None, bytes]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            errors.add("attachments", f"Item {i}: expected an object.")
            continue
        name, mime, data = item.get("filename"), item.get("mime_type"), item.get("data")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_STR:
            errors.add("attachments", f"Item {i}: 'filename' must be a non-blank string.")
            continue
        if mime is not None and not isinstance(mime, str):
            errors.add("attachments", f"Item {i}: 'mime_type' must be a string.")
            continue
        if not isinstance(data, str):
            errors.add("attachments", f"Item {i}: 'data' must be a base64 string.")
            continue
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            errors.add("attachments", f"Item {i}: 'data' is not valid base64.")
            continue
        files.append((name, mime, raw))
    return files


def attachments_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """Variants A and B (and the 0.1.4 upload): base64 files in a JSON body."""
    errors = Errors()
    out: dict[str, Any] = {
        "files": _json_files(data.get("attachments"), errors),
        "ref": conversation_ref(data, errors),
        "message": pk_ref(data, "message", errors),
        "sender": _sender(data, errors),
        "mode": opt_str(data, "mode", errors) or "base64",
        "metadata": opt_object(data, "metadata", errors) or {},
    }
    require_conversation(out["ref"], errors, via_message=out["message"] is not None)
    out["timestamp"], out["ts_us"] = timestamp(data, errors)
    errors.raise_if_any()
    return out


def attachments_form(
    fields: Mapping[str, str], files: list[tuple[str, str | None, bytes]]
) -> dict[str, Any]:
    """Variants C and D: multipart text parts plus file parts.

    The legacy standalone variant carries no ``conversation_id`` part, and
    leaves out ``conversation`` when it has no pk; such an upload belongs to
    nothing, so it is refused with a field error instead of being orphaned.
    """
    errors = Errors()
    metadata: dict[str, Any] = {}
    raw_meta = fields.get("metadata")
    if raw_meta:
        try:
            parsed = json.loads(raw_meta)
        except ValueError:
            errors.add("metadata", "Value must be valid JSON.")
        else:
            if isinstance(parsed, dict):
                metadata = parsed
            else:
                errors.add("metadata", "Expected a JSON object.")
    if not files:
        errors.add("attachments", "At least one file part is required.")
    out: dict[str, Any] = {
        "files": files,
        "ref": conversation_ref(fields, errors),
        "message": pk_ref(fields, "message", errors),
        "sender": _sender(fields, errors),
        "mode": opt_str(fields, "mode", errors) or "form_data",
        "metadata": metadata,
    }
    require_conversation(out["ref"], errors, via_message=out["message"] is not None)
    out["timestamp"], out["ts_us"] = timestamp(fields, errors)
    errors.raise_if_any()
    return out


def feedback(data: Mapping[str, Any], *, route: str) -> dict[str, Any]:
    """``/api/conversation-feedbacks/`` (legacy) and ``/api/feedbacks/`` (kinds)."""
    errors = Errors()
    kind = data.get("kind", "conversation") if route == "feedbacks" else "conversation"
    if kind not in FEEDBACK_KINDS:
        errors.add("kind", f'"{str(kind)[:64]}" is not a valid choice.')
    sentiment = data.get("sentiment")
    if sentiment not in SENTIMENTS:
        errors.add("sentiment", f'"{str(sentiment)[:64]}" is not a valid choice.')
    ref = conversation_ref(data, errors)
    message_pk = pk_ref(data, "message", errors)
    if kind == "conversation":
        require_conversation(ref, errors, via_message=False)
    if kind == "message" and message_pk is None:
        errors.add("message", "This field is required.")
    out: dict[str, Any] = {
        "kind": kind,
        "sentiment": sentiment,
        "ref": ref,
        "message": message_pk,
        "comment": opt_str(data, "comment", errors, max_len=MAX_COMMENT),
        # The legacy route documents that metadata is discarded; we keep it.
        "metadata": opt_object(data, "metadata", errors),
        "extra": {k: data[k] for k in ("topic", "reason", "agent", "environment") if k in data},
    }
    errors.raise_if_any()
    return out


# -- ingest ------------------------------------------------------------------------

#: An event of an ingest span: ``(name, timestamp as sent, UTC microseconds, attributes)``.
SpanEvent = tuple[Any, str, int, dict[str, Any]]


class IngestSpan(NamedTuple):
    """One validated ingest span: what its archive row and its projection read.

    :func:`ingest` builds it straight from the decoded JSON, reading each key
    once; ``raw`` is the span as received, for the archive.
    """

    span_id: str
    trace_id: str | None
    parent_span_id: str | None
    kind: str
    name: str | None
    started_at: str
    started_us: int
    ended_at: str | None
    ended_us: int | None
    duration_ms: float | None
    status: str | None
    attributes: dict[str, Any]
    events: list[SpanEvent]
    raw: dict[str, Any]


class IngestBlock(NamedTuple):
    """One validated conversation block of an ingest payload."""

    conversation_id: str
    #: The conversation's own fields the block sets (:data:`CONVERSATION_FIELDS`).
    fields: dict[str, Any]
    spans: list[IngestSpan]
    #: Whether a span of another kind than ``conversation`` marks the conversation used.
    used: bool
    #: The earliest and the latest time of a span (start, end) or event: ``(as sent, µs)``.
    first: tuple[str, int]
    last: tuple[str, int]


# ``tuple.__new__`` builds a named tuple without its keyword-argument machinery
# (about a third of the cost, once per span).
_new_span: Any = tuple.__new__


def ingest(payload: Any) -> list[IngestBlock]:
    """Validate a whole ``POST /api/ingest/`` payload before anything is written.

    Returns one :class:`IngestBlock` per conversation, or raises
    :class:`IngestValidationError` with the §3.5 body: at most
    ``MAX_LISTED_BLOCKS`` failing blocks, ``truncated`` when more failed.
    """
    if not isinstance(payload, dict):
        raise IngestValidationError({"detail": "Expected a JSON object with 'conversations'."})
    blocks = payload.get("conversations")
    if not isinstance(blocks, list):
        raise IngestValidationError({"detail": "'conversations' must be a list."})
    sdk = payload.get("sdk")
    if sdk is not None and not isinstance(sdk, dict):
        raise IngestValidationError({"detail": "'sdk' must be an object."})
    normalised: list[IngestBlock] = []
    failed: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        errors = Errors()
        result = _ingest_block(block, errors)
        if errors.fields:
            raw_id = block.get("conversation_id") if isinstance(block, dict) else None
            failed.append({"index": index, "conversation_id": raw_id, "errors": errors.fields})
        elif result is not None:
            normalised.append(result)
    if failed:
        total = len(failed)
        raise IngestValidationError(
            {
                "detail": f"Ingest rejected: {total} of {len(blocks)} conversation "
                "block(s) are invalid; nothing was stored.",
                "conversations": failed[:MAX_LISTED_BLOCKS],
                "truncated": total > MAX_LISTED_BLOCKS,
            }
        )
    return normalised


def _ingest_block(block: Any, errors: Errors) -> IngestBlock | None:
    if not isinstance(block, dict):
        errors.add("non_field_errors", "Expected a conversation object.")
        return None
    for key in block:
        if key not in INGEST_BLOCK_KEYS:
            errors.add(str(key), "Unknown field.")
    conversation_id = req_str(block, "conversation_id", errors)
    fields: dict[str, Any] = {}
    if len(block) != 2 or "spans" not in block or "conversation_id" not in block:
        # a block with fields besides its id and spans (or an incomplete one)
        for key in CONVERSATION_FIELDS:
            if key not in block:
                continue
            value = (
                opt_object(block, key, errors) if key == "metadata" else opt_str(block, key, errors)
            )
            if value is not None:
                fields[key] = value
        check_ip(fields.get("customer_ip_address"), errors)
        check_environment(block.get("environment"), errors)
    raw_spans = block.get("spans")
    spans: list[IngestSpan] = []
    if not isinstance(raw_spans, list):
        errors.add("spans", "Expected a list of spans.")
    else:
        for i, raw in enumerate(raw_spans):
            span = _span(raw, i, errors)
            if span is not None:
                spans.append(span)
    used = False
    for span in spans:
        if span.kind != "conversation":
            used = True
            break
    first, last = _time_range(spans)
    return IngestBlock(conversation_id, fields, spans, used, first, last)


def _time_range(spans: list[IngestSpan]) -> tuple[tuple[str, int], tuple[str, int]]:
    """The earliest and latest start, event or end of *spans* (now, without spans).

    Ordered by ``(µs, text)``, so of two spellings of one instant the smaller
    text wins.  An end or event time spelled as its span's start adds nothing.
    Once per span: the µs are compared first, the text only on a tie.
    """
    if not spans:
        now = _timeutil.now_at()
        return now, now
    lo_at = hi_at = spans[0].started_at
    lo_us = hi_us = spans[0].started_us
    for span in spans:
        start = span.started_at
        us = span.started_us
        if us < lo_us or (us == lo_us and start < lo_at):
            lo_us, lo_at = us, start
        if us > hi_us or (us == hi_us and start > hi_at):
            hi_us, hi_at = us, start
        end, end_us = span.ended_at, span.ended_us
        if end is not None and end_us is not None and end != start:
            if end_us < lo_us or (end_us == lo_us and end < lo_at):
                lo_us, lo_at = end_us, end
            if end_us > hi_us or (end_us == hi_us and end > hi_at):
                hi_us, hi_at = end_us, end
        for _, at, us, _ in span.events:
            if at != start:
                if us < lo_us or (us == lo_us and at < lo_at):
                    lo_us, lo_at = us, at
                if us > hi_us or (us == hi_us and at > hi_at):
                    hi_us, hi_at = us, at
    return (lo_at, lo_us), (hi_at, hi_us)


def _span(raw: Any, index: int, errors: Errors) -> IngestSpan | None:
    """One span, checked where it lies in the decoded JSON.

    The hot path of ingest (once per span): each key is read once, messages
    are only formatted on error, and a time equal to the span's start (its end
    and its events', usually) is not parsed again.
    """
    if not isinstance(raw, dict):
        errors.add("spans", f"span {index}: expected an object.")
        return None
    get = raw.get
    span_id = get("span_id")
    if not isinstance(span_id, str) or not span_id or len(span_id) > 64:
        errors.add("spans", f"span {index}: 'span_id' must be a non-empty string.")
        return None
    attributes = get("attributes") or {}
    events = get("events") or []
    if not isinstance(attributes, dict) or not isinstance(events, list):
        errors.add("spans", f"span {index}: 'attributes' must be an object and 'events' a list.")
        return None
    started_at = get("started_at")
    started_us = _span_time(started_at, index, "started_at", errors, required=True)
    ended_at = get("ended_at")
    if ended_at is None:
        ended_us = None
    elif ended_at == started_at and started_us is not None:
        ended_us = started_us
    else:
        ended_us = _span_time(ended_at, index, "ended_at", errors, required=False)
    if started_us is None:
        return None
    started_at = cast(str, started_at)  # a timestamp, since it parsed
    parsed_events: list[SpanEvent] = []
    for j, event in enumerate(events):
        ev_attrs = event.get("attributes") or {} if isinstance(event, dict) else None
        if not isinstance(ev_attrs, dict):
            errors.add("spans", f"span {index}: event {j} must be an object with attributes.")
            return None
        at = event.get("timestamp")
        if at is None or at == started_at:
            parsed_events.append((event.get("name"), started_at, started_us, ev_attrs))
            continue
        us = _span_time(at, index, f"event {j} timestamp", errors, required=False)
        if us is None:
            at, us = started_at, started_us
        parsed_events.append((event.get("name"), at, us, ev_attrs))
    kind = get("kind") or attributes.get("agentsight.span.kind") or "unknown"
    trace_id = get("trace_id")
    parent = get("parent_span_id")
    name = get("name")
    duration = get("duration_ms")
    status = get("status")
    span: IngestSpan = _new_span(
        IngestSpan,
        (
            span_id,
            trace_id if isinstance(trace_id, str) else None,
            parent if isinstance(parent, str) else None,
            kind[:64] if isinstance(kind, str) else str(kind)[:64],
            name if isinstance(name, str) else None,
            started_at,
            started_us,
            ended_at if ended_us is not None else None,
            ended_us,
            duration if isinstance(duration, (int, float)) else None,
            status if isinstance(status, str) else None,
            attributes,
            parsed_events,
            raw,
        ),
    )
    return span


def _span_time(value: Any, index: int, what: str, errors: Errors, *, required: bool) -> int | None:
    """UTC microseconds of a span's timestamp *value*; None (and an error) when it is not one."""
    if value is None:
        if required:
            errors.add("spans", f"span {index}: '{what}' is required.")
        return None
    if isinstance(value, str):
        try:
            return _timeutil.us_from_iso_cached(value)
        except ValueError:
            pass
    errors.add("spans", f"span {index}: '{what}' is not an ISO 8601 timestamp.")
    return None
