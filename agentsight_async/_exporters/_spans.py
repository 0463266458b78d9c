"""Events as ingest spans (§3.3-§4), and the one encoder that writes them.

A conversation's events become one *block* ``{"conversation_id", <fields>,
"spans": [...]}``; blocks travel in a payload ``{"sdk", "conversations"}``.
The ingest exporter posts the payload; the ``sqlite:///`` exporter hands the
same bytes, parsed, to the local store.  Decisions worth knowing:

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
  the trace of the latest message turn *in the same block* (so the turn
  arrives in the same payload, as the server wants); otherwise it is a
  top-level span with its own trace.
* **Files.**  Attachment bytes never travel in a span: an ``attachment`` span
  describes the files (name, size, type) and says ``mode=base64`` when the
  bytes were uploaded first (see :mod:`._uploads`).  A message's own files get
  a second span one microsecond after the message, with a derived id.
* **One encoder.**  :class:`BlockEncoder` has one method per event kind -
  the readable mapping - and the payload is serialised with one
  ``orjson.dumps``.  Each kind has one encoding: the rarer kinds build their
  span as a dict; a message - the bulk of every conversation - writes its
  span's JSON directly, from parts serialised once per block and ``orjson``
  for every user value (tests decode both).  What every span of a block
  shares, the ``otel`` object, is serialised once per block as an
  ``orjson.Fragment``.  500 short messages cost ~2.0 µs each here (~2.8 µs
  as dicts, ~4.3 µs with the former pydantic-core template), a mix of every
  kind ~3.8 µs (same machine and Python; ``python -m benchmarks.time_encoder``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, ClassVar, Final

import orjson

from .. import _events as ev_mod
from .._events import (
    CONVERSATION_FIELDS,
    ConversationBatch,
    Event,
    iso_utc,
    ns_from_iso,
    span_id,
)
from .._version import __version__
from ._base import SDK_NAME
from ._multipart import decoded_size

#: Block keys the server accepts besides conversation_id/spans (it rejects unknown keys):
#: exactly the conversation fields the tracker records.
BLOCK_FIELDS: Final = CONVERSATION_FIELDS
_CONVERSATION_KINDS: Final = frozenset({ev_mod.CONVERSATION, ev_mod.CONVERSATION_OPENED})
#: Block key -> span attribute name, where they differ.
_ATTR_NAME: Final = {"customer_ip_address": "customer_ip"}
#: How far after its message a message's attachments are stamped (1 µs).
LINKED_OFFSET_NS: Final = 1000

#: Token-usage data key -> ``llm`` span attribute, set when present and non-zero (§3.4).
_LLM_OPTIONAL: Final = (
    ("operation", "gen_ai.operation.name"),
    ("requested_model", "agentsight.llm.requested_model"),
    ("streamed", "agentsight.llm.streaming"),
    ("usage_reported", "agentsight.llm.usage_reported"),
    ("error", "agentsight.llm.error"),
    ("cache_read_tokens", "agentsight.llm.cache_read_tokens"),
    ("cache_write_tokens", "agentsight.llm.cache_write_tokens"),
    ("reasoning_tokens", "agentsight.llm.reasoning_tokens"),
    ("embedding_tokens", "agentsight.llm.embedding_tokens"),
)
#: Raised by :func:`encode_payload` for a value JSON cannot carry.
EncodeError = orjson.JSONEncodeError

_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
#: The two senders' JSON, written once.
_SENDER_JSON: Final = {"end_user": b'"end_user"', "agent": b'"agent"'}
_NO_TURN: Final[tuple[None, None, dict[str, Any]]] = (None, None, {})


# --- pure helpers -------------------------------------------------------------------


def dumps_attr(value: Any) -> str:
    """A structured value carried inside a string attribute (metadata, arguments)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


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
    # Plain loops, each value read once: this runs once per conversation block, and at
    # 10,000 conversations a batch is mostly block set-up.
    for ev in conv.events:
        if ev.kind in _CONVERSATION_KINDS:
            data = ev.data
            for key in BLOCK_FIELDS:
                value = data.get(key)
                if value is not None:
                    merged[key] = value
    fields = conv.fields
    for key in BLOCK_FIELDS:
        value = fields.get(key)
        if value is not None:
            merged[key] = value
    return merged


def conversation_attributes(conversation_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``agentsight.conversation.*`` attributes carried by every span of a block."""
    attrs: dict[str, Any] = {"agentsight.conversation.id": conversation_id}
    for key in BLOCK_FIELDS:
        value = fields.get(key)
        if value is None:
            continue
        name = _ATTR_NAME.get(key, key)
        attrs[f"agentsight.conversation.{name}"] = dumps_attr(value) if key == "metadata" else value
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


def file_descriptors(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an attachment span says about each file: name, decoded size, type."""
    return [
        {
            "filename": att.get("filename"),
            "size": decoded_size(att.get("data")),
            "mime_type": att.get("mime_type"),
        }
        for att in attachments
    ]


def otel_template(instance_id: str) -> dict[str, Any]:
    """The ``otel`` object every span carries; *instance_id* is ``service.instance.id``."""
    return {
        "span_kind": "INTERNAL",
        "trace_flags": 1,
        "trace_state": None,
        "is_remote": False,
        "status_description": None,
        "links": [],
        "resource": {
            "service.name": SDK_NAME,
            "telemetry.sdk.name": SDK_NAME,
            "telemetry.sdk.version": __version__,
            "telemetry.sdk.language": "python",
            "service.instance.id": instance_id,
        },
        "dropped": {"attributes": 0, "events": 0, "links": 0},
        "scope": {"name": "agentsight", "version": __version__, "schema_url": ""},
    }


# --- the mapping and the encoder ----------------------------------------------------------


class BlockEncoder:
    """Maps one conversation's events to spans (§4): the block :func:`encode_payload` writes.

    Args:
        conv: the conversation's share of a batch.
        otel: the ``otel`` object (:func:`otel_template`); serialised once here.
        uploaded: indexes of events whose attachment bytes reached the server.
        allowed_environments: environment slugs ``/api/me/`` listed; a block
            environment outside a non-empty set is dropped (it would fail the
            whole batch, and the row falls back to the agent's default).

    Feed it with :meth:`add` (in tracking order, skipping what must not be
    sent), then call :meth:`finish`.  Nothing is precomputed per event: a span
    depends only on its event, its block's fields and the latest message turn
    before it in the block, however the flusher cuts the batches.
    """

    def __init__(
        self,
        conv: ConversationBatch,
        otel: dict[str, Any],
        *,
        uploaded: frozenset[int] = frozenset(),
        allowed_environments: frozenset[str] = frozenset(),
    ) -> None:
        fields = block_fields(conv)
        env = fields.get("environment")
        if allowed_environments and env is not None and env not in allowed_environments:
            del fields["environment"]
        self._conv_attrs = attrs = conversation_attributes(conv.conversation_id, fields)
        if "metadata" in fields:
            # The object, as the JSON text its attribute already holds: serialised once,
            # and by the same json.dumps (orjson refuses integers beyond 64 bits).
            fields["metadata"] = orjson.Fragment(attrs["agentsight.conversation.metadata"])
        self._head: dict[str, Any] = {"conversation_id": conv.conversation_id, **fields}
        self._otel_dict = otel
        otel_json = _otel_json(otel)
        self._otel = orjson.Fragment(otel_json)
        # A message span is written straight to JSON (see _message): what its spans
        # share in this block is serialised once, here.
        self._attrs_open = attrs_open = orjson.dumps(attrs)[:-1]  # without its closing brace
        self._turn_attrs = attrs_open + (
            b',"agentsight.span.kind":"turn","agentsight.entity.name":"message",'
            b'"agentsight.turn.id":"'
        )
        self._otel_tail = otel_tail = b'}}],"otel":' + otel_json + b"}"
        #: A message span with its per-event values left as ``%`` slots (see _message).
        self._message_template = (
            b'{"span_id":"%s","trace_id":"%016x%s","parent_span_id":null,"kind":"turn",'
            b'"name":"message","started_at":"%s","ended_at":"%s","duration_ms":0.0,'
            b'"status":"ok","attributes":'
            + self._turn_attrs.replace(b"%", b"%%")
            + b'%s","agentsight.turn.complete":true},"events":[{"name":"agentsight.message",'
            b'"timestamp":"%s","attributes":{"agentsight.message.sender":%s,'
            b'"agentsight.message.content":%s%s' + otel_tail.replace(b"%", b"%%")
        )
        #: The whole second last formatted, and its ``YYYY-MM-DDTHH:MM:SS`` (see _iso).
        self._second = -1
        self._second_text = b""
        self._uploaded = uploaded
        #: The latest message, whose turn tool and LLM spans join.
        self._turn: Event | None = None
        #: (start microsecond, span - a dict, or a message's JSON) in tracking order;
        #: sorted by :meth:`finish`.
        self._spans: list[tuple[int, dict[str, Any] | orjson.Fragment]] = []

    @property
    def span_count(self) -> int:
        """Spans added so far."""
        return len(self._spans)

    def add(self, index: int, ev: Event) -> None:
        """Append the span(s) of the block's event number *index*.

        Raises:
            ValueError: for an event kind without a mapping.
        """
        mapper = self._MAPPERS.get(ev.kind)
        if mapper is None:
            raise ValueError(f"unknown event kind {ev.kind!r}")
        mapper(self, ev, index in self._uploaded)

    def finish(self) -> dict[str, Any]:
        """The block, its spans sorted (stably) by the microsecond they start in.

        Some values are pre-serialised ``orjson.Fragment``s (the ``otel``
        object, the block's metadata): the block is for :func:`encode_payload`,
        not for reading.
        """
        self._spans.sort(key=_start_us)
        return {**self._head, "spans": [span for _, span in self._spans]}

    # -- one method per event kind -------------------------------------------------------

    def _span(
        self,
        sid: str,
        trace: str,
        kind: str,
        name: str,
        start_ns: int,
        end_ns: int,
        attrs: dict[str, Any],
        *,
        status: str = "unset",
        parent: str | None = None,
        events: list[dict[str, Any]] | None = None,
        status_description: str | None = None,
    ) -> str:
        """Append one span; returns its ``started_at`` (a message event reuses it).

        *attrs* come after the conversation's attributes, ``agentsight.span.kind``
        and ``agentsight.entity.name``.  Values go whole: the backend applies its
        own limits (§3.4 - plain strings cut at 16,384 characters, JSON strings
        shrunk so that they still parse); cutting here would break JSON attributes.
        """
        started = iso_utc(start_ns)
        if end_ns == start_ns:
            ended, duration = started, 0.0
        else:
            ended, duration = iso_utc(end_ns), round((end_ns - start_ns) / 1e6, 3)
        otel: Any = self._otel
        if status_description is not None:
            otel = {**self._otel_dict, "status_description": status_description}
        span = {
            "span_id": sid,
            "trace_id": trace,
            "parent_span_id": parent,
            "kind": kind,
            "name": name,
            "started_at": started,
            "ended_at": ended,
            "duration_ms": duration,
            "status": status,
            "attributes": {
                **self._conv_attrs,
                "agentsight.span.kind": kind,
                "agentsight.entity.name": name,
                **attrs,
            },
            "events": [] if events is None else events,
            "otel": otel,
        }
        self._spans.append((start_ns // 1000, span))
        return started

    def _child_of_turn(self) -> tuple[str | None, str | None, dict[str, Any]]:
        """Parent span id, trace id and the ``agentsight.turn.id`` attribute, if any turn."""
        turn = self._turn
        if turn is None:
            return None, None, {}
        tsid = span_id(turn)
        return tsid, trace_id_for(turn.ts_ns, tsid), {"agentsight.turn.id": tsid}

    def _iso(self, ts_ns: int) -> bytes:
        """:func:`iso_utc` as bytes; the date and time of day formatted once per second."""
        sec, ns = divmod(ts_ns, 1_000_000_000)
        if sec != self._second:
            self._second = sec
            self._second_text = iso_utc(sec * 1_000_000_000)[:-6].encode()  # no "+00:00"
        us = ns // 1000
        if us:
            return b"%s.%06d+00:00" % (self._second_text, us)
        return self._second_text + b"+00:00"

    def _message(self, ev: Event, uploaded: bool) -> None:
        """A complete ``turn`` named ``message`` holding one ``agentsight.message`` event.

        The bulk of every conversation, so it is written straight to JSON: one
        ``%`` formatting of a template made per block, which holds the span's
        fixed parts and what the block's spans share; every value that comes
        from the user goes through ``orjson.dumps`` (its escaping is the
        serialiser's own).  The span is what the other kinds build as a dict
        (``_span``) - same keys, same order; the tests decode it.
        """
        ts = ev.ts_ns
        self._turn = ev
        raw = ev.raw
        data: dict[str, Any] | None = None
        who = "end_user" if ev.kind == ev_mod.QUESTION else "agent"
        if type(raw) is str:  # a plain message: its text, the sender its kind implies
            content = orjson.dumps(raw)
            sender = _SENDER_JSON[who]
            extra = b""
        else:
            data = ev.data
            who = data.get("sender") or who
            sender = _SENDER_JSON.get(who) or orjson.dumps(who)
            content = orjson.dumps(data.get("content", ""))
            metadata = data.get("metadata")
            extra = (
                b',"agentsight.message.metadata":' + orjson.dumps(dumps_attr(metadata))
                if metadata
                else b""
            )
        sid = b"%016x" % (ev.seq & _MASK64)
        iso = self._iso(ts)
        span = self._message_template % (
            sid,
            ts & _MASK64,
            sid,
            iso,
            iso,
            sid,
            iso,
            sender,
            content,
            extra,
        )
        self._spans.append((ts // 1000, orjson.Fragment(span)))
        if data is not None and data.get("attachments") and uploaded:
            # its files: a span of their own one microsecond later, so transcripts list it second
            asid = derived_span_id(sid.decode(), "attachments")
            self._files(asid, ts + LINKED_OFFSET_NS, data, who, True)

    def _attachments(self, ev: Event, uploaded: bool) -> None:
        """Standalone files: one ``attachment`` span."""
        self._files(span_id(ev), ev.ts_ns, ev.data, ev.data.get("sender") or "end_user", uploaded)

    def _files(self, sid: str, ts: int, data: dict[str, Any], sender: str, uploaded: bool) -> None:
        files = file_descriptors(list(data.get("attachments") or []))
        attrs: dict[str, Any] = {"agentsight.attachment.sender": sender}
        if uploaded:
            attrs["agentsight.attachment.mode"] = "base64"
        attrs["agentsight.attachment.count"] = len(files)
        attrs["agentsight.attachment.files"] = dumps_attr(files)
        if data.get("metadata"):
            attrs["agentsight.metadata"] = dumps_attr(data["metadata"])
        name = f"{len(files)} attachment(s)"
        self._span(sid, trace_id_for(ts, sid), "attachment", name, ts, ts, attrs)

    def _action(self, ev: Event, uploaded: bool) -> None:
        """A ``tool`` span over the action's own time window, in the latest turn."""
        data = ev.data
        sid = span_id(ev)
        start, end = action_window(data, ev.ts_ns)
        parent, trace, attrs = self._child_of_turn()
        name = str(data.get("action_name") or "action")
        attrs["agentsight.tool.name"] = name
        if data.get("tools_used") is not None:
            attrs["agentsight.tool.arguments"] = dumps_attr(data["tools_used"])
        if data.get("response") is not None:
            attrs["agentsight.tool.response"] = str(data["response"])
        error = data.get("error_msg")
        if error is not None:
            attrs["agentsight.tool.error"] = str(error)
        if data.get("metadata"):
            attrs["agentsight.metadata"] = dumps_attr(data["metadata"])
        self._span(
            sid,
            trace or trace_id_for(ev.ts_ns, sid),
            "tool",
            name,
            start,
            end,
            attrs,
            status="error" if error is not None else "ok",
            parent=parent,
            status_description=str(error) if error is not None else None,
        )

    def _button(self, ev: Event, uploaded: bool) -> None:
        """A ``button`` span named after its label (or event)."""
        data = ev.data
        sid = span_id(ev)
        attrs: dict[str, Any] = {
            "agentsight.button.event": data.get("button_event"),
            "agentsight.button.label": data.get("label"),
            "agentsight.button.value": data.get("value"),
        }
        if data.get("metadata"):
            attrs["agentsight.metadata"] = dumps_attr(data["metadata"])
        name = str(data.get("label") or data.get("button_event") or "button")
        self._span(sid, trace_id_for(ev.ts_ns, sid), "button", name, ev.ts_ns, ev.ts_ns, attrs)

    def _token_usage(self, ev: Event, uploaded: bool) -> None:
        """An ``llm`` span per model call, in the latest turn (§3.4); no total (the backend sums).

        ``gen_ai.usage.input_tokens`` is the *uncached* input, as 0.1.4 sends
        it: the event's ``prompt_tokens`` less its cache reads and writes, which
        travel as ``agentsight.llm.cache_*_tokens``.  A call's span ends at its
        tracking time (a captured call is tracked when it ends) and starts
        ``duration_ms`` earlier.
        """
        data = ev.data
        sid = span_id(ev)
        parent, trace, attrs = self._child_of_turn()
        system = data.get("system") or "unknown"
        model = data.get("model")
        cache_read = int(data.get("cache_read_tokens") or 0)
        cache_write = int(data.get("cache_write_tokens") or 0)
        prompt = int(data.get("prompt_tokens") or 0)
        attrs["gen_ai.system"] = system
        attrs["gen_ai.usage.input_tokens"] = max(prompt - cache_read - cache_write, 0)
        attrs["gen_ai.usage.output_tokens"] = int(data.get("completion_tokens") or 0)
        if model:
            attrs["gen_ai.request.model"] = model
        for key, attr in _LLM_OPTIONAL:
            value = data.get(key)
            if value is not None and (value != 0 or isinstance(value, bool)):
                attrs[attr] = value
        start = end = ev.ts_ns
        duration = data.get("duration_ms")
        if duration:
            start = end - int(duration * 1_000_000)
        error = data.get("error")
        trace = trace or trace_id_for(ev.ts_ns, sid)
        self._span(
            sid,
            trace,
            "llm",
            str(model or system),
            start,
            end,
            attrs,
            parent=parent,
            status="error" if error is not None else "unset",
            status_description=error,
        )

    def _conversation(self, ev: Event, uploaded: bool) -> None:
        """A ``conversation`` span: upserts the row (``conversation_opened``: not as used).

        One per block, so written straight to JSON like a message: the span
        ``_span`` would build, same keys in the same order.
        """
        sid = span_id(ev)
        ts = ev.ts_ns
        name = b"conversation_opened" if ev.kind == ev_mod.CONVERSATION_OPENED else b"conversation"
        iso = iso_utc(ts).encode()
        span = b"".join(
            (
                b'{"span_id":"',
                sid.encode(),
                b'","trace_id":"',
                trace_id_for(ts, sid).encode(),
                b'","parent_span_id":null,"kind":"conversation","name":"',
                name,
                b'","started_at":"',
                iso,
                b'","ended_at":"',
                iso,
                b'","duration_ms":0.0,"status":"unset","attributes":',
                self._attrs_open,
                b',"agentsight.span.kind":"conversation","agentsight.entity.name":"',
                name,
                b'"},"events":[',
                self._otel_tail[2:],  # '],"otel":{...}}' - the tail a message span ends with
            )
        )
        self._spans.append((ts // 1000, orjson.Fragment(span)))

    #: Event kind -> the method that maps it.
    _MAPPERS: ClassVar[dict[str, Callable[[BlockEncoder, Event, bool], None]]] = {
        ev_mod.QUESTION: _message,
        ev_mod.ANSWER: _message,
        ev_mod.ATTACHMENTS: _attachments,
        ev_mod.ACTION: _action,
        ev_mod.BUTTON: _button,
        ev_mod.TOKEN_USAGE: _token_usage,
        ev_mod.CONVERSATION: _conversation,
        ev_mod.CONVERSATION_OPENED: _conversation,
    }


#: The last ``otel`` object serialised, and its JSON: an exporter passes the same object
#: for every block, so each block reuses the bytes (replaced whole: safe across threads).
_otel_cached: tuple[dict[str, Any], bytes] | None = None


def _otel_json(otel: dict[str, Any]) -> bytes:
    global _otel_cached
    cached = _otel_cached
    if cached is not None and cached[0] is otel:
        return cached[1]
    data = orjson.dumps(otel)
    _otel_cached = (otel, data)
    return data


def _start_us(entry: tuple[int, Any]) -> int:
    return entry[0]


def build_block(
    conv: ConversationBatch,
    otel: dict[str, Any],
    *,
    skip: frozenset[int] = frozenset(),
    uploaded: frozenset[int] = frozenset(),
    allowed_environments: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One block in one call (:class:`BlockEncoder` without yielding between events).

    Events at indexes in *skip* are left out; the other arguments are
    :class:`BlockEncoder`'s.
    """
    encoder = BlockEncoder(conv, otel, uploaded=uploaded, allowed_environments=allowed_environments)
    for i, ev in enumerate(conv.events):
        if i not in skip:
            encoder.add(i, ev)
    return encoder.finish()


_SDK: Final = {"name": SDK_NAME, "version": __version__}


def encode_payload(blocks: list[dict[str, Any]]) -> bytes:
    """The ``POST /api/ingest/`` payload of *blocks* (from :meth:`BlockEncoder.finish`) as JSON.

    The one serialisation of a batch: a single ``orjson.dumps``.  (Encoding each
    block apart and embedding the bytes as fragments measured ~20% slower per
    message: one more copy of the whole body.)

    Raises:
        EncodeError: for a value JSON cannot carry (validation refuses those
            when they are tracked).
    """
    return orjson.dumps({"sdk": _SDK, "conversations": blocks})
