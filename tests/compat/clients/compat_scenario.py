"""The compatibility scenario: one conversation, told to every client.

Plain data and one driver, standard library only: this file is imported by the
scripts that run inside the published clients' virtualenvs (0.0.44 and 0.1.4,
which cannot import ``agentsight_async``) and by our own tests, so every client
is told exactly the same story.

The seed flow (:data:`SEED_STEPS`) is the original ``ConversationTracker`` API
as documented in ``SEED_API.md`` and as ``captures/legacy_0.0.44.jsonl`` shows
it being used: a visit (``initialize_conversation``), then a used conversation
with messages, an action (timing, tools, response), a failed action, a button,
standalone base64 and form-data attachments, attachments linked to messages,
token usage, and two ``send_tracked_data()`` calls.  Both 0.0.44's
``conversation_tracker`` and our ``ConversationTracker`` /
``AsyncConversationTracker`` run it through :func:`run_seed_steps`.

0.1.4 has a different API (scopes, turns, ``@tool``); ``v014_scenario.py``
tells the same story with it from the same constants.
"""

from __future__ import annotations

import base64
from typing import Any

VISIT_ID = "chat-visit-1"
VISIT = {
    "customer_id": "cust-7",
    "customer_ip_address": "203.0.113.9",
    "device": "desktop",
    "source": "web",
    "language": "en",
    "name": "Widget opened",
    "environment": "development",
    "metadata": {"page": "/pricing"},
}

CHAT_ID = "chat-123"
CHAT = {
    "customer_id": "cust-42",
    "device": "mobile",
    "language": "en",
    "name": "Support Chat",
    "environment": "production",
    "metadata": {"plan": "pro", "tier": 2},
}

NOTE = b"hello attachment"
CSV = b"a,b\n1,2\n"
# A 1x1 PNG: tracked without a filename, so the clients name it from its type.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PHOTO = PNG + b"photo"  # distinct bytes for the message-linked upload
LABEL = b"RETURN LABEL"
INVOICE = b"INVOICE 42"

ORDER_ARGS = {"order_id": "A-1001"}
LOOKUP = {
    "action_name": "lookup_order",
    "started_at": "2025-06-01T10:00:00+00:00",
    "ended_at": "2025-06-01T10:00:01.250000+00:00",
    "duration_ms": 1250,
    # The shape 0.1.4's @tool records (the bound call arguments), so the same
    # value is comparable across all clients.
    "tools_used": ORDER_ARGS,
    "response": "Order A-1001: shipped",
    "metadata": {"source": "scenario"},
}
REFUND = {
    "action_name": "refund_order",
    "duration_ms": 300,
    "tools_used": ORDER_ARGS,
    "error_msg": "refund service down",
}
BUTTON = {
    "button_event": "satisfaction",
    "label": "Yes",
    "value": "yes",
    "metadata": {"position": 1},
}

# (prompt, completion, total, embedding) per LLM call
TOKEN_CALLS = [(100, 25, 125, 0), (30, 10, 40, 8)]
MODEL = "gpt-4o-mini"
SYSTEM = "openai"

GREETING = "Hi, I need help with my order"
ASK_ORDER = "Sure! What's your order number?"
GIVE_ORDER = "It's A-1001"
SHIPPED = "Your order A-1001 has shipped."
PHOTO_MSG = "Here is a photo of the damage"
LABEL_MSG = "Thanks, here is your return label"
INVOICE_MSG = "And the invoice"
BYE = "Thanks, that's all"  # tracked after the first send


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _token_step(call: tuple[int, int, int, int]) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    return ("track_token_usage", call, {})


#: (method, args, kwargs) in tracking order; "send_tracked_data" marks a send.
SEED_STEPS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("initialize_conversation", (VISIT_ID,), dict(VISIT)),
    ("get_or_create_conversation", (CHAT_ID,), dict(CHAT)),
    ("track_human_message", (GREETING,), {}),
    ("track_agent_message", (ASK_ORDER,), {"metadata": {"template": "ask_order"}}),
    ("track_human_message", (GIVE_ORDER,), {}),
    ("track_action", (), dict(LOOKUP)),
    _token_step(TOKEN_CALLS[0]),
    ("track_action", (), dict(REFUND)),
    ("track_agent_message", (SHIPPED,), {}),
    ("track_button", (), dict(BUTTON)),
    (
        "track_attachments",
        ([{"filename": "note.txt", "mime_type": "text/plain", "data": b64(NOTE)}],),
        {"metadata": {"kind": "base64-standalone"}, "mode": "base64"},
    ),
    (
        "track_attachments",
        ([{"filename": "report.csv", "mime_type": "text/csv", "data": CSV}, {"data": PNG}],),
        {"sender": "agent", "metadata": {"kind": "form-standalone"}, "mode": "form_data"},
    ),
    (
        "track_human_message",
        (PHOTO_MSG,),
        {
            "attachments": [
                {"filename": "damage.png", "mime_type": "image/png", "data": b64(PHOTO)}
            ],
            "attachment_mode": "base64",
            "metadata": {"channel": "web"},
        },
    ),
    _token_step(TOKEN_CALLS[1]),
    (
        "track_agent_message",
        (LABEL_MSG,),
        # the seed's documented form-data shape: bytes and a filename, no type
        {"attachments": [{"filename": "label.txt", "data": LABEL}], "attachment_mode": "form_data"},
    ),
    (
        "track_agent_message",
        (INVOICE_MSG,),
        {
            "attachments": [
                {"filename": "invoice.txt", "mime_type": "text/plain", "data": b64(INVOICE)}
            ],
            "attachment_mode": "base64",
        },
    ),
    ("send_tracked_data", (), {}),
    ("track_human_message", (BYE,), {}),
    ("send_tracked_data", (), {}),
]


def run_seed_steps(tracker: Any) -> list[Any]:
    """Drive a tracker with the seed API synchronously; return each send's result."""
    sends = []
    for method, args, kwargs in SEED_STEPS:
        result = getattr(tracker, method)(*args, **kwargs)
        if method == "send_tracked_data":
            sends.append(result)
    return sends


async def run_seed_steps_async(tracker: Any) -> list[Any]:
    """The same, awaiting each call (``AsyncConversationTracker``)."""
    sends = []
    for method, args, kwargs in SEED_STEPS:
        result = await getattr(tracker, method)(*args, **kwargs)
        if method == "send_tracked_data":
            sends.append(result)
    return sends
