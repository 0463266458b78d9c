"""Apply validated ingest payloads: upsert, archive spans, project the transcript.

Each span is archived in ``spans`` under ``UNIQUE (conversation, span_id)``;
a replayed span hits the constraint and is a no-op, projection included, so
a retried batch (0.1.4 resends byte-identical payloads) never duplicates rows.

Projection (protocol §3.4): ``turn`` message events -> messages (incomplete
turns stay archive-only), ``tool``/``task`` -> actions, ``button`` -> buttons,
``attachment`` -> attachment descriptors, ``llm`` -> token usage.
``conversation`` and unknown kinds are archived only.

A payload is written in one pass inside the caller's transaction, one
``executemany`` per table for all of its conversations.  The pass takes every
span for new - the usual case, since a retry is rare - and the archive's row
count checks it: when the unique index ignored any span, the pass is rolled
back to its savepoint and done again knowing which spans are stored already.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any

from . import _rows, _timeutil
from ._rows import dumps, dumps_json
from ._validate import DEFAULT_ENVIRONMENT, IngestBlock, IngestSpan

#: Conversation ids looked up per query (SQLite before 3.32 allows 999 parameters).
_LOOKUP_CHUNK = 500

_INSERT_SPAN = (
    "INSERT OR IGNORE INTO spans (conversation, span_id, trace_id, parent_span_id, kind, "
    "name, started_at, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _Replayed(Exception):
    """The archive ignored a span the first pass took for new."""


def apply(
    conn: sqlite3.Connection,
    agent_id: int,
    blocks: Sequence[IngestBlock],
    *,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Store validated conversation blocks inside the caller's transaction.

    *now* is the receive time written to ``created_at``/``updated_at``/
    ``received_at`` (one per request, so every row of it carries the same).

    Returns:
        Per block: ``{"conversation_id", "id", "accepted", "duplicates"}``.
    """
    now = now or _timeutil.now_iso()
    conn.execute("SAVEPOINT ingest")
    try:
        results = _Pass(conn, agent_id, now, stored=None).run(blocks)
    except _Replayed:
        conn.execute("ROLLBACK TO ingest")
        stored = _stored_spans(conn, agent_id, blocks)
        results = _Pass(conn, agent_id, now, stored=stored).run(blocks)
    conn.execute("RELEASE ingest")
    return results


class _Pass:
    r"""One pass over a payload: the rows it writes, buffered per table.

    Ids come from the shared sequence (``_schema``): this transaction is the
    only writer, so they are handed out here as ``last_id + 1, + 2, ...`` in
    projection order - the order ``new_id`` would have given them - and
    :meth:`flush` moves the sequence past them.  A projector that writes
    directly (attachments) flushes first and :meth:`sync`\ s after, so the
    sequence continues where its rows end.

    *stored* is ``None`` on the first pass (every span is new, and the
    archive's row count must agree); on the second, the ``(conversation pk,
    span_id)`` pairs stored before this request.
    """

    __slots__ = (
        "actions",
        "agent_id",
        "buttons",
        "conn",
        "conversations",
        "last_id",
        "messages",
        "now",
        "seen",
        "sequence",
        "spans",
        "stored",
        "token_usage",
    )

    def __init__(
        self,
        conn: sqlite3.Connection,
        agent_id: int,
        now: str,
        *,
        stored: set[tuple[int, str]] | None,
    ) -> None:
        self.conn = conn
        self.agent_id = agent_id
        self.now = now
        self.stored = stored
        self.seen: set[tuple[int, str]] = set()
        self.last_id = self.sequence = 0
        #: Conversation inserts and updates, in payload order: ``(sql, parameters)``.
        self.conversations: list[tuple[str, tuple[Any, ...]]] = []
        self.spans: list[tuple[Any, ...]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.actions: list[tuple[Any, ...]] = []
        self.buttons: list[tuple[Any, ...]] = []
        self.token_usage: list[tuple[Any, ...]] = []

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def sync(self) -> None:
        """Continue the sequence after rows written directly (``_rows.new_id``)."""
        self.last_id = self.sequence = _rows.last_id(self.conn)

    def run(self, blocks: Sequence[IngestBlock]) -> list[dict[str, Any]]:
        pks = _conversation_pks(self.conn, self.agent_id, blocks)
        self.sync()
        stored, seen, spans, now = self.stored, self.seen, self.spans, self.now
        results = []
        for block in blocks:
            cid = block.conversation_id
            pk = pks.get(cid)
            if pk is None:
                pk = pks[cid] = self.new_id()
                self._insert_conversation(pk, block)
            else:
                self._update_conversation(pk, block)
            accepted = 0
            for span in block.spans:
                if stored is not None:
                    key = (pk, span.span_id)
                    if key in stored or key in seen:
                        continue
                    seen.add(key)
                accepted += 1
                spans.append(
                    (
                        pk,
                        span.span_id,
                        span.trace_id,
                        span.parent_span_id,
                        span.kind,
                        span.name,
                        span.started_at,
                        dumps_json(span.raw),
                        now,
                    )
                )
                project = _PROJECTORS.get(span.kind)
                if project is not None:
                    project(self, pk, span)
            results.append(
                {
                    "conversation_id": cid,
                    "id": pk,
                    "accepted": accepted,
                    "duplicates": len(block.spans) - accepted,
                }
            )
        self.flush()
        return results

    def _insert_conversation(self, pk: int, block: IngestBlock) -> None:
        values = _field_values(block)
        values.setdefault("environment", DEFAULT_ENVIRONMENT)
        self.conversations.append(
            _rows.conversation_insert(
                pk,
                self.agent_id,
                block.conversation_id,
                values,
                used=block.used,
                first=block.first,
                last=block.last,
                now=self.now,
            )
        )

    def _update_conversation(self, pk: int, block: IngestBlock) -> None:
        """Sent fields overwrite, ``is_used`` only goes up, the time span only widens."""
        values = _field_values(block)
        touch = _rows.touch_params(block.first, block.last, block.used)
        if not values:
            self.conversations.append((_TOUCH_CONVERSATION, (*touch, pk)))
            return
        assignments = "".join(f"{k} = ?, " for k in values)
        self.conversations.append(
            (
                f"UPDATE conversations SET {assignments}updated_at = ?, "
                f"{_rows.TOUCH_ASSIGNMENTS} WHERE id = ?",
                (*values.values(), self.now, *touch, pk),
            )
        )

    def flush(self) -> None:
        """Write the buffered rows (conversations first: the others refer to them)."""
        conn = self.conn
        for sql, run in groupby(self.conversations, key=lambda write: write[0]):
            conn.executemany(sql, [params for _, params in run])
        self.conversations.clear()
        if self.spans:
            archived = conn.executemany(_INSERT_SPAN, self.spans).rowcount
            if self.stored is None and archived != len(self.spans):
                raise _Replayed
            self.spans.clear()
        for sql, rows in (
            (_rows.INSERT_MESSAGE, self.messages),
            (_rows.INSERT_ACTION, self.actions),
            (_rows.INSERT_BUTTON, self.buttons),
            (_rows.INSERT_USAGE, self.token_usage),
        ):
            if rows:
                conn.executemany(sql, rows)
                rows.clear()
        if self.last_id > self.sequence:
            _rows.advance_sequence(conn, self.last_id)
            self.sequence = self.last_id


_TOUCH_CONVERSATION = f"UPDATE conversations SET {_rows.TOUCH_ASSIGNMENTS} WHERE id = ?"


def _field_values(block: IngestBlock) -> dict[str, Any]:
    """The block's conversation fields as column values (metadata as JSON text)."""
    return {k: (dumps(v) if k == "metadata" else v) for k, v in block.fields.items()}


def _conversation_pks(
    conn: sqlite3.Connection, agent_id: int, blocks: Sequence[IngestBlock]
) -> dict[str, int]:
    """``conversation_id -> pk`` of the payload's conversations that exist already."""
    wanted = list(dict.fromkeys(block.conversation_id for block in blocks))
    found: dict[str, int] = {}
    for i in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[i : i + _LOOKUP_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT conversation_id, id FROM conversations "
            f"WHERE agent_id = ? AND conversation_id IN ({marks})",
            (agent_id, *chunk),
        )
        found.update((str(cid), int(pk)) for cid, pk in rows)
    return found


def _stored_spans(
    conn: sqlite3.Connection, agent_id: int, blocks: Sequence[IngestBlock]
) -> set[tuple[int, str]]:
    """The payload's ``(conversation pk, span_id)`` pairs stored before this request."""
    pks = _conversation_pks(conn, agent_id, blocks)
    stored: set[tuple[int, str]] = set()
    for block in blocks:
        pk = pks.get(block.conversation_id)
        ids = list({span.span_id for span in block.spans})
        if pk is None:
            continue
        for i in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[i : i + _LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT span_id FROM spans WHERE conversation = ? AND span_id IN ({marks})",
                (pk, *chunk),
            )
            stored.update((pk, str(sid)) for (sid,) in rows)
    return stored


# -- attribute helpers -----------------------------------------------------------


def _json_attr(value: Any) -> Any:
    """A JSON-string attribute parsed back; unparseable text is kept, not lost."""
    if value is None or isinstance(value, (dict, list)):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return {"_raw": value}
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _start(span: IngestSpan) -> tuple[str, int]:
    return span.started_at, span.started_us


def _duration(span: IngestSpan) -> float | None:
    """The duration as sent, else from the span's start and end."""
    if span.duration_ms is None and span.ended_us is not None:
        return (span.ended_us - span.started_us) / 1000
    return span.duration_ms


# -- projectors ------------------------------------------------------------------

_NO_METADATA = "{}"


def _metadata(value: Any) -> str | None:
    if value is None:
        return _NO_METADATA
    return dumps(_json_attr(value) or {})


def _turn(rows: _Pass, conv: int, span: IngestSpan) -> None:
    if span.attributes.get("agentsight.turn.complete") is False:
        return  # archived only (protocol §3.4: incomplete turns stay out of the transcript)
    for name, timestamp, ts_us, attrs in span.events:
        if name != "agentsight.message":
            continue
        content = attrs.get("agentsight.message.content")
        if content is None:
            continue
        sender = attrs.get("agentsight.message.sender") or "end_user"
        metadata = attrs.get("agentsight.message.metadata")
        rows.messages.append(
            (
                rows.new_id(),
                conv,
                sender if type(sender) is str else str(sender),
                content if type(content) is str else _text(content),
                _NO_METADATA if metadata is None else _metadata(metadata),
                timestamp,
                ts_us,
                span.span_id,
                rows.now,
            )
        )


def _tool(rows: _Pass, conv: int, span: IngestSpan) -> None:
    attrs = span.attributes
    error = _text(attrs.get("agentsight.tool.error"))
    status = "error" if error or span.status == "error" else "ok"
    rows.actions.append(
        (
            rows.new_id(),
            conv,
            str(attrs.get("agentsight.tool.name") or span.name or span.kind),
            span.started_at,
            span.ended_at,
            _duration(span),
            dumps(_json_attr(attrs.get("agentsight.tool.arguments"))),
            _text(attrs.get("agentsight.tool.response")),
            error,
            status,
            _metadata(attrs.get("agentsight.metadata")),
            0,
            span.started_at,
            span.started_us,
            span.span_id,
            rows.now,
        )
    )


def _button(rows: _Pass, conv: int, span: IngestSpan) -> None:
    attrs = span.attributes
    rows.buttons.append(
        (
            rows.new_id(),
            conv,
            str(attrs.get("agentsight.button.event") or ""),
            str(attrs.get("agentsight.button.label") or span.name or ""),
            str(attrs.get("agentsight.button.value") or ""),
            _metadata(attrs.get("agentsight.metadata")),
            span.started_at,
            span.started_us,
            span.span_id,
            rows.now,
        )
    )


def _descriptors(value: Any) -> list[tuple[str, str | None, int | None, bytes | None]]:
    """``{filename|name, size, mime_type|content_type}`` descriptors, as sent (§5.10)."""
    parsed = _json_attr(value)
    files: list[tuple[str, str | None, int | None, bytes | None]] = []
    if not isinstance(parsed, list):
        return files
    for i, item in enumerate(parsed):
        if not isinstance(item, dict):
            continue
        name = item.get("filename") or item.get("name") or f"attachment_{i}"
        mime = item.get("mime_type") or item.get("content_type") or item.get("mime")
        size = item.get("size")
        files.append((str(name), _text(mime), _int(size) if size is not None else None, None))
    return files


def _attachment(rows: _Pass, conv: int, span: IngestSpan) -> None:
    # Reads and writes attachment rows directly: the buffered rows go first, and
    # the id sequence continues after the rows written here.
    rows.flush()
    conn = rows.conn
    attrs = span.attributes
    sender = str(attrs.get("agentsight.attachment.sender") or "end_user")
    mode = _text(attrs.get("agentsight.attachment.mode"))
    files = _descriptors(attrs.get("agentsight.attachment.files"))
    if not (mode == "base64" and _claim_upload(conn, conv, span, sender, files)):
        _rows.insert_attachment(
            conn,
            conv,
            message=None,
            sender=sender,
            mode=mode,
            metadata=_json_attr(attrs.get("agentsight.metadata")) or {},
            origin="span",
            at=_start(span),
            files=files,
            span_id=span.span_id,
        )
    rows.sync()


def _claim_upload(
    conn: sqlite3.Connection,
    conv: int,
    span: IngestSpan,
    sender: str,
    files: list[tuple[str, str | None, int | None, bytes | None]],
) -> bool:
    """Link a ``mode=base64`` span to the REST upload it describes, if stored already."""
    names = sorted(f[0] for f in files)
    candidates = conn.execute(
        "SELECT id FROM attachments WHERE conversation = ? AND origin = 'upload' "
        "AND span_id IS NULL AND sender = ? ORDER BY id",
        (conv, sender),
    ).fetchall()
    for (candidate,) in candidates:
        if _rows.attachment_filenames(conn, candidate) == names:
            conn.execute(
                "UPDATE attachments SET span_id = ? WHERE id = ?", (span.span_id, candidate)
            )
            return True
    return False


def _llm(rows: _Pass, conv: int, span: IngestSpan) -> None:
    attrs = span.attributes
    counts = {
        "input_tokens": _int(attrs.get("gen_ai.usage.input_tokens")),
        "output_tokens": _int(attrs.get("gen_ai.usage.output_tokens")),
        "embedding_tokens": _int(attrs.get("agentsight.llm.embedding_tokens")),
        "cache_read_tokens": _int(attrs.get("agentsight.llm.cache_read_tokens")),
        "cache_write_tokens": _int(attrs.get("agentsight.llm.cache_write_tokens")),
        "reasoning_tokens": _int(attrs.get("agentsight.llm.reasoning_tokens")),
    }
    # Prompt plus completion (input counts cache reads/writes separately), as the
    # seed and the legacy REST path define it; embedding tokens stand apart, and
    # reasoning tokens are a part of the output.
    counts["total_tokens"] = (
        counts["input_tokens"]
        + counts["output_tokens"]
        + counts["cache_read_tokens"]
        + counts["cache_write_tokens"]
    )
    streamed = attrs.get("agentsight.llm.streaming")
    error = _text(attrs.get("agentsight.llm.error"))
    if error is None and span.status == "error":
        error = ""
    rows.token_usage.append(
        _rows.token_usage_row(
            rows.new_id(),
            conv,
            counts,
            model=_text(attrs.get("gen_ai.request.model")) or span.name,
            system=_text(attrs.get("gen_ai.system")),
            origin="llm",
            at=_start(span),
            action=None,
            span_id=span.span_id,
            now=rows.now,
            call={
                "duration_ms": _duration(span),
                "streamed": streamed if isinstance(streamed, bool) else None,
                "error": error,
                "requested_model": _text(attrs.get("agentsight.llm.requested_model")),
                "operation": _text(attrs.get("gen_ai.operation.name")),
            },
        )
    )


_PROJECTORS: dict[str, Callable[[_Pass, int, IngestSpan], None]] = {
    "turn": _turn,
    "tool": _tool,
    "task": _tool,
    "button": _button,
    "attachment": _attachment,
    "llm": _llm,
}
