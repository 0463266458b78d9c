"""Received OTLP spans and log records as transcripts: the ingest projection, reused.

Nothing new is stored: every OTLP span or event becomes the ingest span that
carries the same meaning (protocol §3.3-§3.4) and goes through
:meth:`Store.ingest` - one transaction per conversation, deduplicated by span
id, projected into messages, actions, buttons, attachments and token usage.
So a conversation sent by our SDK over ``otlp`` reads back exactly as one sent
over ``ingest``, and spans from anyone's OpenTelemetry GenAI instrumentation
appear in the same pages and read API.

How a received span is read (``gen_ai.operation.name`` decides):

* ``invoke_agent`` / ``invoke_workflow`` - a ``turn``: the trailing ``user``
  messages of ``gen_ai.input.messages`` at its start (earlier ones are history
  the turn was given), its ``gen_ai.output.messages`` at its end;
* a span with ``agentsight.message.sender`` (our SDK's replies and files) -
  a ``turn`` holding its one message;
* ``execute_tool`` - a ``tool`` (an action): ``gen_ai.tool.*``, status ERROR
  for a failure;
* ``chat`` / ``text_completion`` / ``generate_content`` / ``embeddings`` - an
  ``llm`` span (token usage).  ``gen_ai.usage.input_tokens`` includes cached
  tokens; the store counts uncached input, so cache reads and creations are
  taken out.  A *root* inference span (an application that calls a model with
  no agent span around it) also yields its messages, as a turn would;
* any other GenAI span is archived only.

Messages' ``blob`` parts are stored as attachments first, with the upload the
ingest exporter would have sent (a message's own files one microsecond after
it, under a derived span id), and the span that describes them claims them.

Log records: ``app.widget.click`` is a button, ``agentsight.conversation``
the conversation row; other records are not stored.

The conversation is ``gen_ai.conversation.id`` (else ``session.id``) of the
record, else of another span of its trace in the same request; a GenAI span
without either is its trace's own conversation, ``otel-trace-<trace id>``.
Spans with neither a conversation nor a ``gen_ai.*`` attribute (an HTTP
server's, a database's) are not stored; the answer says how many.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from agentsight_async._events import iso_utc
from agentsight_async._exporters._spans import LINKED_OFFSET_NS, derived_span_id
from agentsight_async._store import ENVIRONMENTS, IngestValidationError, Store, StoreError

if TYPE_CHECKING:
    from ._otlp_decode import OtelLog, OtelSpan

#: Attributes naming a record's conversation, in order of preference.
CONVERSATION_KEYS: Final = ("gen_ai.conversation.id", "session.id")
#: Conversation fields carried as attributes (``user.id`` is the customer).
FIELD_ATTRS: Final = {
    "agentsight.conversation.name": "name",
    "agentsight.conversation.device": "device",
    "agentsight.conversation.source": "source",
    "agentsight.conversation.language": "language",
    "agentsight.conversation.environment": "environment",
    "agentsight.conversation.customer_ip": "customer_ip_address",
    "enduser.id": "customer_id",
    "user.id": "customer_id",
}
TURN_OPERATIONS: Final = frozenset({"invoke_agent", "invoke_workflow"})
INFERENCE_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings"}
)
ROLE_SENDER: Final = {"user": "end_user", "assistant": "agent", "system": "system"}
SPAN_KINDS: Final = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUSES: Final = ("unset", "ok", "error")
MAX_FIELD: Final = 255
_ENVIRONMENTS: Final = frozenset(e["slug"] for e in ENVIRONMENTS)


@dataclass
class Applied:
    """What became of one request's records.

    ``rejected`` records could not be stored (a partial success); ``ignored``
    ones were accepted but are not conversation data.
    """

    stored: int = 0
    rejected: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The partial-success ``error_message`` (empty when there is nothing to say)."""
        notes = list(self.reasons)
        if self.ignored:
            notes.append(
                f"{self.ignored} record(s) carried no conversation id and no GenAI "
                "attributes; not stored"
            )
        return "; ".join(notes)


@dataclass
class _Conversation:
    """One conversation's share of a request: its fields, ingest spans and file uploads."""

    conversation_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)
    #: (upload body, idempotency key, the attributes of the span that describes it)
    uploads: list[tuple[dict[str, Any], str, dict[str, Any]]] = field(default_factory=list)
    received: int = 0


# --- values -----------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A structured attribute, whether it came as JSON text or as an OTLP structure."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _count(value: Any) -> int:
    """A token count from an attribute (a number, or digits as text); anything else is 0."""
    if isinstance(value, bool):
        return 0
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def conversation_of(attrs: Mapping[str, Any]) -> str | None:
    """The conversation a record names, if it names one."""
    for key in CONVERSATION_KEYS:
        value = attrs.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _fields(attrs: Mapping[str, Any], into: dict[str, Any]) -> None:
    """Conversation fields from a record's attributes (later records win); invalid ones
    (a bad IP, an environment the store does not have) are left out, as the ingest
    exporter leaves them out, rather than fail the conversation."""
    for attr, key in FIELD_ATTRS.items():
        value = attrs.get(attr)
        if value is None or value == "":
            continue
        text = str(value)[:MAX_FIELD]
        if key == "customer_ip_address":
            try:
                ipaddress.ip_address(text)
            except ValueError:
                continue
        if key == "environment" and text not in _ENVIRONMENTS:
            continue
        into[key] = text
    metadata = _json_value(attrs.get("agentsight.conversation.metadata"))
    if isinstance(metadata, dict):
        into["metadata"] = metadata


# --- messages ---------------------------------------------------------------------------


@dataclass
class _Message:
    sender: str
    text: str | None
    files: list[dict[str, Any]]
    at_ns: int


def _parts(message: Mapping[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """A GenAI message's text (its text parts joined) and its file parts."""
    parts = message.get("parts")
    if not isinstance(parts, list):  # the pre-1.37 shape: {"role", "content": "..."}
        content = message.get("content")
        return (content if isinstance(content, str) else None), []
    texts: list[str] = []
    files: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif kind in ("blob", "file", "uri"):
            files.append(dict(part))
    return ("\n".join(texts) if texts else None), files


def _messages(value: Any, at_ns: int, *, trailing_user: bool) -> list[_Message]:
    """Messages of a ``gen_ai.{input,output}.messages`` attribute that belong in a transcript.

    With *trailing_user*, only the user messages after the last other message
    (the turn's new input; what came before is history); otherwise every
    user, assistant and system message.
    """
    parsed = _json_value(value)
    if not isinstance(parsed, list):
        return []
    items = [m for m in parsed if isinstance(m, Mapping)]
    if trailing_user:
        start = len(items)
        while start and items[start - 1].get("role") == "user":
            start -= 1
        items = items[start:]
    out = []
    for item in items:
        sender = ROLE_SENDER.get(str(item.get("role")))
        if sender is None:
            continue
        text, files = _parts(item)
        if text is not None or files:
            out.append(_Message(sender, text, files, at_ns))
    return out


def _turn_messages(sp: OtelSpan) -> list[_Message]:
    """A turn's new messages: the trailing user input at its start, the replies at its end."""
    attrs = sp.attributes
    replies = _messages(attrs.get("gen_ai.output.messages"), sp.end_ns, trailing_user=False)
    return [
        *_messages(attrs.get("gen_ai.input.messages"), sp.start_ns, trailing_user=True),
        *(m for m in replies if m.sender == "agent"),
    ]


def _file_descriptor(i: int, part: Mapping[str, Any]) -> dict[str, Any]:
    name = part.get("name") or part.get("filename") or part.get("file_id") or part.get("uri")
    content = part.get("content")
    size = None
    if isinstance(content, str):
        size = len(content) * 3 // 4 - content[-2:].count("=")
    return {
        "filename": str(name or f"attachment_{i}"),
        "size": size,
        "mime_type": part.get("mime_type"),
    }


# --- spans --------------------------------------------------------------------------------


def _ingest_span(
    sp: OtelSpan,
    kind: str,
    *,
    span_id: str | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    attributes: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    start = sp.start_ns if start_ns is None else start_ns
    end = sp.end_ns if end_ns is None else end_ns
    if start <= 0:
        start = end if end > 0 else time.time_ns()
    end = max(end, start)
    return {
        "span_id": span_id or sp.span_id,
        "trace_id": sp.trace_id,
        "parent_span_id": sp.parent_span_id,
        "kind": kind,
        "name": sp.name if name is None else name,
        "started_at": iso_utc(start),
        "ended_at": iso_utc(end),
        "duration_ms": round((end - start) / 1e6, 3),
        "status": STATUSES[sp.status_code] if 0 <= sp.status_code < 3 else "unset",
        "attributes": sp.attributes if attributes is None else attributes,
        "events": events or [],
        "otel": {
            "received_as": "otlp",
            "span_kind": SPAN_KINDS[sp.kind] if 0 <= sp.kind < len(SPAN_KINDS) else "UNSPECIFIED",
            "status_description": sp.status_message or None,
            "resource": sp.resource,
            "scope": sp.scope,
        },
    }


def _without_blob_content(attrs: dict[str, Any]) -> dict[str, Any]:
    """The archived copy of a span's attributes: file bytes live in the attachment rows."""
    out = dict(attrs)
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        parsed = _json_value(out.get(key))
        if not isinstance(parsed, list) or '"blob"' not in json.dumps(parsed):
            continue
        for message in parsed:
            for part in message.get("parts") or [] if isinstance(message, dict) else []:
                if isinstance(part, dict) and part.get("type") == "blob" and "content" in part:
                    part["content"] = "<stored as an attachment>"
        out[key] = json.dumps(parsed, ensure_ascii=False)
    return out


class _Translator:
    """Turns one request's spans into per-conversation ingest blocks and uploads."""

    def __init__(self) -> None:
        self.conversations: dict[str, _Conversation] = {}
        self.applied = Applied()

    def conversation(self, cid: str) -> _Conversation:
        conv = self.conversations.get(cid)
        if conv is None:
            conv = self.conversations[cid] = _Conversation(cid)
        return conv

    def add_span(self, sp: OtelSpan, cid: str) -> None:
        conv = self.conversation(cid)
        conv.received += 1
        _fields(sp.resource, conv.fields)
        _fields(sp.attributes, conv.fields)
        attrs = sp.attributes
        op = attrs.get("gen_ai.operation.name")
        if op in TURN_OPERATIONS:
            self._messages(conv, sp, _turn_messages(sp), turn_id=sp.span_id, always=True)
        elif attrs.get("agentsight.message.sender") is not None:
            messages = [
                *_messages(attrs.get("gen_ai.input.messages"), sp.start_ns, trailing_user=False),
                *_messages(attrs.get("gen_ai.output.messages"), sp.start_ns, trailing_user=False),
            ]
            sender = str(attrs["agentsight.message.sender"])
            for m in messages:
                m.sender = sender
            self._messages(conv, sp, messages, turn_id=sp.span_id, always=False)
        elif op == "execute_tool":
            conv.spans.append(self._tool(sp))
        elif op in INFERENCE_OPERATIONS:
            conv.spans.append(self._llm(sp))
            if sp.parent_span_id is None:  # a model called with no agent span around it
                turn_id = derived_span_id(sp.span_id, "messages")
                self._messages(conv, sp, _turn_messages(sp), turn_id=turn_id, always=False)
        else:
            conv.spans.append(_ingest_span(sp, str(op or "span")))

    def _messages(
        self,
        conv: _Conversation,
        sp: OtelSpan,
        messages: list[_Message],
        *,
        turn_id: str,
        always: bool,
    ) -> None:
        """A turn span with the messages that have text, then one attachment group per
        message with files (at the message's time when it has no text, else just after)."""
        metadata = _text_of(_json_value(sp.attributes.get("agentsight.metadata")))
        events = []
        for m in messages:
            if m.text is None:
                continue
            ev_attrs = {"agentsight.message.sender": m.sender, "agentsight.message.content": m.text}
            if metadata:
                ev_attrs["agentsight.message.metadata"] = metadata
            events.append(
                {
                    "name": "agentsight.message",
                    "timestamp": iso_utc(m.at_ns),
                    "attributes": ev_attrs,
                }
            )
        if events or always:
            attrs = _without_blob_content(sp.attributes)
            attrs.update({"agentsight.turn.id": turn_id, "agentsight.turn.complete": True})
            conv.spans.append(
                _ingest_span(sp, "turn", span_id=turn_id, attributes=attrs, events=events)
            )
        with_files = [m for m in messages if m.files]
        for i, m in enumerate(with_files):
            if m.text is None and not events and i == 0:
                sid, at = sp.span_id, m.at_ns
            else:
                purpose = "attachments" if len(with_files) == 1 else f"attachments:{i}"
                sid, at = derived_span_id(sp.span_id, purpose), m.at_ns + LINKED_OFFSET_NS
            stored = [
                p for p in m.files if p.get("type") == "blob" and isinstance(p.get("content"), str)
            ]
            referenced = [p for p in m.files if p not in stored]
            if stored:
                conv.spans.append(self._attachment(conv, sp, m, stored, sid, at, metadata))
            if referenced:  # files known by id or URI only: described, no bytes
                ref_id = derived_span_id(sid, "references") if stored else sid
                conv.spans.append(self._attachment(conv, sp, m, referenced, ref_id, at, metadata))

    def _attachment(
        self,
        conv: _Conversation,
        sp: OtelSpan,
        m: _Message,
        files: list[dict[str, Any]],
        sid: str,
        at_ns: int,
        metadata: str | None,
    ) -> dict[str, Any]:
        """An ``attachment`` span for *files*; ``blob`` parts with bytes are uploaded first
        (the span says ``mode=base64`` and claims the upload), others only described."""
        descriptors = [_file_descriptor(i, part) for i, part in enumerate(files)]
        attrs: dict[str, Any] = {
            "agentsight.attachment.sender": m.sender,
            "agentsight.attachment.count": len(descriptors),
            "agentsight.attachment.files": json.dumps(descriptors),
        }
        if metadata:
            attrs["agentsight.metadata"] = metadata
        if all(isinstance(part.get("content"), str) for part in files):
            attrs["agentsight.attachment.mode"] = "base64"
            blobs = [
                {
                    "filename": d["filename"],
                    "mime_type": part.get("mime_type"),
                    "data": part["content"],
                }
                for d, part in zip(descriptors, files, strict=True)
            ]
            body = {
                "conversation_id": conv.conversation_id,
                "timestamp": iso_utc(at_ns),
                "mode": "base64",
                "sender": m.sender,
                "metadata": _json_value(metadata) or {},
                "attachments": blobs,
            }
            conv.uploads.append((body, f"otlp:{sp.trace_id}:{sid}", attrs))
        name = f"{len(descriptors)} attachment(s)"
        return _ingest_span(
            sp, "attachment", span_id=sid, start_ns=at_ns, end_ns=at_ns, attributes=attrs, name=name
        )

    @staticmethod
    def _tool(sp: OtelSpan) -> dict[str, Any]:
        attrs = dict(sp.attributes)
        name = attrs.get("gen_ai.tool.name") or sp.name.removeprefix("execute_tool ").strip()
        attrs["agentsight.tool.name"] = str(name or "tool")
        if attrs.get("gen_ai.tool.call.arguments") is not None:
            attrs["agentsight.tool.arguments"] = _text_of(attrs["gen_ai.tool.call.arguments"])
        if attrs.get("gen_ai.tool.call.result") is not None:
            attrs["agentsight.tool.response"] = _text_of(attrs["gen_ai.tool.call.result"])
        if sp.status_code == 2:
            attrs["agentsight.tool.error"] = (
                sp.status_message or str(attrs.get("error.type") or "") or "error"
            )
        return _ingest_span(sp, "tool", attributes=attrs)

    @staticmethod
    def _llm(sp: OtelSpan) -> dict[str, Any]:
        """An ``llm`` span: the store counts *uncached* input (protocol §3.4), names the
        model that answered, and keeps the one asked for when the span names both."""
        attrs = dict(sp.attributes)
        cache_read = _count(attrs.get("gen_ai.usage.cache_read.input_tokens"))
        cache_write = _count(
            attrs.get("gen_ai.usage.cache_creation.input_tokens")
            or attrs.get("gen_ai.usage.cache_write.input_tokens")
        )
        given = attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
        output = attrs.get(
            "gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens")
        )
        attrs["gen_ai.usage.input_tokens"] = max(0, _count(given) - cache_read - cache_write)
        attrs["gen_ai.usage.output_tokens"] = _count(output)
        for key, value in (
            ("agentsight.llm.cache_read_tokens", cache_read),
            ("agentsight.llm.cache_write_tokens", cache_write),
            (
                "agentsight.llm.reasoning_tokens",
                _count(attrs.get("gen_ai.usage.reasoning.output_tokens")),
            ),
            (
                "agentsight.llm.embedding_tokens",
                _count(attrs.get("agentsight.usage.embedding_tokens")),
            ),
        ):
            if value:
                attrs[key] = value
        system = str(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or "unknown")
        requested = attrs.get("gen_ai.request.model")
        model = attrs.get("gen_ai.response.model") or requested
        attrs["gen_ai.system"] = system
        if model:
            attrs["gen_ai.request.model"] = str(model)
        if requested and attrs.get("gen_ai.response.model"):
            attrs["agentsight.llm.requested_model"] = str(requested)
        if sp.status_code == 2:
            attrs["agentsight.llm.error"] = sp.status_message
        return _ingest_span(sp, "llm", attributes=attrs, name=str(model or system))

    # -- log records ---------------------------------------------------------------------

    def add_log(self, rec: OtelLog, cid: str) -> bool:
        """Map a log record; False when it is not one we store."""
        attrs = rec.attributes
        if rec.event_name == "app.widget.click":
            kind = "button"
            widget = str(attrs.get("app.widget.id") or "")
            label = str(attrs.get("app.widget.name") or "")
            span_attrs: dict[str, Any] = {
                **attrs,
                "agentsight.button.event": widget,
                "agentsight.button.label": label,
                "agentsight.button.value": str(attrs.get("agentsight.button.value") or ""),
            }
            name = label or widget or "button"
        elif rec.event_name == "agentsight.conversation":
            kind, span_attrs, name = "conversation", dict(attrs), "conversation"
        else:
            return False
        conv = self.conversation(cid)
        conv.received += 1
        _fields(rec.resource, conv.fields)
        _fields(attrs, conv.fields)
        sid = str(attrs.get("agentsight.event.id") or "") or _log_id(rec)
        at = rec.time_ns if rec.time_ns > 0 else time.time_ns()
        conv.spans.append(
            {
                "span_id": sid,
                "trace_id": rec.trace_id,
                "parent_span_id": rec.span_id,
                "kind": kind,
                "name": name,
                "started_at": iso_utc(at),
                "ended_at": iso_utc(at),
                "duration_ms": 0.0,
                "status": "unset",
                "attributes": span_attrs,
                "events": [],
                "otel": {"received_as": "otlp log record", "resource": rec.resource},
            }
        )
        return True


def _log_id(rec: OtelLog) -> str:
    """A stable id for a log record that brought none: a replayed record gets the same."""
    key = json.dumps(
        [rec.time_ns, rec.event_name, rec.trace_id, rec.span_id, rec.attributes],
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def _by_trace(records: Iterable[OtelSpan | OtelLog]) -> dict[str, str]:
    """Trace id -> conversation, from the records that name one (the first named wins)."""
    by_trace: dict[str, str] = {}
    for rec in records:
        cid = conversation_of(rec.attributes) or conversation_of(rec.resource)
        if cid is not None and rec.trace_id and rec.trace_id not in by_trace:
            by_trace[rec.trace_id] = cid
    return by_trace


def _is_genai(attrs: Mapping[str, Any]) -> bool:
    return any(key.startswith("gen_ai.") for key in attrs)


def apply_spans(store: Store, spans: list[OtelSpan]) -> Applied:
    """Store what *spans* say about conversations; see the module docstring."""
    by_trace = _by_trace(spans)
    tr = _Translator()
    for sp in spans:
        cid = (
            conversation_of(sp.attributes)
            or conversation_of(sp.resource)
            or by_trace.get(sp.trace_id)
        )
        if cid is None:
            if not _is_genai(sp.attributes):
                tr.applied.ignored += 1
                continue
            cid = f"otel-trace-{sp.trace_id}"
        tr.add_span(sp, cid)
    return _store(store, tr)


def apply_logs(store: Store, logs: list[OtelLog]) -> Applied:
    """Store the button and conversation events among *logs*."""
    by_trace = _by_trace(logs)
    tr = _Translator()
    for rec in logs:
        cid = conversation_of(rec.attributes) or conversation_of(rec.resource)
        if cid is None and rec.trace_id:
            cid = by_trace.get(rec.trace_id)
        if cid is None or not tr.add_log(rec, cid):
            tr.applied.ignored += 1
    return _store(store, tr)


def _store(store: Store, tr: _Translator) -> Applied:
    """Uploads first, then one ingest payload; a conversation the store refuses is rejected."""
    applied = tr.applied
    blocks: list[tuple[_Conversation, dict[str, Any]]] = []
    for conv in tr.conversations.values():
        if len(conv.conversation_id) > MAX_FIELD:
            applied.rejected += conv.received
            applied.reasons.append(f"conversation id longer than {MAX_FIELD} characters")
            continue
        _upload(store, conv)
        block = {"conversation_id": conv.conversation_id, **conv.fields, "spans": conv.spans}
        blocks.append((conv, block))
    while blocks:
        try:
            store.ingest({"conversations": [block for _, block in blocks]})
        except IngestValidationError as exc:
            failed = {
                entry["index"]
                for entry in exc.body.get("conversations", [])
                if isinstance(entry, dict) and isinstance(entry.get("index"), int)
            }
            if not failed:  # not about one conversation: the whole request
                applied.rejected += sum(conv.received for conv, _ in blocks)
                applied.reasons.append(str(exc.body.get("detail") or "refused"))
                return applied
            for i in sorted(failed):
                conv = blocks[i][0]
                applied.rejected += conv.received
                applied.reasons.append(f"conversation {conv.conversation_id!r} refused")
            blocks = [b for i, b in enumerate(blocks) if i not in failed]
            continue
        applied.stored += sum(conv.received for conv, _ in blocks)
        break
    return applied


def _upload(store: Store, conv: _Conversation) -> None:
    """The files of a conversation's messages, stored as the ingest exporter uploads them.

    An upload the store refuses (bad base64) leaves its span describing the
    files without their bytes.
    """
    if not conv.uploads:
        return
    pk = store.create_conversation({"conversation_id": conv.conversation_id, **conv.fields})["id"]
    for body, key, span_attrs in conv.uploads:
        try:
            store.create_attachments({**body, "conversation": str(pk)}, idempotency_key=key)
        except StoreError:
            span_attrs.pop("agentsight.attachment.mode", None)


__all__ = ["Applied", "apply_logs", "apply_spans", "conversation_of"]
