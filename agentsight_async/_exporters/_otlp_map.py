"""Events as OTLP spans and log records, after the OpenTelemetry GenAI conventions.

This module is the mapping only - plain records, no protobuf - so that one
table serves both wire encodings (:mod:`._otlp_wire`) and can be tested on
its own.  The attribute table is in ``docs/otlp.md``; in short:

=====================  ==============================================================
event                  OTLP
=====================  ==============================================================
human message          ``invoke_agent {agent}`` INTERNAL span: the turn, a trace root
agent message          ``agentsight.message`` INTERNAL span, child of the turn
attachments            ``agentsight.message`` span whose message holds only file parts
action / tool          ``execute_tool {name}`` INTERNAL span over the action's window
token usage            ``chat {model}`` CLIENT span with ``gen_ai.usage.*``
button click           ``app.widget.click`` log record in the turn's trace context
conversation item      ``agentsight.conversation`` log record (the row, its fields)
=====================  ==============================================================

Every span and log record carries ``gen_ai.conversation.id``, ``session.id``
(the same id), ``user.id`` (the conversation's ``customer_id``) and the
conversation's other fields as ``agentsight.conversation.*``.  Content -
message text and files, metadata, tool arguments and results, error text,
button labels and values - is sent only with ``otlp_capture_content``, as the
conventions require of message content (Opt-In).

**Turns, and why spans stay a pure function of the events.**  A turn is the
human message and everything after it in its conversation until the next
human message.  The human message's span *is* the turn: its span id is the
message's event id and its trace id derives from the message's time and id
(:func:`trace_id_of`).  Every later item of the turn is parented to it *by
id*: it needs only the id and time of the turn's message, never the message's
span object, so a reply that leaves in a later batch - or is re-cut after a
cancelled export, or retried - is the same span with the same parent.  The
turn span cannot describe what follows it (its end, the reply, summed usage)
without waiting for events that may never come, so it is a zero-length span
at the message's time and the reply is a span of its own; backends sum the
children's ``gen_ai.usage.*`` themselves.

What the mapping needs to remember is, per conversation, which human message
opened the turn at the start of the batch in flight and at its end
(:class:`Turns`).  The flusher keeps one batch in flight per conversation and
re-cuts a cancelled batch from its first event, so the turn of every event is
the same however the batches were cut.  What it cannot know is a turn opened
before the exporter was created (a new process replaying its spool, a new
event loop) or forgotten (more than :data:`MAX_CONVERSATIONS` conversations
since): an item without a known turn is a root span of its own trace.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, Final, NamedTuple

import orjson

from .. import _events as ev_mod
from .._events import CONVERSATION_FIELDS, ConversationBatch, Event
from ._multipart import b64_attachments
from ._spans import action_window, block_fields

#: A scalar attribute value as OTLP carries it (structured values travel as JSON text).
AttrValue = str | bool | int | float
Attributes = list[tuple[str, AttrValue]]

#: The OTLP enums' numbers: span kinds, status codes, log severities.
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_UNSET, STATUS_ERROR = 0, 2
SEVERITY_INFO, SEVERITY_ERROR = 9, 17

#: The name of a span that holds one standalone message (agent replies, files), and the
#: ``event_name`` of each log record we send.
MESSAGE_SPAN, BUTTON_EVENT, CONVERSATION_EVENT, EXCEPTION_EVENT = (
    "agentsight.message",
    "app.widget.click",
    "agentsight.conversation",
    "exception",
)
#: ``error.type`` of a failed action: the conventions' fallback (ours carry no class).
OTHER_ERROR: Final = "_OTHER"

#: Conversations whose turn :class:`Turns` remembers (least recently used forgotten).
MAX_CONVERSATIONS: Final = 10_000

#: Which request carries an event kind: ``traces`` or ``logs``.
SIGNAL: Final[dict[str, str]] = {
    ev_mod.QUESTION: "traces",
    ev_mod.ANSWER: "traces",
    ev_mod.ATTACHMENTS: "traces",
    ev_mod.ACTION: "traces",
    ev_mod.TOKEN_USAGE: "traces",
    ev_mod.BUTTON: "logs",
    ev_mod.CONVERSATION: "logs",
    ev_mod.CONVERSATION_OPENED: "logs",
}

_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
#: A model call's optional counts and facts -> their attributes, set when present and not
#: zero (booleans when present: ``usage_reported`` is there only as false).
_USAGE_DETAILS: Final = {
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    "embedding_tokens": "agentsight.usage.embedding_tokens",
    "streamed": "agentsight.llm.streaming",
    "usage_reported": "agentsight.llm.usage_reported",
}
#: A message's sender -> its GenAI role and the attribute that carries it.
_ROLES: Final = {
    "end_user": ("user", "gen_ai.input.messages"),
    "agent": ("assistant", "gen_ai.output.messages"),
    "system": ("system", "gen_ai.input.messages"),
}
#: Conversation field -> attribute (``customer_id`` is ``user.id``, a standard name).
_CONVERSATION_ATTR: Final = {
    "customer_ip_address": "agentsight.conversation.customer_ip",
    **{
        key: f"agentsight.conversation.{key}"
        for key in CONVERSATION_FIELDS
        if key not in ("customer_id", "customer_ip_address", "metadata")
    },
}


class SpanData(NamedTuple):
    """One span, encoding-neutral.  Ids are integers (``parent_id`` 0: a root)."""

    trace_id: int
    span_id: int
    parent_id: int
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: Attributes
    status: int = STATUS_UNSET
    status_message: str = ""


class LogData(NamedTuple):
    """One log record (an event: ``event_name`` set), encoding-neutral.

    ``trace_id``/``span_id`` are the trace context (0: none).
    """

    time_ns: int
    event_name: str
    severity: int
    trace_id: int
    span_id: int
    attributes: Attributes


#: A turn: its human message's event id (``seq``) and tracking time.
Turn = tuple[int, int]


def trace_id_of(seq: int, ts_ns: int) -> int:
    """The trace id of a turn (or of an item outside any turn): time, then event id.

    The same 128 bits as the ingest spans' ``trace_id`` (:func:`._spans.trace_id_for`),
    stable on every retry and unique per event.
    """
    return ((ts_ns & _MASK64) << 64) | (seq & _MASK64)


def modality(mime_type: Any) -> str:
    """The GenAI part ``modality`` of a MIME type: image, video, audio or document."""
    major = str(mime_type or "").partition("/")[0].lower()
    return major if major in ("image", "video", "audio") else "document"


def file_parts(attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments as GenAI ``blob`` parts (base64 ``content``, plus the file's ``name``)."""
    return [
        {
            "type": "blob",
            "modality": modality(att.get("mime_type")),
            "mime_type": att.get("mime_type"),
            "name": att.get("filename"),
            "content": att.get("data"),
        }
        for att in b64_attachments(attachments)
    ]


def dumps_json(value: Any) -> str:
    """A structured value as the JSON text an attribute carries.

    ``json.dumps`` for what orjson refuses (integers beyond 64 bits in metadata).
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)


def conversation_attributes(
    conversation_id: str, fields: dict[str, Any], *, capture: bool
) -> Attributes:
    """What every span and log record of a conversation carries."""
    attrs: Attributes = [
        ("gen_ai.conversation.id", conversation_id),
        ("session.id", conversation_id),
    ]
    customer = fields.get("customer_id")
    if customer is not None:
        attrs.append(("user.id", str(customer)))
    for key, name in _CONVERSATION_ATTR.items():
        value = fields.get(key)
        if value is not None:
            attrs.append((name, str(value)))
    if capture and fields.get("metadata") is not None:
        attrs.append(("agentsight.conversation.metadata", dumps_json(fields["metadata"])))
    return attrs


class Turns:
    """Per conversation: the turn at the start and at the end of its latest batch.

    ``begin`` is called once per conversation block, before any event is
    mapped, and records both ends at once - so an export cancelled half-way
    leaves nothing half-updated.  Bounded: the least recently used
    conversation is forgotten beyond *max_conversations*.
    """

    def __init__(self, max_conversations: int = MAX_CONVERSATIONS) -> None:
        self._state: OrderedDict[str, tuple[int, Turn | None, Turn | None]] = OrderedDict()
        self._max = max_conversations

    def __len__(self) -> int:
        return len(self._state)

    def begin(self, conv: ConversationBatch) -> Turn | None:
        """The turn *conv*'s first event belongs to.

        The same batch cut again (same first event) starts in the turn it
        started in before; a later batch starts in the turn the previous one
        ended in.  A first event older than the remembered one (another
        process's spool) has no known turn.
        """
        events = conv.events
        if not events:
            return None
        first = events[0].seq
        known = self._state.get(conv.conversation_id)
        if known is None or first < known[0]:
            start = None
        elif first == known[0]:
            start = known[1]
        else:
            start = known[2]
        end = start
        for ev in reversed(events):
            if ev.kind == ev_mod.QUESTION:
                end = (ev.seq, ev.ts_ns)
                break
        self._state[conv.conversation_id] = (first, start, end)
        self._state.move_to_end(conv.conversation_id)
        while len(self._state) > self._max:
            self._state.popitem(last=False)
        return start


class ConversationMapper:
    """Maps one conversation block's events, in tracking order, to spans and log records.

    Args:
        conv: the conversation's share of a batch.
        turn: the turn its first event belongs to (:meth:`Turns.begin`).
        capture: send content (``otlp_capture_content``).
        agent_name: ``gen_ai.agent.name`` of turn spans, if any.

    Feed it with :meth:`add`; read :attr:`spans` and :attr:`logs`.
    """

    def __init__(
        self,
        conv: ConversationBatch,
        turn: Turn | None,
        *,
        capture: bool,
        agent_name: str | None = None,
    ) -> None:
        self.conversation_id = conv.conversation_id
        self.shared = conversation_attributes(
            conv.conversation_id, block_fields(conv), capture=capture
        )
        self.capture = capture
        self.agent_name = agent_name
        self.turn_name = f"invoke_agent {agent_name}" if agent_name else "invoke_agent"
        self.turn = turn
        self.spans: list[SpanData] = []
        self.logs: list[LogData] = []

    def add(self, ev: Event) -> None:
        """Map *ev* (the next event of the block).

        Raises:
            ValueError: for an event kind without a mapping.
        """
        mapper = self._MAPPERS.get(ev.kind)
        if mapper is None:
            raise ValueError(f"unknown event kind {ev.kind!r}")
        mapper(self, ev)

    # -- helpers ---------------------------------------------------------------------------

    def _context(self, ev: Event) -> tuple[int, int]:
        """Trace id and parent span id of an item of the current turn (own trace if none)."""
        turn = self.turn
        if turn is None:
            return trace_id_of(ev.seq, ev.ts_ns), 0
        return trace_id_of(*turn), turn[0] & _MASK64

    def _metadata(self, attrs: Attributes, metadata: Any) -> None:
        if self.capture and metadata:
            attrs.append(("agentsight.metadata", dumps_json(metadata)))

    def _message_attrs(self, data: dict[str, Any], role: str, key: str) -> Attributes:
        """A message's parts as ``gen_ai.{input,output}.messages`` (with capture), plus counts."""
        attrs: Attributes = []
        files = data.get("attachments") or []
        if files:
            attrs.append(("agentsight.attachment.count", len(files)))
        if not self.capture:
            return attrs
        content = data.get("content")
        parts = [] if content is None else [{"type": "text", "content": content}]
        if files:
            parts += file_parts(list(files))
        message: dict[str, Any] = {"role": role, "parts": parts}
        if role == "assistant":
            message["finish_reason"] = "stop"
        attrs.append((key, dumps_json([message])))
        self._metadata(attrs, data.get("metadata"))
        return attrs

    # -- one method per event kind ---------------------------------------------------------

    def _question(self, ev: Event) -> None:
        """The turn: a root ``invoke_agent`` span whose span id is the message's id."""
        seq, ts = ev.seq, ev.ts_ns
        self.turn = (seq, ts)
        attrs: Attributes = [("gen_ai.operation.name", "invoke_agent")]
        if self.agent_name:
            attrs.append(("gen_ai.agent.name", self.agent_name))
        attrs += self._message_attrs(ev.data, "user", "gen_ai.input.messages")
        self.spans.append(
            SpanData(
                trace_id_of(seq, ts),
                seq & _MASK64,
                0,
                self.turn_name,
                SPAN_KIND_INTERNAL,
                ts,
                ts,
                attrs,
            )
        )

    def _message(self, ev: Event) -> None:
        """An agent reply, or files on their own: one message in a span of its turn."""
        data = ev.data
        sender = "agent" if ev.kind == ev_mod.ANSWER else data.get("sender") or "end_user"
        role, key = _ROLES.get(sender, _ROLES["end_user"])
        attrs: Attributes = [("agentsight.message.sender", sender)]
        attrs += self._message_attrs(data, role, key)
        trace, parent = self._context(ev)
        ts = ev.ts_ns
        self.spans.append(
            SpanData(
                trace, ev.seq & _MASK64, parent, MESSAGE_SPAN, SPAN_KIND_INTERNAL, ts, ts, attrs
            )
        )

    def _action(self, ev: Event) -> None:
        """``execute_tool {name}`` over the action's own window; an error sets status ERROR."""
        data = ev.data
        name = str(data.get("action_name") or "action")
        start, end = action_window(data, ev.ts_ns)
        attrs: Attributes = [
            ("gen_ai.operation.name", "execute_tool"),
            ("gen_ai.tool.name", name),
        ]
        capture = self.capture
        if capture and data.get("tools_used") is not None:
            attrs.append(("gen_ai.tool.call.arguments", dumps_json(data["tools_used"])))
        error = data.get("error_msg")
        if capture and data.get("response") is not None and error is None:
            attrs.append(("gen_ai.tool.call.result", str(data["response"])))
        self._metadata(attrs, data.get("metadata"))
        trace, parent = self._context(ev)
        sid = ev.seq & _MASK64
        status, message = STATUS_UNSET, ""
        if error is not None:
            attrs.append(("error.type", OTHER_ERROR))
            status, message = STATUS_ERROR, str(error) if capture else ""
        name = f"execute_tool {name}"
        self.spans.append(
            SpanData(
                trace, sid, parent, name, SPAN_KIND_INTERNAL, start, end, attrs, status, message
            )
        )
        if error is not None and capture:
            exception: Attributes = [
                ("exception.type", OTHER_ERROR),
                ("exception.message", message),
            ]
            self.logs.append(LogData(end, EXCEPTION_EVENT, SEVERITY_ERROR, trace, sid, exception))

    def _token_usage(self, ev: Event) -> None:
        """``{operation} {model}`` (``chat`` unless the call says otherwise): one model call.

        ``prompt_tokens`` counts every input token, cached ones included, as
        ``gen_ai.usage.input_tokens`` does; cache reads and writes and reasoning
        tokens are its parts.  ``gen_ai.request.model`` is the model asked for
        and ``gen_ai.response.model`` the one that answered, when the call
        said which it asked for.
        The span ends at the tracking time (a captured call is tracked when it
        ends) and starts ``duration_ms`` earlier; an error sets status ERROR.
        """
        data = ev.data
        model = data.get("model")
        requested = data.get("requested_model") or model
        operation = str(data.get("operation") or "chat")
        attrs: Attributes = [("gen_ai.operation.name", operation)]
        if data.get("system"):
            attrs.append(("gen_ai.provider.name", str(data["system"])))
        if requested:
            attrs.append(("gen_ai.request.model", str(requested)))
        if model and data.get("requested_model"):
            attrs.append(("gen_ai.response.model", str(model)))
        attrs.append(("gen_ai.usage.input_tokens", int(data.get("prompt_tokens") or 0)))
        attrs.append(("gen_ai.usage.output_tokens", int(data.get("completion_tokens") or 0)))
        for key, attr in _USAGE_DETAILS.items():
            value = data.get(key)
            if value is not None and (value != 0 or isinstance(value, bool)):
                attrs.append((attr, value))
        trace, parent = self._context(ev)
        end = ev.ts_ns
        start = end - int((data.get("duration_ms") or 0) * 1_000_000)
        error = data.get("error")
        status, message = STATUS_UNSET, ""
        if error is not None:
            attrs.append(("error.type", OTHER_ERROR))
            status, message = STATUS_ERROR, str(error) if self.capture else ""
        name = f"{operation} {model}" if model else operation
        self.spans.append(
            SpanData(
                trace, ev.seq & _MASK64, parent, name, SPAN_KIND_CLIENT, start, end, attrs,
                status, message,
            )
        )  # fmt: skip

    def _button(self, ev: Event) -> None:
        """``app.widget.click``, in the turn's trace context."""
        data = ev.data
        attrs: Attributes = [
            ("agentsight.event.id", f"{ev.seq & _MASK64:016x}"),
            ("app.widget.id", str(data.get("button_event") or "")),
        ]
        if self.capture:
            attrs.append(("app.widget.name", str(data.get("label") or "")))
            attrs.append(("agentsight.button.value", str(data.get("value") or "")))
            self._metadata(attrs, data.get("metadata"))
        trace, span = (0, 0) if self.turn is None else self._context(ev)
        self.logs.append(LogData(ev.ts_ns, BUTTON_EVENT, SEVERITY_INFO, trace, span, attrs))

    def _conversation(self, ev: Event) -> None:
        """The conversation row itself (its fields are on every record already)."""
        attrs: Attributes = [
            ("agentsight.event.id", f"{ev.seq & _MASK64:016x}"),
            ("agentsight.conversation.used", ev.kind == ev_mod.CONVERSATION),
        ]
        self.logs.append(LogData(ev.ts_ns, CONVERSATION_EVENT, SEVERITY_INFO, 0, 0, attrs))

    #: Event kind -> the method that maps it.
    _MAPPERS: ClassVar[dict[str, Callable[[ConversationMapper, Event], None]]] = {
        ev_mod.QUESTION: _question,
        ev_mod.ANSWER: _message,
        ev_mod.ATTACHMENTS: _message,
        ev_mod.ACTION: _action,
        ev_mod.TOKEN_USAGE: _token_usage,
        ev_mod.BUTTON: _button,
        ev_mod.CONVERSATION: _conversation,
        ev_mod.CONVERSATION_OPENED: _conversation,
    }


__all__ = [
    "SIGNAL",
    "ConversationMapper",
    "LogData",
    "SpanData",
    "Turns",
    "conversation_attributes",
    "file_parts",
    "modality",
    "trace_id_of",
]
