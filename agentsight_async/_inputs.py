"""From a documented call's arguments to an event's ``(data, size)``.

One function per tracking method, shared by the async core and the sync
facade.  Each validates at the call site (see ``_validation``) and returns the
original SDK's item data plus a byte-size estimate; none touches the queues.
"""

from __future__ import annotations

from typing import Any

from . import _validation as v
from ._events import CONVERSATION_FIELDS
from ._exceptions import (
    ConversationTrackingException,
    InvalidAnswerDataException,
    InvalidConversationDataException,
    InvalidQuestionDataException,
)

Built = tuple[dict[str, Any], int]


def conversation(
    conversation_id: Any, fields: dict[str, Any], *, is_used: bool, default_environment: str | None
) -> Built:
    """The conversation item: every key present, unused ones ``None`` (as the original sent)."""
    cid = v.conversation_id(conversation_id)
    unknown = set(fields) - set(CONVERSATION_FIELDS)
    if unknown:
        raise InvalidConversationDataException(
            f"{sorted(unknown)[0]}: unexpected argument; a conversation takes "
            + ", ".join(CONVERSATION_FIELDS)
        )
    args = {k: fields.get(k) for k in CONVERSATION_FIELDS}
    if args["environment"] is None:
        args["environment"] = default_environment or "development"
    data, size = v.conversation_fields(**args)
    return {"conversation_id": cid, **data, "is_used": is_used}, size + len(cid)


def _metadata(metadata: Any, exc: type[ConversationTrackingException]) -> Built:
    if not metadata:
        if metadata is not None and not isinstance(metadata, dict):
            raise exc(f"metadata: must be a dict (a JSON object), got {v.type_name(metadata)}")
        return {}, 2
    return v.optional_metadata(metadata, exc)


def message(
    sender: str,
    text: Any,
    attachments: Any,
    attachment_mode: Any,
    metadata: Any,
    *,
    max_chars: int,
    max_attachment_bytes: int,
) -> Built:
    """A user (``end_user``) or agent message, optionally with linked attachments."""
    exc = InvalidQuestionDataException if sender == "end_user" else InvalidAnswerDataException
    content = v.check_text(text, "message", exc, max_chars)
    meta, msize = _metadata(metadata, exc)
    data: dict[str, Any] = {"content": content, "sender": sender, "metadata": meta}
    size = v.EVENT_OVERHEAD + len(content) + msize
    if attachments:
        att_mode = v.mode(attachment_mode, "attachment_mode")
        atts, asize = v.attachments(attachments, att_mode, max_attachment_bytes)
        data["attachments"] = atts
        data["attachment_mode"] = att_mode
        size += asize
    elif attachments is not None and not isinstance(attachments, list):
        raise exc(f"attachments: must be a list of dicts, got {v.type_name(attachments)}")
    return data, size


def action(
    action_name: Any,
    started_at: Any,
    ended_at: Any,
    duration_ms: Any,
    tools_used: Any,
    response: Any,
    error_msg: Any,
    metadata: Any,
    *,
    max_chars: int,
) -> Built:
    """An action or tool call; optional fields are present only when given."""
    exc = InvalidConversationDataException
    name = v.check_text(action_name, "action_name", exc, v.MAX_FIELD_CHARS)
    meta, size = _metadata(metadata, exc)
    data: dict[str, Any] = {"action_name": name, "metadata": meta}
    size += v.EVENT_OVERHEAD + len(name)
    start = v.iso_time(started_at, "started_at")
    end = v.iso_time(ended_at, "ended_at")
    if start is not None:
        data["started_at"] = start
    if end is not None:
        data["ended_at"] = end
    if start is not None and end is not None and v.parse_iso(end) < v.parse_iso(start):
        raise exc("ended_at: is earlier than started_at")
    duration = v.non_negative_number(duration_ms, "duration_ms")
    if duration is not None:
        data["duration_ms"] = duration
    if tools_used is not None:
        data["tools_used"], tsize = v.json_snapshot(tools_used, "tools_used", exc)
        size += tsize
    for key, value in (("response", response), ("error_msg", error_msg)):
        if value is not None:
            data[key] = v.check_text(value, key, exc, max_chars, allow_blank=True)
            size += len(data[key])
    return data, size


def button(button_event: Any, label: Any, value: Any, metadata: Any) -> Built:
    exc = InvalidConversationDataException
    data: dict[str, Any] = {
        "button_event": v.check_text(button_event, "button_event", exc, v.MAX_FIELD_CHARS),
        "label": v.check_text(label, "label", exc, v.MAX_FIELD_CHARS),
        "value": v.check_text(value, "value", exc, v.MAX_FIELD_CHARS),
    }
    data["metadata"], size = _metadata(metadata, exc)
    size += v.EVENT_OVERHEAD + len(data["button_event"]) + len(data["label"]) + len(data["value"])
    return data, size


def attachments(
    items: Any, sender: Any, metadata: Any, mode: Any, *, max_attachment_bytes: int
) -> Built:
    att_mode = v.mode(mode)
    atts, size = v.attachments(items, att_mode, max_attachment_bytes)
    meta, msize = _metadata(metadata, InvalidConversationDataException)
    data = {"attachments": atts, "metadata": meta, "mode": att_mode, "sender": v.sender(sender)}
    return data, size + msize


def token_usage(
    prompt_tokens: Any,
    completion_tokens: Any,
    total_tokens: Any,
    embedding_tokens: Any,
    model: Any,
    system: Any,
    *,
    cache_read_tokens: Any = 0,
    cache_write_tokens: Any = 0,
    reasoning_tokens: Any = 0,
    duration_ms: Any = None,
    requested_model: Any = None,
    operation: Any = None,
    streamed: Any = None,
    error: Any = None,
    usage_reported: bool = True,
) -> Built:
    """One LLM call's counts (a delta, never a running total) and what is known about it.

    ``prompt_tokens`` counts every input token, cached ones included (OpenAI's
    ``prompt_tokens``; Anthropic's ``input_tokens`` plus both cache counts), so
    ``cache_read_tokens`` and ``cache_write_tokens`` are parts of it, as
    ``reasoning_tokens`` is a part of ``completion_tokens``.  The breakdowns and
    the optional facts (model, duration, streamed, error ...) are present in
    the data only when given, so a plain ``track_token_usage()`` item keeps
    the original shape.
    """
    data: dict[str, Any] = {
        "prompt_tokens": v.token_count(prompt_tokens, "prompt_tokens"),
        "completion_tokens": v.token_count(completion_tokens, "completion_tokens"),
        "total_tokens": v.token_count(total_tokens, "total_tokens"),
        "embedding_tokens": v.token_count(embedding_tokens, "embedding_tokens"),
    }
    exc = InvalidConversationDataException
    details = {
        "cache_read_tokens": v.token_count(cache_read_tokens, "cache_read_tokens"),
        "cache_write_tokens": v.token_count(cache_write_tokens, "cache_write_tokens"),
        "reasoning_tokens": v.token_count(reasoning_tokens, "reasoning_tokens"),
    }
    if details["cache_read_tokens"] + details["cache_write_tokens"] > data["prompt_tokens"]:
        raise exc(
            "cache_read_tokens + cache_write_tokens: larger than prompt_tokens, which counts "
            "every input token, cached ones included"
        )
    if details["reasoning_tokens"] > data["completion_tokens"]:
        raise exc("reasoning_tokens: larger than completion_tokens, which includes them")
    data.update((k, n) for k, n in details.items() if n)
    size = v.EVENT_OVERHEAD
    for key, value in (
        ("model", model),
        ("system", system),
        ("requested_model", requested_model),
        ("operation", operation),
    ):
        if value is not None:
            data[key] = v.check_text(value, key, exc, v.MAX_FIELD_CHARS)
            size += len(data[key])
    duration = v.non_negative_number(duration_ms, "duration_ms")
    if duration is not None:
        data["duration_ms"] = duration
    if streamed is not None:
        if not isinstance(streamed, bool):
            raise exc(f"streamed: must be a bool, got {v.type_name(streamed)}")
        data["streamed"] = streamed
    if not usage_reported:
        data["usage_reported"] = False
    if error is not None:
        data["error"] = v.check_text(error, "error", exc, v.MAX_FIELD_CHARS * 4, allow_blank=True)
        size += len(data["error"])
    return data, size
