"""Reading and managing: the published 0.0.44 ``agentsight_api`` and ``conversation_manager``.

Standard library only: imported by ``legacy_manage.py`` inside the 0.0.44
virtualenv, and by ``tests/compat/test_published_managers.py``, which seeds
:data:`SEED` into a fresh collector over HTTP before the client runs.

:func:`run` calls every method of both objects: first
``fetch_conversations`` with each filter on the seeded data
(:data:`FILTER_CASES`, with the rows each must return), the single fetches
and the attachment listings; then every management call; then reads that
show their effects.  It records what the client returned, and the exception
(class and message) where one is expected.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

#: conversation_id -> the body of ``POST /api/conversations/`` (times fixed, so
#: the started_at filters have known answers).
SEED: dict[str, dict[str, Any]] = {
    "m-1": {
        "name": "Parcel question",
        "customer_id": "u1",
        "customer_ip_address": "198.51.100.7",
        "device": "mobile",
        "language": "en",
        "environment": "production",
        "metadata": {"plan": "pro", "tier": 2},
        "timestamp": "2026-11-01T09:00:00+00:00",
    },
    "m-2": {
        "name": "Bonjour",
        "customer_id": "u2",
        "device": "desktop",
        "language": "fr",
        "metadata": {"plan": "free"},
        "timestamp": "2026-11-10T09:00:00+00:00",
    },
    "m-3": {"name": "Visit only", "customer_id": "u1", "timestamp": "2026-11-20T09:00:00+00:00"},
}
#: (conversation_id, sender, content, timestamp)
MESSAGES = (
    ("m-1", "end_user", "Where is my PARCEL?", "2026-11-01T09:01:00+00:00"),
    ("m-1", "agent", "It ships tomorrow.", "2026-11-01T09:02:00+00:00"),
    ("m-2", "end_user", "Bonjour, une question", "2026-11-10T09:01:00+00:00"),
)
#: (conversation_id, action_name)
ACTIONS = (("m-1", "track_parcel"), ("m-2", "translate"))
LABEL = b"%PDF-1.4 shipping label"
#: (conversation_id, filename, mime type, bytes)
ATTACHMENT = ("m-1", "label.pdf", "application/pdf", LABEL)

#: fetch_conversations() keyword arguments -> the conversation_ids they must return.
FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["m-1", "m-2", "m-3"]),
    ({"action_name": "track_parcel"}, ["m-1"]),
    ({"conversation_id": "m-2"}, ["m-2"]),
    ({"customer_id": "u1"}, ["m-1", "m-3"]),
    ({"customer_ip_address": "198.51.100.7"}, ["m-1"]),
    ({"device": "desktop"}, ["m-2"]),
    ({"has_messages": True}, ["m-1", "m-2"]),
    ({"has_messages": False}, ["m-3"]),
    ({"language": "fr"}, ["m-2"]),
    ({"message_contains": "parcel"}, ["m-1"]),
    ({"page": 2, "page_size": 2}, ["m-1"]),  # newest activity first: m-3, m-2 | m-1
    ({"page_size": 1}, ["m-3"]),
    ({"started_at_after": "2026-11-05T00:00:00+00:00"}, ["m-2", "m-3"]),
    ({"started_at_before": datetime(2026, 11, 15, tzinfo=timezone.utc)}, ["m-1", "m-2"]),
    (
        {
            "started_at_after": datetime(2026, 11, 5),  # naive: read as UTC
            "started_at_before": "2026-11-15T00:00:00Z",
        },
        ["m-2"],
    ),
    ({"is_marked": False}, ["m-1", "m-2", "m-3"]),
    ({"is_marked": True}, []),
    ({"name": "bonj"}, ["m-2"]),
    ({"include_deleted": True}, ["m-1", "m-2", "m-3"]),
    ({"metadata": "plan:pro"}, ["m-1"]),
    ({"metadata": "plan:pro,tier:2"}, ["m-1"]),
    ({"metadata": "plan:free,tier:2"}, []),
    ({"has_feedback": True}, []),
    ({"has_feedback": False}, ["m-1", "m-2", "m-3"]),
    ({"feedback_sentiment": "positive"}, []),
    ({"feedback_source": "customer"}, []),
]

#: What the management calls set (``update_conversation`` on m-2).
UPDATE = {
    "name": "Bonjour (updated)",
    "is_marked": True,
    "customer_id": "u9",
    "device": "tablet",
    "language": "de",
    "metadata": {"plan": "enterprise", "seats": 40},
}
#: After management: fetch_conversations() arguments -> the conversation_ids they must return.
AFTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["m-1", "m-2"]),  # m-3 was deleted
    ({"include_deleted": True}, ["m-1", "m-2", "m-3"]),
    ({"include_deleted": False}, ["m-1", "m-2"]),
    ({"is_marked": True}, ["m-1", "m-2"]),
    ({"name": "renamed"}, ["m-1"]),
    ({"customer_id": "u9"}, ["m-2"]),
    ({"device": "tablet", "language": "de"}, ["m-2"]),
    ({"metadata": "plan:enterprise,seats:40"}, ["m-2"]),
    ({"has_feedback": True}, ["m-1", "m-2"]),
    ({"has_feedback": False, "include_deleted": True}, ["m-3"]),
    ({"feedback_sentiment": "positive"}, ["m-1"]),
    ({"feedback_sentiment": "negative"}, ["m-2"]),
    ({"feedback_sentiment": "neutral"}, []),
    ({"feedback_source": "customer"}, ["m-1", "m-2"]),
    ({"feedback_source": "platform"}, []),
]


def attachment_body(pk: int) -> dict[str, Any]:
    """The seeded attachment as a ``POST /api/attachments/`` body (variant A)."""
    _, filename, mime, data = ATTACHMENT
    return {
        "conversation": pk,
        "timestamp": "2026-11-01T09:03:00+00:00",  # keeps the list order known
        "mode": "base64",
        "attachments": [
            {"filename": filename, "mime_type": mime, "data": base64.b64encode(data).decode()}
        ],
    }


def _ids(page: dict[str, Any]) -> list[str]:
    return sorted(c["conversation_id"] for c in page["results"])


def _error(call: Any) -> dict[str, Any]:
    """Run *call*, which must raise; its exception's class and message."""
    try:
        call()
    except Exception as exc:  # the client's own exception tree
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": None, "message": "no exception"}


def run(api: Any, manager: Any, pks: dict[str, int]) -> dict[str, Any]:
    """Every method of 0.0.44's ``agentsight_api`` and ``conversation_manager``.

    Args:
        api, manager: the published client's two singletons.
        pks: conversation_id -> pk of the seeded conversations.

    Returns:
        JSON-able results, keyed by step.
    """
    out: dict[str, Any] = {}
    out["filters"] = [_ids(api.fetch_conversations(**kwargs)) for kwargs, _ in FILTER_CASES]
    first_page = api.fetch_conversations(page_size=2)
    out["page"] = {k: first_page.get(k) for k in ("count", "next", "previous")}
    by_pk = api.fetch_conversation(pks["m-1"])
    by_id = api.fetch_conversation("m-1")
    out["fetch_by_pk"] = {
        "id": by_pk["id"],
        "name": by_pk["name"],
        "messages": [m["content"] for m in by_pk["messages"]],
    }
    out["fetch_by_id"] = {
        "id": by_id["id"],
        "name": by_id["name"],
        "messages": [m["content"] for m in by_id.get("messages", [])],
    }
    out["attachments_by_pk"] = api.fetch_conversation_attachments(pks["m-1"])
    out["attachments_by_id"] = api.fetch_conversation_attachments("m-1")
    out["fetch_missing"] = _error(lambda: api.fetch_conversation(999_999))
    out["fetch_missing_id"] = _error(lambda: api.fetch_conversation("no-such-conversation"))

    out["rename_by_id"] = manager.rename_conversation("m-1", "  Parcel question (renamed)  ")
    out["mark_by_pk"] = manager.mark_conversation(pks["m-1"], True)
    out["unmark_then_mark"] = [
        manager.mark_conversation("m-2", False)["is_marked"],
        manager.mark_conversation("m-2", True)["is_marked"],
    ]
    out["update_by_id"] = manager.update_conversation("m-2", **UPDATE)
    out["feedback_by_id"] = manager.submit_feedback(
        "m-1", "positive", comment="Found my parcel", metadata={"widget": "thumbs"}
    )
    out["feedback_by_pk"] = manager.submit_feedback(pks["m-2"], "negative")
    out["delete_by_id"] = manager.delete_conversation("m-3")
    out["rename_missing"] = _error(lambda: manager.rename_conversation("no-such-id", "x"))
    out["mark_missing_pk"] = _error(lambda: manager.mark_conversation(999_999, True))
    out["delete_deleted"] = _error(lambda: manager.delete_conversation("m-3"))

    out["after"] = [_ids(api.fetch_conversations(**kwargs)) for kwargs, _ in AFTER_CASES]
    out["deleted_by_pk"] = api.fetch_conversation(pks["m-3"])["is_deleted"]
    return out
