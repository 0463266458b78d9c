"""The reading-and-managing scenario: the same calls, told to every client.

Standard library only: imported by ``legacy_api_scenario.py`` inside the
published ``agentsight==0.0.44`` virtualenv (its ``agentsight_api`` and
``conversation_manager``) and by our tests (ours under the same names, and
our async clients).  Every call's outcome - the answer, or the exception's
class, message, status and body - is recorded as plain JSON-able data.

The calls run against a copy of one seeded collector database, so every
client starts from the same rows with the same pks.  They read with every
filter of ``fetch_conversations``, read one conversation by pk and by
``conversation_id``, list attachments, then manage (feedback, rename, mark,
update, soft delete, with good and bad input) and read the effects back.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timezone
from typing import Any

from compat_scenario import CHAT_ID, VISIT_ID  # same directory, on sys.path

#: Two more conversations beside the compatibility scenario's visit and chat.
OTHER_ID = "chat-456"
THIRD_ID = "chat-789"
EXTRA_CONVERSATIONS = {
    OTHER_ID: {
        "fields": {
            "name": "Billing question",
            "customer_id": "cust-42",
            "device": "desktop",
            "language": "de",
            "metadata": {"plan": "free"},
        },
        "messages": ["Why was I charged twice?", "One charge was refunded today."],
    },
    THIRD_ID: {
        "fields": {"name": "Password reset", "customer_id": "cust-9", "language": "en"},
        "messages": ["I forgot my password"],
    },
}
SEEDED_IDS = (VISIT_ID, CHAT_ID, OTHER_ID, THIRD_ID)
UNKNOWN_PK = 987654
UNKNOWN_ID = "no-such-chat"


def steps(pk: dict[str, int]) -> list[tuple[str, str, str, tuple[Any, ...], dict[str, Any]]]:
    """(label, client, method, args, kwargs); *pk* maps the seeded conversation ids to pks."""
    chat, visit, other = pk[CHAT_ID], pk[VISIT_ID], pk[OTHER_ID]
    lists = [
        ("list: all", {}),
        ("list: page 1 of size 2", {"page": 1, "page_size": 2}),
        ("list: page 2 of size 2", {"page": 2, "page_size": 2}),
        ("list: a page past the end", {"page": 9, "page_size": 2}),
        ("list: conversation_id", {"conversation_id": CHAT_ID}),
        ("list: customer_id", {"customer_id": "cust-42"}),
        ("list: name contains", {"name": "Support"}),
        (
            "list: started after (datetime)",
            {"started_at_after": datetime(2000, 1, 1, tzinfo=timezone.utc)},
        ),
        ("list: started before (str)", {"started_at_before": "2000-01-01T00:00:00+00:00"}),
        ("list: has_messages", {"has_messages": True}),
        ("list: has no messages", {"has_messages": False}),
        ("list: language", {"language": "en"}),
        ("list: device", {"device": "mobile"}),
        ("list: customer_ip_address", {"customer_ip_address": "203.0.113.9"}),
        ("list: message_contains", {"message_contains": "charged"}),
        ("list: action_name", {"action_name": "lookup_order"}),
        ("list: metadata", {"metadata": "plan:pro"}),
        ("list: is_marked false", {"is_marked": False}),
        ("list: has_feedback (none yet)", {"has_feedback": True}),
        ("list: an unknown sentiment", {"feedback_sentiment": "ecstatic"}),
    ]
    out: list[tuple[str, str, str, tuple[Any, ...], dict[str, Any]]] = [
        (label, "api", "fetch_conversations", (), kwargs) for label, kwargs in lists
    ]
    out += [
        ("one: by pk", "api", "fetch_conversation", (chat,), {}),
        ("one: by conversation_id", "api", "fetch_conversation", (CHAT_ID,), {}),
        ("one: unknown pk", "api", "fetch_conversation", (UNKNOWN_PK,), {}),
        ("one: unknown conversation_id", "api", "fetch_conversation", (UNKNOWN_ID,), {}),
        ("one: neither int nor str", "api", "fetch_conversation", (1.5,), {}),
        ("attachments: by pk", "api", "fetch_conversation_attachments", (chat,), {}),
        (
            "attachments: by conversation_id",
            "api",
            "fetch_conversation_attachments",
            (CHAT_ID,),
            {},
        ),
        ("attachments: unknown pk", "api", "fetch_conversation_attachments", (UNKNOWN_PK,), {}),
        # managing, good and bad input
        (
            "feedback: by conversation_id",
            "manager",
            "submit_feedback",
            (CHAT_ID, "positive"),
            {"comment": "Solved quickly", "metadata": {"via": "compat"}},
        ),
        ("feedback: by pk", "manager", "submit_feedback", (visit, "negative"), {}),
        ("feedback: unknown sentiment", "manager", "submit_feedback", (CHAT_ID, "ecstatic"), {}),
        ("feedback: unknown pk", "manager", "submit_feedback", (UNKNOWN_PK, "neutral"), {}),
        ("feedback: no conversation", "manager", "submit_feedback", ("", "neutral"), {}),
        (
            "rename: by conversation_id",
            "manager",
            "rename_conversation",
            (CHAT_ID, "  Refund handled  "),
            {},
        ),
        ("rename: by pk", "manager", "rename_conversation", (other, "Billing, answered"), {}),
        (
            "rename: unknown conversation_id",
            "manager",
            "rename_conversation",
            (UNKNOWN_ID, "x"),
            {},
        ),
        ("rename: blank name", "manager", "rename_conversation", (CHAT_ID, "   "), {}),
        ("rename: too long", "manager", "rename_conversation", (CHAT_ID, "n" * 256), {}),
        ("mark: by conversation_id", "manager", "mark_conversation", (CHAT_ID, True), {}),
        ("mark: unmark by pk", "manager", "mark_conversation", (other, False), {}),
        (
            "update: several fields",
            "manager",
            "update_conversation",
            (CHAT_ID,),
            {
                "customer_id": "cust-99",
                "device": "tablet",
                "language": "fr",
                "metadata": {"plan": "enterprise"},
            },
        ),
        ("update: nothing given", "manager", "update_conversation", (CHAT_ID,), {}),
        (
            "update: metadata not a dict",
            "manager",
            "update_conversation",
            (CHAT_ID,),
            {"metadata": "plan:pro"},
        ),
        ("delete: by conversation_id", "manager", "delete_conversation", (VISIT_ID,), {}),
        ("delete: unknown pk", "manager", "delete_conversation", (UNKNOWN_PK,), {}),
        # the effects, read back
        ("after: chat by pk", "api", "fetch_conversation", (chat,), {}),
        ("after: visit by pk", "api", "fetch_conversation", (visit,), {}),
        ("after: other by conversation_id", "api", "fetch_conversation", (OTHER_ID,), {}),
        ("after: deleted by conversation_id", "api", "fetch_conversation", (VISIT_ID,), {}),
        ("after: list", "api", "fetch_conversations", (), {}),
        ("after: marked", "api", "fetch_conversations", (), {"is_marked": True}),
        ("after: with feedback", "api", "fetch_conversations", (), {"has_feedback": True}),
        (
            "after: negative feedback",
            "api",
            "fetch_conversations",
            (),
            {"feedback_sentiment": "negative"},
        ),
        (
            "after: customer feedback",
            "api",
            "fetch_conversations",
            (),
            {"feedback_source": "customer"},
        ),
        ("after: renamed", "api", "fetch_conversations", (), {"name": "Refund handled"}),
        (
            "after: deleted is hidden",
            "api",
            "fetch_conversations",
            (),
            {"conversation_id": VISIT_ID},
        ),
        ("after: include_deleted", "api", "fetch_conversations", (), {"include_deleted": True}),
        (
            "after: rename the deleted one",
            "manager",
            "rename_conversation",
            (VISIT_ID, "Visit renamed"),
            {},
        ),
    ]
    return out


def describe(exc: BaseException) -> dict[str, Any]:
    """An exception as comparable data: its class (and bases), message, status and body."""
    return {
        "type": type(exc).__name__,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "message": str(exc),
        "status_code": getattr(exc, "status_code", None),
        "response_data": getattr(exc, "response_data", None),
    }


def _pks(read: Any) -> dict[str, int]:
    return {cid: read(cid)["id"] for cid in SEEDED_IDS}


def run_api_calls(api: Any, manager: Any) -> list[dict[str, Any]]:
    """Run every step with blocking clients; one ``{"call", "ok" | "error"}`` per step."""
    out = []
    for label, client, method, args, kwargs in steps(_pks(api.fetch_conversation)):
        call = getattr(api if client == "api" else manager, method)
        try:
            out.append({"call": label, "ok": call(*args, **kwargs)})
        except Exception as exc:
            out.append({"call": label, "error": describe(exc)})
    return out


async def run_api_calls_async(api: Any, manager: Any) -> list[dict[str, Any]]:
    """The same with async clients (each call awaited)."""
    pk = {cid: (await api.fetch_conversation(cid))["id"] for cid in SEEDED_IDS}
    out = []
    for label, client, method, args, kwargs in steps(pk):
        call = getattr(api if client == "api" else manager, method)
        assert inspect.iscoroutinefunction(call), method
        try:
            out.append({"call": label, "ok": await call(*args, **kwargs)})
        except Exception as exc:
            out.append({"call": label, "error": describe(exc)})
    return out
