"""The original SDK's local return structures, built from events and results.

``send_tracked_data()`` → ``{"items": [...], "summary": {...}}`` and
``get_tracked_data_summary()`` → items with previews and counts, exactly as
§2.5 of the protocol reference describes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._events import SUMMARY_KEY, TOKEN_DETAIL_KEYS, TOKEN_KEYS, Event
from ._queues import Result


def send_report(results: Sequence[Result]) -> dict[str, Any]:
    """``send_tracked_data()``'s structure; *results* in tracking order."""
    summary = dict.fromkeys(
        ("questions", "answers", "attachments", "actions", "buttons", "errors"), 0
    )
    items: list[dict[str, Any]] = []
    for index, r in enumerate(results):
        rtype = r.event.result_type
        item: dict[str, Any] = {"index": index, "type": rtype, "timestamp": r.event.timestamp}
        if r.ok:
            item["response"] = r.response
            key = SUMMARY_KEY.get(rtype)
            if key:
                summary[key] += 1
        else:
            item["error"] = r.error or "not delivered"
            summary["errors"] += 1
        item["success"] = r.ok
        items.append(item)
    return {"items": items, "summary": summary}


def tracked_summary(conversation_id: str | None, events: Sequence[Event]) -> dict[str, Any]:
    """``get_tracked_data_summary()``'s structure; *events* in tracking order."""
    counts = dict.fromkeys(
        ("conversation", "questions", "answers", "attachments", "actions", "buttons"), 0
    )
    items = []
    for index, ev in enumerate(events):
        rtype = ev.result_type
        counts[SUMMARY_KEY.get(rtype, "conversation")] += 1
        items.append(
            {
                "type": rtype,
                "timestamp": ev.timestamp,
                "data": {**ev.data, "conversation_id": ev.conversation_id},
                "index": index,
                "preview": preview(rtype, ev.conversation_id, ev.data),
            }
        )
    return {
        "items": items,
        "summary": {**counts, "total": len(items)},
        "conversation_id": conversation_id,
    }


def token_usage(tokens: dict[str, int]) -> dict[str, int]:
    """``get_token_usage()``: all four counters, or ``{}`` when none was counted.

    The breakdowns (cache read/write, reasoning) follow when any call reported them.
    """
    if not tokens:
        return {}
    usage = {k: tokens.get(k, 0) for k in TOKEN_KEYS}
    usage.update((k, tokens[k]) for k in TOKEN_DETAIL_KEYS if tokens.get(k))
    return usage


def preview(rtype: str, conversation_id: str, data: dict[str, Any]) -> dict[str, Any]:
    if rtype == "conversation":
        return {
            "conversation_id": conversation_id,
            "customer_id": data.get("customer_id"),
            "name": data.get("name"),
            "environment": data.get("environment"),
        }
    if rtype in ("question", "answer"):
        content = data.get("content", "")
        return {
            "content_preview": content[:100] + ("..." if len(content) > 100 else ""),
            "sender": data.get("sender"),
            "has_metadata": bool(data.get("metadata")),
        }
    if rtype == "attachments":
        atts = data.get("attachments", [])
        files = [a.get("filename", "unknown") for a in atts[:3]]
        if len(atts) > 3:
            files.append(f"... and {len(atts) - 3} more")
        return {
            "count": len(atts),
            "mode": data.get("mode"),
            "sender": data.get("sender"),
            "files": files,
        }
    if rtype == "action":
        return {
            "action_name": data.get("action_name"),
            "duration_ms": data.get("duration_ms"),
            "has_error": bool(data.get("error_msg")),
            "has_response": bool(data.get("response")),
        }
    return {
        "label": data.get("label"),
        "value": data.get("value"),
        "event": data.get("button_event"),
    }
