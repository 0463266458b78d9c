"""``rest``: the legacy per-item routes of §2, one request per event.

Within a conversation the items go out strictly in tracking order, one at a
time, because later items need the conversation's pk from the first.
Independent conversations of a batch run as concurrent chains, at most
``settings.max_concurrency`` at once per exporter (one connection each).

What we fix from the original client (§5) instead of copying it:

* the conversation pk is remembered per exporter (a bounded LRU), and resolved
  with an upsert ``POST /api/conversations/`` when an item needs it and none is
  known - so ``"conversation": null`` goes out only when the backend itself
  would not give us a pk;
* message-linked attachments carry the real ``conversation_id`` (the original
  sent ``"None"`` for agent messages), their tracking time rather than the send
  time, and standalone multipart uploads include ``conversation_id`` too;
* token usage is sent per tracked call, stamped with its tracking time, never
  as cumulative re-sends;
* 202/204 are success, not a reason to resend;
* every request carries ``Idempotency-Key: <event uuid>`` (``:attachments``
  appended for a message's linked upload), identical on every retry, and every
  body - multipart included - is byte-identical across retries.

A rejected item (a non-retryable 4xx) is reported and the chain continues with
the next item, as the original did.  When an item exhausts its retries the
chain stops: that item and every later item of the conversation in this batch
are reported ``retries_exhausted``, so nothing is ever delivered out of order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from .. import _events as ev_mod
from .._events import (
    CONVERSATION_FIELDS,
    TOKEN_DETAIL_KEYS,
    TOKEN_KEYS,
    Batch,
    ConversationBatch,
    Event,
    Outcome,
    event_uuid,
    iso_utc,
)
from .._exceptions import ConversationApiException
from ._client import (
    ROUTE_ACTION_LOGS,
    ROUTE_ATTACHMENTS,
    ROUTE_BUTTONS,
    ROUTE_CONVERSATIONS,
    ROUTE_TRACK,
    response_pk,
)
from ._http import HttpExporter
from ._multipart import LINKED_SUFFIX, b64_attachments, encode_multipart, raw_files
from ._retry import REJECTED, RETRIES_EXHAUSTED

#: Conversation keys sent on the conversation routes, in the legacy client's order
#: (``environment`` and ``metadata`` are handled apart).
CONVERSATION_KEYS: Final = tuple(
    k for k in CONVERSATION_FIELDS if k not in ("environment", "metadata")
)
#: Optional action fields, sent only when given (§2.3 ``/api/action_logs/``).
ACTION_OPTIONAL: Final = (
    "started_at",
    "ended_at",
    "duration_ms",
    "tools_used",
    "response",
    "error_msg",
)

_STOPPED: Final = Outcome(
    False,
    error="not sent: an earlier item of this conversation exhausted its retries",
    drop_reason=RETRIES_EXHAUSTED,
)


# --- pure body builders ------------------------------------------------------------


def conversation_body(
    ev: Event, *, is_used: bool, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``POST /api/conversations/``: every key present (unused ones null), as legacy.

    ``environment`` is left out when unknown, so the backend applies the agent's
    default instead of the legacy client's hard-coded ``"development"``.
    """
    data = ev.data
    body: dict[str, Any] = {"timestamp": ev.timestamp, "conversation_id": ev.conversation_id}
    for key in CONVERSATION_KEYS:
        body[key] = data.get(key)
    body["is_used"] = is_used
    environment = data.get("environment") or (fields or {}).get("environment")
    if environment is not None:
        body["environment"] = environment
    body["metadata"] = data.get("metadata")
    return body


def upsert_body(conv: ConversationBatch) -> dict[str, Any]:
    """The pk-resolving upsert: the fields we know, ``is_used`` true.

    It is only sent because an item (message, action, button ...) is about to
    be posted, and any such item means the conversation is being used - the
    same rule ingest applies to non-conversation spans.
    """
    body: dict[str, Any] = {"conversation_id": conv.conversation_id}
    for key in (*CONVERSATION_KEYS, "environment", "metadata"):
        if conv.fields.get(key) is not None:
            body[key] = conv.fields[key]
    body["is_used"] = True
    return body


def message_body(ev: Event, pk: int | None) -> dict[str, Any]:
    data = ev.data
    sender = data.get("sender") or ("end_user" if ev.kind == ev_mod.QUESTION else "agent")
    return {
        "timestamp": ev.timestamp,
        "content": data.get("content"),
        "sender": sender,
        "conversation_id": ev.conversation_id,
        "metadata": data.get("metadata") or {},
        "conversation": pk,
    }


def action_body(ev: Event, pk: int | None) -> dict[str, Any]:
    data = ev.data
    body: dict[str, Any] = {
        "timestamp": ev.timestamp,
        "action_name": data.get("action_name"),
        "conversation_id": ev.conversation_id,
        "metadata": data.get("metadata") or {},
    }
    for key in ACTION_OPTIONAL:
        if data.get(key) is not None:
            body[key] = data[key]
    body["conversation"] = pk
    return body


def button_body(ev: Event, pk: int | None) -> dict[str, Any]:
    data = ev.data
    return {
        "timestamp": ev.timestamp,
        "button_event": data.get("button_event"),
        "label": data.get("label"),
        "value": data.get("value"),
        "conversation_id": ev.conversation_id,
        "metadata": data.get("metadata") or {},
        "conversation": pk,
    }


def token_usage_body(ev: Event, pk: int | None) -> dict[str, Any]:
    """One call's usage as a ``token_usage`` action, at its tracking time.

    ``metadata`` holds the four original counters plus what else is known
    (breakdowns, model, provider as ``system``, streamed, error).  A call with
    a duration also carries the action's own ``started_at``/``ended_at``/
    ``duration_ms``, and a failed call its ``error_msg``, like any action.
    """
    data = ev.data
    metadata: dict[str, Any] = {k: int(data.get(k) or 0) for k in TOKEN_KEYS}
    for key in TOKEN_DETAIL_KEYS:
        if data.get(key):
            metadata[key] = int(data[key])
    for key in ("model", "system", "requested_model", "operation"):
        if data.get(key):
            metadata[key] = data[key]
    for key in ("streamed", "usage_reported", "error"):
        if data.get(key) is not None:
            metadata[key] = data[key]
    body: dict[str, Any] = {
        "timestamp": ev.timestamp,
        "action_name": "token_usage",
        "conversation_id": ev.conversation_id,
        "metadata": metadata,
    }
    duration = data.get("duration_ms")
    if duration is not None:
        body["started_at"] = iso_utc(ev.ts_ns - int(duration * 1_000_000))
        body["ended_at"] = ev.timestamp
        body["duration_ms"] = duration
    if data.get("error") is not None:
        body["error_msg"] = data["error"]
    body["conversation"] = pk
    return body


def attachment_mode(data: dict[str, Any]) -> str:
    """``base64`` or ``form_data``, from the item (raw bytes mean form data)."""
    mode = data.get("mode") or data.get("attachment_mode")
    if mode in ("base64", "form_data"):
        return str(mode)
    atts = data.get("attachments") or []
    if atts and isinstance(atts[0].get("data"), (bytes, bytearray)):
        return "form_data"
    return "base64"


def standalone_attachments_json(ev: Event, pk: int | None) -> dict[str, Any]:
    """Variant A: base64 JSON, not linked to a message."""
    data = ev.data
    return {
        "timestamp": ev.timestamp,
        "attachments": b64_attachments(list(data.get("attachments") or [])),
        "metadata": data.get("metadata") or {},
        "mode": "base64",
        "sender": data.get("sender") or "end_user",
        "conversation_id": ev.conversation_id,
        "conversation": pk,
    }


def linked_attachments_json(ev: Event, pk: int | None, message_pk: int) -> dict[str, Any]:
    """Variant B: base64 JSON linked to the message just created."""
    data = ev.data
    body: dict[str, Any] = {
        "timestamp": ev.timestamp,
        "attachments": b64_attachments(list(data.get("attachments") or [])),
        "message": message_pk,
    }
    if pk is not None:
        body["conversation"] = str(pk)
    body["conversation_id"] = ev.conversation_id
    body["sender"] = message_body(ev, pk)["sender"]
    body["metadata"] = data.get("metadata") or {}
    return body


def attachments_multipart(
    ev: Event, pk: int | None, *, message_pk: int | None = None
) -> tuple[bytes, str]:
    """Variants C (standalone) and D (``message_pk`` given) as multipart/form-data.

    Parts: ``timestamp``, ``conversation`` (only when the pk is known),
    ``conversation_id``, ``sender``, ``mode``, ``metadata`` (JSON text), the
    files ``attachment_0``..., then ``message`` for a linked upload.  The
    boundary derives from the event id, so a retry sends the same bytes.
    """
    data = ev.data
    if message_pk is not None:
        sender = message_body(ev, pk)["sender"]
    else:
        sender = data.get("sender") or "end_user"
    fields = [("timestamp", ev.timestamp)]
    if pk is not None:
        fields.append(("conversation", str(pk)))
    fields += [
        ("conversation_id", ev.conversation_id),
        ("sender", str(sender)),
        ("mode", "form_data"),
        ("metadata", json.dumps(data.get("metadata") or {}, ensure_ascii=False, allow_nan=False)),
    ]
    trailing = [("message", str(message_pk))] if message_pk is not None else []
    boundary = event_uuid(ev).replace("-", "") + ("1" if message_pk is not None else "0")
    return encode_multipart(
        fields, raw_files(list(data.get("attachments") or [])), trailing, boundary
    )


# --- the exporter ----------------------------------------------------------------------


class RestExporter(HttpExporter):
    """Delivers each event to its legacy REST route, conversation by conversation."""

    name = "rest"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # Shared by concurrent export() calls, so the bound holds per exporter.
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:
            self._sem = asyncio.Semaphore(self.settings.max_concurrency)
            self._sem_loop = loop
        return self._sem

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        sem = self._semaphore()

        async def run(conv: ConversationBatch) -> list[Outcome]:
            async with sem:
                return await self._chain(conv, deadline)

        return list(await asyncio.gather(*(run(c) for c in batch.conversations)))

    async def _chain(self, conv: ConversationBatch, deadline: float) -> list[Outcome]:
        outcomes: list[Outcome] = []
        stopped = False
        for ev in conv.events:
            if stopped:
                outcomes.append(_STOPPED)
                continue
            try:
                outcome, stop = await self._send_item(conv, ev, deadline)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or odd data: reject this item, keep going
                text = f"{ev.kind} could not be sent: {exc!r}"
                self.report(text)
                outcome = Outcome(False, error=text, drop_reason=REJECTED, exception=exc)
                stop = False
            outcomes.append(outcome)
            stopped = stop or outcome.drop_reason == RETRIES_EXHAUSTED
        return outcomes

    async def _send_item(
        self, conv: ConversationBatch, ev: Event, deadline: float
    ) -> tuple[Outcome, bool]:
        """Send one event; returns its outcome and whether the chain must stop."""
        key = event_uuid(ev)
        kind = ev.kind
        if kind in (ev_mod.CONVERSATION, ev_mod.CONVERSATION_OPENED):
            body = conversation_body(ev, is_used=kind == ev_mod.CONVERSATION, fields=conv.fields)
            outcome = await self.post(ROUTE_CONVERSATIONS, deadline, key, json=body)
            if outcome.ok:
                pk = response_pk(outcome.response)
                if pk is None:  # the legacy contract: a conversation answer must carry its id
                    text = "POST /api/conversations/ answered without an id"
                    self.report(text)
                    return Outcome(
                        False,
                        response=outcome.response,
                        error=text,
                        drop_reason=REJECTED,
                        exception=ConversationApiException(text),
                    ), False
                self.pks.put(ev.conversation_id, pk)
            return outcome, False

        pk_or_failure = await self._pk(conv, deadline)
        if isinstance(pk_or_failure, Outcome):  # could not even resolve: retries exhausted
            return pk_or_failure, True
        pk = pk_or_failure

        if kind in (ev_mod.QUESTION, ev_mod.ANSWER):
            outcome = await self.post(ROUTE_TRACK, deadline, key, json=message_body(ev, pk))
            if not outcome.ok or not ev.has_attachments:
                return outcome, False
            return outcome, await self._linked_attachments(ev, pk, outcome.response, deadline)
        if kind == ev_mod.ACTION:
            return await self.post(
                ROUTE_ACTION_LOGS, deadline, key, json=action_body(ev, pk)
            ), False
        if kind == ev_mod.BUTTON:
            return await self.post(ROUTE_BUTTONS, deadline, key, json=button_body(ev, pk)), False
        if kind == ev_mod.TOKEN_USAGE:
            body = token_usage_body(ev, pk)
            return await self.post(ROUTE_ACTION_LOGS, deadline, key, json=body), False
        if kind == ev_mod.ATTACHMENTS:
            if attachment_mode(ev.data) == "form_data":
                content, ctype = attachments_multipart(ev, pk)
                outcome = await self.post(ROUTE_ATTACHMENTS, deadline, key, raw=(content, ctype))
            else:
                body = standalone_attachments_json(ev, pk)
                outcome = await self.post(ROUTE_ATTACHMENTS, deadline, key, json=body)
            return outcome, False
        raise ValueError(f"unknown event kind {kind!r}")

    async def _linked_attachments(
        self, ev: Event, pk: int | None, message_answer: Any, deadline: float
    ) -> bool:
        """Upload a message's files linked to it; returns whether the chain must stop.

        A failure is reported but does not fail the message (it was delivered),
        as in the legacy client.  Exhausted retries still stop the chain.
        """
        message_pk = response_pk(message_answer)
        if message_pk is None:
            text = (
                "POST /api/track/ answered without an id; the message's attachments were not sent"
            )
            self.report(text)
            return False
        key = event_uuid(ev) + LINKED_SUFFIX
        if attachment_mode(ev.data) == "form_data":
            content, ctype = attachments_multipart(ev, pk, message_pk=message_pk)
            outcome = await self.post(ROUTE_ATTACHMENTS, deadline, key, raw=(content, ctype))
        else:
            body = linked_attachments_json(ev, pk, message_pk)
            outcome = await self.post(ROUTE_ATTACHMENTS, deadline, key, json=body)
        return outcome.drop_reason == RETRIES_EXHAUSTED

    async def _pk(self, conv: ConversationBatch, deadline: float) -> int | Outcome | None:
        """The conversation's pk: cached, or resolved by an upsert.

        Returns a failed Outcome only when the upsert exhausted its retries (the
        chain must stop); a rejected upsert gives None and the items go out
        with ``conversation: null`` for the backend to resolve by id.
        """
        pk = self.pks.get(conv.conversation_id)
        if pk is not None:
            return pk
        body = upsert_body(conv)
        outcome = await self.post(ROUTE_CONVERSATIONS, deadline, None, json=body)
        if outcome.drop_reason == RETRIES_EXHAUSTED:
            return outcome
        pk = response_pk(outcome.response) if outcome.ok else None
        if pk is not None:
            self.pks.put(conv.conversation_id, pk)
        return pk


__all__ = ["RestExporter"]
