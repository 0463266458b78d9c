"""``ingest``: batches of conversation blocks to ``POST /api/ingest/`` (§3).

Each batch becomes one payload ``{"sdk": ..., "conversations": [block, ...]}``
where a block carries the conversation's fields and one span per event
(the §4 mapping).  Decisions worth knowing:

* **One turn per message.**  A question or answer becomes its own complete
  ``turn`` span named ``message`` (what 0.1.4 emits for a message outside a
  turn) whose span id is the event's id.  Grouping consecutive messages into
  one turn would make the span depend on where the flusher cut the batches: a
  batch re-cut after a cancelled export would produce a *different* turn for
  the same messages, defeating the server's ``(conversation, span_id)`` dedupe.
  Per-message turns keep every span a pure function of its event.
* **Ids.**  ``span_id`` is the event id; ``trace_id`` is the tracking time in
  nanoseconds followed by that id (32 hex, unique, time-ordered, the same on
  every retry).  Because the trace id is not random, ``trace_flags`` is 1
  (sampled) rather than 3 (W3C "random trace id").  A tool or LLM span joins
  the trace of the latest message turn *in the same batch and block* (so the
  turn arrives in the same payload, as the server wants); otherwise it is a
  top-level span with its own trace.
* **Bytes first, spans second.**  Attachment bytes cannot travel in a span, so
  they are uploaded over REST (``POST /api/conversations/`` upsert for the pk,
  then base64 ``POST /api/attachments/``) before the batch is posted; the span
  then describes the files with ``mode=base64``.  A standalone attachment whose
  upload fails is dropped (its span would describe files the server lacks); a
  message whose attachments fail is still delivered and the failure reported,
  as the legacy client did.
* **One serialisation per batch, off the hot spots.**  :class:`BlockEncoder`
  writes each block's JSON directly - exactly the bytes ``pydantic_core.to_json``
  gives for :func:`build_block`'s dicts (tests hold them equal), with what all
  spans of a block share serialised once - in ~3 µs per message instead of
  ~20.  The batch is built in slices that yield to the event loop, and a large
  body is gzipped (level 1) in a worker thread.  The bytes are reused by every
  retry.
* **Per-block 400.**  A 400 whose body lists offending blocks drops exactly
  those blocks and resends the rest as a new payload; a 400 without that list
  rejects the batch.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
import uuid
from typing import Any, Final

import httpx
import pydantic_core

from .. import _events as ev_mod
from .._events import (
    CONVERSATION_FIELDS,
    Batch,
    ConversationBatch,
    Event,
    Outcome,
    iso_utc,
    ns_from_iso,
    span_id,
)
from .._exceptions import ConversationApiException
from .._version import __version__
from . import _http
from ._retry import REJECTED, RetryFailure, is_success

logger = logging.getLogger("agentsight_async")

#: Bodies larger than this are gzipped, if the backend said it can take them.
GZIP_THRESHOLD: Final = 8192
#: zlib level 1.  On a 500-message batch (~550 KB of JSON) level 1 took ~1.1 ms of CPU
#: for ~17.8 KB, level 6 ~2.4 ms for ~14.6 KB (min of 25 runs; 5-8 ms under load).
#: Twice the CPU for 18% fewer bytes is a bad trade inside the agent's process, and
#: the server cannot tell the levels apart.
GZIP_LEVEL: Final = 1
GZIP_CAPABILITY: Final = "gzip-ingest"
PREFLIGHT_TIMEOUT: Final = 10.0
#: Building a batch yields to the event loop once it has run this long (seconds)...
SLICE_SECONDS: Final = 0.0005
#: ...checked every this many spans (a message span costs a few microseconds).
SLICE_CHECK: Final = 16
#: Bodies at least this large are gzipped in a worker thread, not on the loop.
OFFLOAD_GZIP_BYTES: Final = 64 * 1024

#: Block keys the server accepts besides conversation_id/spans (it rejects unknown keys):
#: exactly the conversation fields the tracker records.
BLOCK_FIELDS: Final = CONVERSATION_FIELDS
#: Block key -> span attribute, where they differ.
_ATTR_NAME: Final = {"customer_ip_address": "customer_ip"}

_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF


# --- pure mapping -------------------------------------------------------------------


#: How far after its message a message's attachments are stamped (1 µs).
LINKED_OFFSET_NS = 1000


def trace_id_for(ts_ns: int, sid: str) -> str:
    """32 hex: tracking time then span id; stable and unique per top-level span."""
    return f"{ts_ns & _MASK64:016x}{sid}"


def derived_span_id(sid: str, purpose: str) -> str:
    """A second stable span id for an event that yields two spans (message + files)."""
    return hashlib.blake2b(f"{sid}:{purpose}".encode(), digest_size=8).hexdigest()


def block_fields(conv: ConversationBatch) -> dict[str, Any]:
    """The block's conversation fields: non-null values, later wins, tracker's last.

    Conversation events of the batch contribute in order; ``conv.fields`` (the
    tracker's latest view) is applied last.  Only keys the server accepts.
    """
    merged: dict[str, Any] = {}
    for ev in conv.events:
        if ev.kind in (ev_mod.CONVERSATION, ev_mod.CONVERSATION_OPENED):
            merged.update((k, ev.data.get(k)) for k in BLOCK_FIELDS if ev.data.get(k) is not None)
    merged.update((k, conv.fields[k]) for k in BLOCK_FIELDS if conv.fields.get(k) is not None)
    return merged


def conversation_attributes(conversation_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``agentsight.conversation.*`` attributes carried by every span of a block."""
    attrs: dict[str, Any] = {"agentsight.conversation.id": conversation_id}
    for key in BLOCK_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        name = _ATTR_NAME.get(key, key)
        attrs[f"agentsight.conversation.{name}"] = (
            _http.dumps_attr(value) if key == "metadata" else value
        )
    return attrs


def action_window(data: dict[str, Any], ts_ns: int) -> tuple[int, int]:
    """Start and end of an action span, from what the user gave (§4 ``track_action``).

    Both times given: used as is.  One time and ``duration_ms``: the other is
    derived.  Only ``duration_ms``: the action starts at the tracking time, so
    it keeps its place among the conversation's items (the original SDK also
    stamped actions with their tracking time).  Nothing: a zero-length span at
    the tracking time.  Never negative.
    """
    start = ns_from_iso(data.get("started_at"))
    end = ns_from_iso(data.get("ended_at"))
    dur_ms = data.get("duration_ms")
    dur_ns = (
        int(dur_ms * 1_000_000)
        if isinstance(dur_ms, (int, float)) and not isinstance(dur_ms, bool) and dur_ms >= 0
        else None
    )
    if start is not None and end is None:
        end = start + dur_ns if dur_ns is not None else max(start, ts_ns)
    elif end is not None and start is None:
        start = end - dur_ns if dur_ns is not None else end
    elif start is None and end is None:
        start = ts_ns
        end = ts_ns + dur_ns if dur_ns is not None else ts_ns
    if start is None or end is None:  # pragma: no cover - every branch above sets both
        raise AssertionError("unreachable")
    return start, max(start, end)


def _answers_by_conversation(answer: Any) -> dict[str, Any]:
    """Per-conversation entries of an ingest answer, when the server lists them.

    The protocol leaves the success body undocumented; ours (and the local
    collector's) lists ``{"conversation_id", "id", ...}`` per block, so an item's
    ``send_tracked_data()`` response can carry its conversation's pk as over REST.
    """
    entries = answer.get("conversations") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        return {}
    return {
        e["conversation_id"]: e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("conversation_id"), str)
    }


def attachment_upload(ev: Event, conversation_id: str, pk: int) -> tuple[dict[str, Any], str]:
    """The base64 ``POST /api/attachments/`` body for an event's files, and its idempotency key.

    Ingest carries only descriptors, so the bytes go first over REST (as 0.1.4's
    ``upload_attachments``); the local ``sqlite:///`` store takes the same body.
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
        "attachments": _http.b64_attachments(list(data["attachments"])),
    }
    key = ev_mod.event_uuid(ev) + (":attachments" if ev.kind != ev_mod.ATTACHMENTS else "")
    return body, key


def attachment_timestamp(ev: Event) -> str:
    """When files are stamped: a message's own files just after the message."""
    if ev.kind == ev_mod.ATTACHMENTS:
        return iso_utc(ev.ts_ns)
    return iso_utc(ev.ts_ns + LINKED_OFFSET_NS)


def decoded_size(data: Any) -> int:
    """Bytes of an attachment's content: raw bytes, or a base64 string's decoded length."""
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, str):
        return len(data) * 3 // 4 - data[-2:].count("=")
    return 0


def file_descriptors(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "filename": att.get("filename"),
            "size": decoded_size(att.get("data")),
            "mime_type": att.get("mime_type"),
        }
        for att in attachments
    ]


class SpanBuilder:
    """Builds the spans of one block; holds what every span shares."""

    def __init__(self, conversation_id: str, fields: dict[str, Any], otel: dict[str, Any]):
        self.conv_attrs = conversation_attributes(conversation_id, fields)
        self.otel = otel
        self.turn: tuple[str, str] | None = None  # (span id, trace id) of the latest turn
        #: Start (ns) of every span built so far, in build order: the sort key.
        self.starts: list[int] = []

    def span(
        self,
        *,
        sid: str,
        trace: str,
        kind: str,
        name: str,
        start_ns: int,
        end_ns: int,
        status: str = "unset",
        attrs: dict[str, Any] | None = None,
        events: list[dict[str, Any]] | None = None,
        parent: str | None = None,
        status_description: str | None = None,
    ) -> dict[str, Any]:
        attributes = dict(self.conv_attrs)
        attributes["agentsight.span.kind"] = kind
        attributes["agentsight.entity.name"] = name
        if attrs:
            # Values go whole: the backend applies its own limits (§3.4 - plain
            # strings cut at 16,384 characters, JSON strings shrunk so that they
            # still parse). Cutting here would break JSON attributes.
            attributes.update(attrs)
        otel = self.otel
        if status_description is not None:
            otel = {**otel, "status_description": status_description}
        self.starts.append(start_ns)
        started = iso_utc(start_ns)
        return {
            "span_id": sid,
            "trace_id": trace,
            "parent_span_id": parent,
            "kind": kind,
            "name": name,
            "started_at": started,
            "ended_at": started if end_ns == start_ns else iso_utc(end_ns),
            "duration_ms": round((end_ns - start_ns) / 1e6, 3),
            "status": status,
            "attributes": attributes,
            "events": events or [],
            "otel": otel,
        }

    def child_of_turn(self) -> tuple[str | None, str | None, dict[str, Any]]:
        if self.turn is None:
            return None, None, {}
        tsid, ttrace = self.turn
        return tsid, ttrace, {"agentsight.turn.id": tsid}

    def spans_for(self, ev: Event, uploaded: bool) -> list[dict[str, Any]]:
        """The span(s) of one event; *uploaded* says its attachment bytes reached the server."""
        sid = span_id(ev)
        ts = ev.ts_ns
        data = ev.data
        kind = ev.kind
        if kind in (ev_mod.QUESTION, ev_mod.ANSWER):
            sender = data.get("sender") or ("end_user" if kind == ev_mod.QUESTION else "agent")
            msg_attrs: dict[str, Any] = {
                "agentsight.message.sender": sender,
                "agentsight.message.content": data.get("content", ""),
            }
            if data.get("metadata"):
                msg_attrs["agentsight.message.metadata"] = _http.dumps_attr(data["metadata"])
            trace = trace_id_for(ts, sid)
            self.turn = (sid, trace)
            spans = [
                self.span(
                    sid=sid,
                    trace=trace,
                    kind="turn",
                    name="message",
                    start_ns=ts,
                    end_ns=ts,
                    status="ok",
                    attrs={"agentsight.turn.id": sid, "agentsight.turn.complete": True},
                    events=[
                        {
                            "name": "agentsight.message",
                            "timestamp": iso_utc(ts),
                            "attributes": msg_attrs,
                        }
                    ],
                )
            ]
            if data.get("attachments") and uploaded:
                asid = derived_span_id(sid, "attachments")
                # one microsecond after its message, so transcripts list it second
                ats = ts + LINKED_OFFSET_NS
                spans.append(
                    self._attachment_span(asid, trace_id_for(ats, asid), ats, data, sender, True)
                )
            return spans
        if kind == ev_mod.ATTACHMENTS:
            sender = data.get("sender") or "end_user"
            return [self._attachment_span(sid, trace_id_for(ts, sid), ts, data, sender, uploaded)]
        if kind == ev_mod.ACTION:
            start, end = action_window(data, ts)
            parent, turn_trace, attrs = self.child_of_turn()
            name = str(data.get("action_name") or "action")
            attrs["agentsight.tool.name"] = name
            if data.get("tools_used") is not None:
                attrs["agentsight.tool.arguments"] = _http.dumps_attr(data["tools_used"])
            if data.get("response") is not None:
                attrs["agentsight.tool.response"] = str(data["response"])
            error = data.get("error_msg")
            if error is not None:
                attrs["agentsight.tool.error"] = str(error)
            if data.get("metadata"):
                attrs["agentsight.metadata"] = _http.dumps_attr(data["metadata"])
            return [
                self.span(
                    sid=sid,
                    trace=turn_trace or trace_id_for(ts, sid),
                    kind="tool",
                    name=name,
                    start_ns=start,
                    end_ns=end,
                    status="error" if error is not None else "ok",
                    attrs=attrs,
                    parent=parent,
                    status_description=str(error) if error is not None else None,
                )
            ]
        if kind == ev_mod.BUTTON:
            name = str(data.get("label") or data.get("button_event") or "button")
            attrs = {
                "agentsight.button.event": data.get("button_event"),
                "agentsight.button.label": data.get("label"),
                "agentsight.button.value": data.get("value"),
            }
            if data.get("metadata"):
                attrs["agentsight.metadata"] = _http.dumps_attr(data["metadata"])
            return [
                self.span(
                    sid=sid,
                    trace=trace_id_for(ts, sid),
                    kind="button",
                    name=name,
                    start_ns=ts,
                    end_ns=ts,
                    attrs=attrs,
                )
            ]
        if kind == ev_mod.TOKEN_USAGE:
            parent, turn_trace, attrs = self.child_of_turn()
            system = data.get("system") or "unknown"
            model = data.get("model")
            attrs["gen_ai.system"] = system
            attrs["gen_ai.usage.input_tokens"] = int(data.get("prompt_tokens") or 0)
            attrs["gen_ai.usage.output_tokens"] = int(data.get("completion_tokens") or 0)
            if model:
                attrs["gen_ai.request.model"] = model
            if data.get("embedding_tokens"):
                attrs["agentsight.llm.embedding_tokens"] = int(data["embedding_tokens"])
            return [
                self.span(
                    sid=sid,
                    trace=turn_trace or trace_id_for(ts, sid),
                    kind="llm",
                    name=str(model or system),
                    start_ns=ts,
                    end_ns=ts,
                    attrs=attrs,
                    parent=parent,
                )
            ]
        if kind in (ev_mod.CONVERSATION, ev_mod.CONVERSATION_OPENED):
            name = "conversation_opened" if kind == ev_mod.CONVERSATION_OPENED else "conversation"
            return [
                self.span(
                    sid=sid,
                    trace=trace_id_for(ts, sid),
                    kind="conversation",
                    name=name,
                    start_ns=ts,
                    end_ns=ts,
                )
            ]
        raise ValueError(f"unknown event kind {kind!r}")

    def _attachment_span(
        self, sid: str, trace: str, ts: int, data: dict[str, Any], sender: str, uploaded: bool
    ) -> dict[str, Any]:
        files = file_descriptors(list(data.get("attachments") or []))
        attrs: dict[str, Any] = {"agentsight.attachment.sender": sender}
        if uploaded:
            attrs["agentsight.attachment.mode"] = "base64"
        attrs["agentsight.attachment.count"] = len(files)
        attrs["agentsight.attachment.files"] = _http.dumps_attr(files)
        if data.get("metadata"):
            attrs["agentsight.metadata"] = _http.dumps_attr(data["metadata"])
        name = f"{len(files)} attachment(s)"
        return self.span(
            sid=sid, trace=trace, kind="attachment", name=name, start_ns=ts, end_ns=ts, attrs=attrs
        )


def otel_template(instance_id: str) -> dict[str, Any]:
    """The ``otel`` object every span carries (shared: it is serialised, never mutated)."""
    return {
        "span_kind": "INTERNAL",
        "trace_flags": 1,
        "trace_state": None,
        "is_remote": False,
        "status_description": None,
        "links": [],
        "resource": {
            "service.name": _http.SDK_NAME,
            "telemetry.sdk.name": _http.SDK_NAME,
            "telemetry.sdk.version": __version__,
            "telemetry.sdk.language": "python",
            "service.instance.id": instance_id,
        },
        "dropped": {"attributes": 0, "events": 0, "links": 0},
        "scope": {"name": "agentsight", "version": __version__, "schema_url": ""},
    }


def _json(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _checked_fields(
    conv: ConversationBatch, allowed_environments: frozenset[str]
) -> dict[str, Any]:
    fields = block_fields(conv)
    env = fields.get("environment")
    if allowed_environments and env is not None and env not in allowed_environments:
        del fields["environment"]
    return fields


def _sort_spans(spans: list[Any], starts: list[int]) -> list[Any]:
    """*spans* by the microsecond they start in (what ``started_at`` says); stable, so
    spans starting in the same microsecond keep tracking order."""
    order = sorted(range(len(spans)), key=lambda i: starts[i] // 1000)
    return [spans[i] for i in order]


def build_block(
    conv: ConversationBatch,
    otel: dict[str, Any],
    *,
    skip: frozenset[int] = frozenset(),
    uploaded: frozenset[int] = frozenset(),
    allowed_environments: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One conversation block: fields (non-null only) and spans sorted by start time.

    Events at indexes in *skip* are left out; *uploaded* are the indexes whose
    attachment bytes were uploaded.  An environment the backend did not list
    in ``/api/me/`` is dropped (it would fail the whole batch).  This is the
    readable definition of a block; :class:`BlockEncoder` writes the same
    block straight to JSON (tests hold them byte for byte equal).
    """
    fields = _checked_fields(conv, allowed_environments)
    builder = SpanBuilder(conv.conversation_id, fields, otel)
    spans: list[dict[str, Any]] = []
    for i, ev in enumerate(conv.events):
        if i not in skip:
            spans.extend(builder.spans_for(ev, i in uploaded))
    block: dict[str, Any] = {"conversation_id": conv.conversation_id}
    block.update(fields)
    block["spans"] = _sort_spans(spans, builder.starts)
    return block


def build_payload(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"sdk": {"name": _http.SDK_NAME, "version": __version__}, "conversations": blocks}


class BlockEncoder:
    """Writes one block as JSON text: exactly ``to_json(build_block(...))``, faster.

    What every span of the block shares is serialised once - the conversation
    attributes, the ``otel`` object - and a plain message (the bulk of any
    conversation) goes through one string template instead of five dicts and a
    generic serialiser.  Every value that comes from the user is still written
    by ``pydantic_core.to_json``, so escaping is the serialiser's own.  Other
    kinds are built as dicts by :class:`SpanBuilder` and serialised one span at
    a time.  Nothing is precomputed per event: a span depends only on its event
    and the block's fields, however the flusher cuts the batches.
    """

    def __init__(
        self,
        conv: ConversationBatch,
        otel: dict[str, Any],
        otel_json: str,
        *,
        uploaded: frozenset[int] = frozenset(),
        allowed_environments: frozenset[str] = frozenset(),
    ) -> None:
        fields = _checked_fields(conv, allowed_environments)
        self._builder = SpanBuilder(conv.conversation_id, fields, otel)
        self._uploaded = uploaded
        head: dict[str, Any] = {"conversation_id": conv.conversation_id}
        head.update(fields)
        self._head = _json(head)[:-1] + ',"spans":['
        # never empty: the conversation id is always there
        self._attrs = _json(self._builder.conv_attrs)[:-1] + ","
        self._tail = ',"otel":' + otel_json + "}"
        self._senders: dict[Any, str] = {}
        #: (start microsecond, span JSON) in tracking order.
        self.spans: list[tuple[int, str]] = []

    def add(self, index: int, ev: Event) -> None:
        """Append the span(s) of the block's event number *index*."""
        kind = ev.kind
        if (kind == ev_mod.QUESTION or kind == ev_mod.ANSWER) and not (
            index in self._uploaded and ev.data.get("attachments")
        ):
            self._message(ev, kind)
            return
        builder = self._builder
        first = len(builder.starts)
        spans = builder.spans_for(ev, index in self._uploaded)
        self.spans.extend(
            (start // 1000, _json(span))
            for start, span in zip(builder.starts[first:], spans, strict=True)
        )

    def _message(self, ev: Event, kind: str) -> None:
        # SpanBuilder.spans_for's message turn, written directly (same keys, same order).
        data = ev.data
        sid = f"{ev.seq & _MASK64:016x}"
        ts = ev.ts_ns
        trace = f"{ts & _MASK64:016x}{sid}"
        self._builder.turn = (sid, trace)
        iso = iso_utc(ts)
        sender = data.get("sender") or ("end_user" if kind == ev_mod.QUESTION else "agent")
        sender_json = self._senders.get(sender)
        if sender_json is None:
            sender_json = self._senders[sender] = _json(sender)
        content = _json(data.get("content", ""))
        metadata = data.get("metadata")
        extra = (
            ',"agentsight.message.metadata":' + _json(_http.dumps_attr(metadata))
            if metadata
            else ""
        )
        self.spans.append(
            (
                ts // 1000,
                f'{{"span_id":"{sid}","trace_id":"{trace}","parent_span_id":null,'
                f'"kind":"turn","name":"message","started_at":"{iso}","ended_at":"{iso}",'
                f'"duration_ms":0.0,"status":"ok","attributes":{self._attrs}'
                f'"agentsight.span.kind":"turn","agentsight.entity.name":"message",'
                f'"agentsight.turn.id":"{sid}","agentsight.turn.complete":true}},'
                f'"events":[{{"name":"agentsight.message","timestamp":"{iso}",'
                f'"attributes":{{"agentsight.message.sender":{sender_json},'
                f'"agentsight.message.content":{content}{extra}}}}}]{self._tail}',
            )
        )

    def finish(self) -> bytes:
        """The block's JSON: spans sorted (stably) by start microsecond."""
        self.spans.sort(key=_first)
        return (self._head + ",".join([text for _, text in self.spans]) + "]}").encode()


def _first(entry: tuple[int, str]) -> int:
    return entry[0]


_PAYLOAD_HEAD: Final = (
    '{"sdk":' + _json({"name": _http.SDK_NAME, "version": __version__}) + ',"conversations":['
).encode()


def payload_json(blocks: list[bytes]) -> bytes:
    """The payload around blocks written by :meth:`BlockEncoder.finish`
    (``to_json(build_payload(...))``, byte for byte)."""
    return _PAYLOAD_HEAD + b",".join(blocks) + b"]}"


def compress_body(body: bytes, gzip_ok: bool) -> tuple[bytes, dict[str, str]]:
    """Gzip (level :data:`GZIP_LEVEL`, mtime 0) only above the threshold and when allowed."""
    headers = {"Content-Type": _http.JSON_CONTENT_TYPE}
    if gzip_ok and len(body) > GZIP_THRESHOLD:
        body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def encode_body(payload: dict[str, Any], gzip_ok: bool) -> tuple[bytes, dict[str, str]]:
    """Serialise a payload dict once, then :func:`compress_body`."""
    return compress_body(pydantic_core.to_json(payload), gzip_ok)


def rejected_blocks(body: Any, blocks: list[dict[str, Any]]) -> dict[int, str]:
    """Indexes (into *blocks*) that a 400 body names, with their error text.

    Matches on ``index`` when it points at a block with the same id (or has no
    id), else on the echoed ``conversation_id``.  Empty when the body does not
    name any block we sent (then the whole batch is rejected).
    """
    if not isinstance(body, dict) or not isinstance(body.get("conversations"), list):
        return {}
    detail = body.get("detail") if isinstance(body.get("detail"), str) else "rejected"
    by_id: dict[str, int] = {}
    for i, blk in enumerate(blocks):
        by_id.setdefault(blk["conversation_id"], i)
    named: dict[int, str] = {}
    for entry in body["conversations"]:
        if not isinstance(entry, dict):
            continue
        cid = entry.get("conversation_id")
        idx = entry.get("index")
        target: int | None = None
        if (
            isinstance(idx, int)
            and 0 <= idx < len(blocks)
            and (cid is None or blocks[idx]["conversation_id"] == cid)
        ):
            target = idx
        elif isinstance(cid, str) and cid in by_id:
            target = by_id[cid]
        if target is None:
            continue
        errors = entry.get("errors")
        if isinstance(errors, dict):
            text = "; ".join(
                f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in errors.items()
            )
        else:
            text = str(errors) if errors else ""
        named[target] = _http.redact(f"HTTP 400: {detail}" + (f" ({text})" if text else ""))
    return named


# --- the exporter --------------------------------------------------------------------


class IngestExporter(_http.HttpExporter):
    """Delivers batches to ``POST /api/ingest/`` (the default protocol)."""

    name = "ingest"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._preflight_started = False
        self._preflight_task: asyncio.Task[None] | None = None
        #: What ``GET /api/me/`` taught us (only ever grows).
        self.capabilities: set[str] = set()
        self.environments: set[str] = set()
        self._otel = otel_template(str(uuid.uuid4()))
        self._otel_json = _json(self._otel)

    # -- preflight -----------------------------------------------------------------

    async def preflight(self, deadline: float | None = None) -> None:
        """``GET /api/me/`` once: capabilities (gzip) and environments.  Never fatal."""
        if self._preflight_started:
            return
        self._preflight_started = True
        timeout = PREFLIGHT_TIMEOUT
        if deadline is not None:
            timeout = max(0.1, min(timeout, deadline - self._clock()))
        try:
            self.stats.requests += 1
            resp = await self._client.get().get(
                _http.api_url(self._base, _http.ROUTE_ME),
                headers={"Content-Type": _http.JSON_CONTENT_TYPE},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            logger.debug("agentsight_async preflight GET /api/me/ failed: %s", type(exc).__name__)
            return
        if resp.status_code in (401, 403):
            self._report.auth_refused(resp.status_code, _http.error_detail(resp))
            return
        if resp.status_code != 200:
            return
        body = _http.parse_body(resp)
        if not isinstance(body, dict):
            return
        caps = body.get("capabilities")
        if isinstance(caps, list):
            self.capabilities.update(c.lower() for c in caps if isinstance(c, str))
        envs = body.get("environments")
        if isinstance(envs, list):
            for env in envs:
                slug = env.get("slug") if isinstance(env, dict) else env
                if isinstance(slug, str):
                    self.environments.add(slug)
        if body.get("role") == "read":
            logger.error(
                "agentsight_async: the API key has the 'read' role; AgentSight will refuse "
                "ingest. Use a key with the 'write' role."
            )

    # -- export --------------------------------------------------------------------

    async def _ensure_preflight(self, deadline: float) -> None:
        """Every export waits for the one preflight, so concurrent first batches gzip too."""
        task = self._preflight_task
        if task is not None and task.done():
            return
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            if self._preflight_started:  # finished (or abandoned) on another loop
                return
            task = self._preflight_task = asyncio.ensure_future(self.preflight(deadline))
        await asyncio.shield(task)

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Build the blocks in slices (the loop runs between them), post them as one body.

        The agent's own tasks share this event loop: no single synchronous step
        may hold it for long.  Every :data:`SLICE_CHECK` spans we look at the
        clock and yield once :data:`SLICE_SECONDS` have passed; compressing a
        large body happens in a worker thread (zlib releases the GIL).
        """
        await self._ensure_preflight(deadline)
        convs = batch.conversations
        results: list[list[Outcome | None]] = [[None] * len(c.events) for c in convs]
        blocks: list[tuple[int, str, bytes]] = []
        envs = frozenset(self.environments)
        clock = time.perf_counter
        slice_end = clock() + SLICE_SECONDS
        for ci, conv in enumerate(convs):
            try:
                skip, uploaded = await self._upload_all(conv, deadline, results[ci])
                encoder = BlockEncoder(
                    conv, self._otel, self._otel_json, uploaded=uploaded, allowed_environments=envs
                )
                for i, ev in enumerate(conv.events):
                    if i in skip:
                        continue
                    encoder.add(i, ev)
                    if not len(encoder.spans) % SLICE_CHECK and clock() >= slice_end:
                        await asyncio.sleep(0)
                        slice_end = clock() + SLICE_SECONDS
                block = encoder.finish()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or odd data must not sink the other blocks
                self._report(
                    exc, f"could not build block: {exc!r}", conversation_id=conv.conversation_id
                )
                self._fill(results[ci], Outcome(False, error=repr(exc), drop_reason=REJECTED))
                continue
            if encoder.spans:
                blocks.append((ci, conv.conversation_id, block))
            else:  # nothing left to send (all uploads failed)
                self._fill(results[ci], Outcome(True, response={}))
            if clock() >= slice_end:
                await asyncio.sleep(0)
                slice_end = clock() + SLICE_SECONDS
        if blocks:
            await self._post_blocks(blocks, deadline, results)
        return [[o if o is not None else Outcome(True, response={}) for o in r] for r in results]

    async def _encode(self, blocks: list[bytes], gzip_ok: bool) -> tuple[bytes, dict[str, str]]:
        """The request body; a large one is gzipped off the loop (same bytes either way)."""
        body = payload_json(blocks)
        if gzip_ok and len(body) >= OFFLOAD_GZIP_BYTES:
            try:
                return await asyncio.to_thread(compress_body, body, gzip_ok)
            except RuntimeError:  # executors shut down (interpreter exit): do it here
                pass
        return compress_body(body, gzip_ok)

    @staticmethod
    def _fill(slots: list[Outcome | None], outcome: Outcome) -> None:
        for i, current in enumerate(slots):
            if current is None:
                slots[i] = outcome

    async def _post_blocks(
        self,
        blocks: list[tuple[int, str, bytes]],
        deadline: float,
        results: list[list[Outcome | None]],
    ) -> None:
        gzip_ok = GZIP_CAPABILITY in self.capabilities
        pending = blocks
        while pending:
            body, headers = await self._encode([b for _, _, b in pending], gzip_ok)
            ids = [cid for _, cid, _ in pending]
            result = await self._post_bytes(_http.ROUTE_INGEST, body, headers, deadline)
            if isinstance(result, RetryFailure):
                text = f"POST /api/ingest/ {result.describe()}"
                exc = result.exception or ConversationApiException(
                    text, result.response.status_code if result.response is not None else None
                )
                self._report(exc, text, conversation_ids=ids, reason=result.reason)
                for ci, _, _ in pending:
                    self._fill(results[ci], Outcome(False, error=text, drop_reason=result.reason))
                return
            status = result.status_code
            if is_success(status):
                answer = _http.parse_body(result)
                per_block = _answers_by_conversation(answer)
                ok = Outcome(True, response=answer)
                for ci, cid, _ in pending:
                    entry = per_block.get(cid)
                    self._fill(results[ci], ok if entry is None else Outcome(True, response=entry))
                return
            detail = _http.error_detail(result)
            if status == 400:
                named = rejected_blocks(
                    _http.parse_body(result), [{"conversation_id": cid} for _, cid, _ in pending]
                )
                if named:
                    for idx, text in named.items():
                        ci = pending[idx][0]
                        exc400 = ConversationApiException(text, 400, _http.parse_body(result))
                        self._report(
                            exc400,
                            f"ingest rejected block {pending[idx][1]!r}: {text}",
                            conversation_ids=[pending[idx][1]],
                            reason=REJECTED,
                        )
                        self._fill(results[ci], Outcome(False, error=text, drop_reason=REJECTED))
                    pending = [p for i, p in enumerate(pending) if i not in named]
                    continue
            if status in (401, 403):
                self._report.auth_refused(status, detail)
            exc_final = ConversationApiException(
                f"POST /api/ingest/ rejected: {detail}", status, _http.parse_body(result)
            )
            self._report(
                exc_final,
                f"POST /api/ingest/ rejected: {detail}",
                conversation_ids=ids,
                reason=REJECTED,
            )
            for ci, _, _ in pending:
                self._fill(results[ci], Outcome(False, error=detail, drop_reason=REJECTED))
            return

    # -- attachment uploads ------------------------------------------------------------

    async def _upload_all(
        self, conv: ConversationBatch, deadline: float, slots: list[Outcome | None]
    ) -> tuple[frozenset[int], frozenset[int]]:
        """Upload every attachment of the block; returns (indexes to skip, uploaded)."""
        skip: set[int] = set()
        uploaded: set[int] = set()
        for i, ev in enumerate(conv.events):
            atts = ev.data.get("attachments")
            if not atts or ev.kind not in (ev_mod.ATTACHMENTS, ev_mod.QUESTION, ev_mod.ANSWER):
                continue
            failure = await self._upload(conv, ev, deadline)
            if failure is None:
                uploaded.add(i)
            elif ev.kind == ev_mod.ATTACHMENTS:
                skip.add(i)
                slots[i] = failure
            # a message is still delivered; its attachment failure was reported
        return frozenset(skip), frozenset(uploaded)

    async def _upload(self, conv: ConversationBatch, ev: Event, deadline: float) -> Outcome | None:
        """Upsert the conversation for its pk, then POST the files as base64 JSON."""
        cid = conv.conversation_id
        pk = self.pks.get(cid)
        if pk is None:
            fields = block_fields(conv)
            body: dict[str, Any] = {"conversation_id": cid}
            body.update(fields)
            pk_or_failure = await self._post_json(_http.ROUTE_CONVERSATIONS, body, deadline, None)
            if isinstance(pk_or_failure, Outcome):
                return pk_or_failure
            pk = _http.response_pk(pk_or_failure)
            if pk is None:
                text = "POST /api/conversations/ answered without an id; attachments not uploaded"
                self._report(ConversationApiException(text), text, conversation_id=cid)
                return Outcome(False, error=text, drop_reason=REJECTED)
            self.pks.put(cid, pk)
        upload, key = attachment_upload(ev, cid, pk)
        result = await self._post_json(_http.ROUTE_ATTACHMENTS, upload, deadline, key)
        return result if isinstance(result, Outcome) else None

    async def _post_json(
        self, route: str, body: dict[str, Any], deadline: float, idempotency_key: str | None
    ) -> Any:
        """POST a JSON body with retries; the parsed answer, or a failed Outcome."""
        headers = {"Content-Type": _http.JSON_CONTENT_TYPE}
        result = await self._post_bytes(
            route, _http.dumps(body), headers, deadline, idempotency_key
        )
        cid = body.get("conversation_id")
        if isinstance(result, RetryFailure):
            text = f"POST /{route} {result.describe()}"
            exc = result.exception or ConversationApiException(text)
            self._report(exc, text, conversation_id=cid, reason=result.reason)
            return Outcome(False, error=text, drop_reason=result.reason)
        if not is_success(result.status_code):
            detail = _http.error_detail(result)
            if result.status_code in (401, 403):
                self._report.auth_refused(result.status_code, detail)
            text = f"POST /{route} rejected: {detail}"
            self._report(
                ConversationApiException(text, result.status_code, _http.parse_body(result)),
                text,
                conversation_id=cid,
                reason=REJECTED,
            )
            return Outcome(False, error=detail, drop_reason=REJECTED)
        return _http.parse_body(result)


__all__ = ["IngestExporter", "build_block", "build_payload", "encode_body", "rejected_blocks"]
