"""Attachment bytes over REST, before the spans that describe them (§3.7, §4).

Ingest spans carry only file descriptors, so - as 0.1.4's ``upload_attachments``
does - the bytes go first: ``POST /api/conversations/`` (an upsert) for the
conversation's pk, then a base64 JSON ``POST /api/attachments/``.  The span
that follows says ``mode=base64``.  A standalone attachment whose upload fails
is dropped (its span would describe files the server lacks); a message whose
files fail is still delivered and the failure reported, as the legacy client
did.  The ``sqlite:///`` exporter stores the very same upload body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .. import _events as ev_mod
from .._events import ConversationBatch, Event, Outcome, event_uuid, iso_utc
from .._exceptions import ConversationApiException
from ._client import ROUTE_ATTACHMENTS, ROUTE_CONVERSATIONS, response_pk
from ._multipart import LINKED_SUFFIX, b64_attachments
from ._retry import REJECTED
from ._spans import LINKED_OFFSET_NS, block_fields

if TYPE_CHECKING:
    from ._http import HttpExporter

_WITH_FILES: Final = (ev_mod.ATTACHMENTS, ev_mod.QUESTION, ev_mod.ANSWER)


def upsert_body(conv: ConversationBatch) -> dict[str, Any]:
    """The ``POST /api/conversations/`` upsert that yields the pk: id and known fields."""
    return {"conversation_id": conv.conversation_id, **block_fields(conv)}


def attachment_timestamp(ev: Event) -> str:
    """When files are stamped: a message's own files just after the message
    (where their span starts)."""
    if ev.kind == ev_mod.ATTACHMENTS:
        return iso_utc(ev.ts_ns)
    return iso_utc(ev.ts_ns + LINKED_OFFSET_NS)


def attachment_upload(ev: Event, conversation_id: str, pk: int) -> tuple[dict[str, Any], str]:
    """The base64 ``POST /api/attachments/`` body for an event's files, and its idempotency key.

    Args:
        ev: an ``attachments`` event, or a message with ``attachments``.
        conversation_id: the conversation's own id.
        pk: the conversation's backend pk (sent as a string, as 0.1.4 does).
    """
    data = ev.data
    sender = data.get("sender") or ("agent" if ev.kind == ev_mod.ANSWER else "end_user")
    body = {
        "conversation": str(pk),
        "conversation_id": conversation_id,
        "timestamp": attachment_timestamp(ev),
        "mode": "base64",
        "sender": sender,
        "metadata": data.get("metadata") or {},
        "attachments": b64_attachments(list(data["attachments"])),
    }
    key = event_uuid(ev) + (LINKED_SUFFIX if ev.kind != ev_mod.ATTACHMENTS else "")
    return body, key


async def upload_block(
    exporter: HttpExporter, conv: ConversationBatch, deadline: float, slots: list[Outcome | None]
) -> tuple[frozenset[int], frozenset[int]]:
    """Upload every attachment of a conversation's events, in order.

    Args:
        exporter: posts the requests (retries, reporting, the pk cache).
        conv: the conversation's share of the batch.
        deadline: no attempt starts after it.
        slots: the block's outcomes; a dropped standalone attachment's is set.

    Returns:
        The indexes to leave out of the block, and those whose bytes were uploaded.
    """
    skip: set[int] = set()
    uploaded: set[int] = set()
    for i, ev in enumerate(conv.events):
        if not ev.has_attachments or ev.kind not in _WITH_FILES:
            continue
        failure = await _upload(exporter, conv, ev, deadline)
        if failure is None:
            uploaded.add(i)
        elif ev.kind == ev_mod.ATTACHMENTS:
            skip.add(i)
            slots[i] = failure
        # a message is still delivered; its attachment failure was reported
    return frozenset(skip), frozenset(uploaded)


async def _upload(
    exporter: HttpExporter, conv: ConversationBatch, ev: Event, deadline: float
) -> Outcome | None:
    """Upsert the conversation for its pk (unless known), then POST the files."""
    cid = conv.conversation_id
    pk = exporter.pks.get(cid)
    if pk is None:
        answer = await exporter.post(ROUTE_CONVERSATIONS, deadline, json=upsert_body(conv))
        if not answer.ok:
            return answer
        pk = response_pk(answer.response)
        if pk is None:
            text = "POST /api/conversations/ answered without an id; attachments not uploaded"
            exporter.report(text)
            exc = ConversationApiException(text)
            return Outcome(False, error=text, drop_reason=REJECTED, exception=exc)
        exporter.pks.put(cid, pk)
    body, key = attachment_upload(ev, cid, pk)
    outcome = await exporter.post(ROUTE_ATTACHMENTS, deadline, key, json=body)
    return None if outcome.ok else outcome
