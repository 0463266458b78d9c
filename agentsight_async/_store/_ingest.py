"""Apply validated ingest blocks: upsert, archive spans, project the transcript.

Each span is archived in ``spans`` under ``UNIQUE (conversation, span_id)``;
a replayed span hits the constraint and is a no-op, projection included, so
a retried batch (0.1.4 resends byte-identical payloads) never duplicates rows.

Projection (protocol §3.4): ``turn`` message events -> messages (incomplete
turns stay archive-only), ``tool``/``task`` -> actions, ``button`` -> buttons,
``attachment`` -> attachment descriptors, ``llm`` -> token usage.
``conversation`` and unknown kinds are archived only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from . import _rows, _timeutil
from ._rows import dumps
from ._validate import DEFAULT_ENVIRONMENT

Span = Mapping[str, Any]


class _Rows:
    """The rows one block projects, written with one ``executemany`` per table.

    Ids come from the shared sequence (``_schema``): this transaction is the
    only writer, so they are handed out here as ``last_id + 1, + 2, ...`` in
    projection order - the order ``new_id`` would have given them - and the
    ``object_ids`` rows are inserted with them by :meth:`flush`.  A projector
    that writes directly (attachments) flushes first, so ``new_id`` continues
    the sequence where these rows end.
    """

    __slots__ = ("_base", "actions", "buttons", "conn", "ids", "messages", "now", "token_usage")

    def __init__(self, conn: sqlite3.Connection, now: str) -> None:
        self.conn = conn
        self.now = now
        self._base: int | None = None
        self.ids: list[tuple[int, str]] = []
        self.messages: list[tuple[Any, ...]] = []
        self.actions: list[tuple[Any, ...]] = []
        self.buttons: list[tuple[Any, ...]] = []
        self.token_usage: list[tuple[Any, ...]] = []

    def start_ids(self, last_id: int) -> None:
        """The sequence's position, when the caller read it already."""
        if not self.ids:
            self._base = last_id

    def new_id(self, kind: str) -> int:
        if self._base is None:
            self._base = _rows.last_id(self.conn)
        pk = self._base + len(self.ids) + 1
        self.ids.append((pk, kind))
        return pk

    def flush(self) -> None:
        if not self.ids:
            return
        conn = self.conn
        conn.executemany(_rows.INSERT_OBJECT_IDS, self.ids)
        for sql, rows in (
            (_rows.INSERT_MESSAGE, self.messages),
            (_rows.INSERT_ACTION, self.actions),
            (_rows.INSERT_BUTTON, self.buttons),
            (_rows.INSERT_USAGE, self.token_usage),
        ):
            if rows:
                conn.executemany(sql, rows)
                rows.clear()
        self.ids.clear()
        self._base = None


_INSERT_SPAN = (
    "INSERT OR IGNORE INTO spans (conversation, span_id, trace_id, parent_span_id, kind, "
    "name, started_at, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FIND_CONVERSATION = (
    "SELECT (SELECT id FROM conversations WHERE agent_id = ? AND conversation_id = ?), "
    + _rows.LAST_ID_SQL
)


def apply_block(
    conn: sqlite3.Connection, agent_id: int, block: Mapping[str, Any], *, now: str | None = None
) -> dict[str, Any]:
    """Store one validated conversation block inside the caller's transaction.

    *now* is the receive time written to ``created_at``/``updated_at``/
    ``received_at`` (one per request, so every row of it carries the same).
    """
    spans: list[Span] = block["spans"]
    now = now or _timeutil.now_iso()
    rows = _Rows(conn, now)
    pk = _upsert_conversation(conn, rows, agent_id, block, spans)
    new = _archive(conn, pk, spans, now)
    accepted = 0
    for span, is_new in zip(spans, new, strict=True):
        if not is_new:
            continue
        accepted += 1
        project = _PROJECTORS.get(span["kind"])
        if project is not None:
            project(rows, pk, span)
    rows.flush()
    return {
        "conversation_id": block["conversation_id"],
        "id": pk,
        "accepted": accepted,
        "duplicates": len(spans) - accepted,
    }


def _upsert_conversation(
    conn: sqlite3.Connection,
    rows: _Rows,
    agent_id: int,
    block: Mapping[str, Any],
    spans: list[Span],
) -> int:
    """:func:`_rows.upsert_conversation` for a block, in two statements instead of four.

    One SELECT finds the conversation and the id sequence's position; a new
    conversation takes its id from *rows* (the ``object_ids`` row follows in
    :meth:`_Rows.flush`), an existing one gets its fields and time span in
    one UPDATE.  Same rules: sent fields overwrite, ``is_used`` only goes
    up, the time span only widens.
    """
    conversation_id = block["conversation_id"]
    used = any(span["kind"] != "conversation" for span in spans)
    first, last = _time_range(spans)
    found, last_id = conn.execute(_FIND_CONVERSATION, (agent_id, conversation_id)).fetchone()
    rows.start_ids(int(last_id))
    values = {k: (dumps(v) if k == "metadata" else v) for k, v in block["fields"].items()}
    now = rows.now
    if found is None:
        pk = rows.new_id("conversation")
        values.setdefault("environment", DEFAULT_ENVIRONMENT)
        _rows.insert_conversation(
            conn, pk, agent_id, conversation_id, values, used=used, first=first, last=last, now=now
        )
        return pk
    pk = int(found)
    assignments = "".join(f"{k} = ?, " for k in values)
    if values:
        assignments += "updated_at = ?, "
        values["updated_at"] = now
    conn.execute(
        f"UPDATE conversations SET {assignments}{_rows.TOUCH_ASSIGNMENTS} WHERE id = ?",
        (*values.values(), *_rows.touch_params(first, last, used), pk),
    )
    return pk


def _archive(conn: sqlite3.Connection, conv: int, spans: list[Span], received: str) -> list[bool]:
    """Insert the spans under ``UNIQUE (conversation, span_id)``; which ones were new.

    One ``executemany`` of ``INSERT OR IGNORE``: a replayed span is ignored by
    the unique index.  When every row went in (the usual case) all are new.
    Otherwise the rows that went in are the ``rowcount`` newest of the table
    (``spans.id`` is ``AUTOINCREMENT`` and this transaction is the only
    writer), and of spans repeating an id within the block only the first
    went in.
    """
    if not spans:
        return []
    cur = conn.executemany(
        _INSERT_SPAN,
        [
            (
                conv,
                span["span_id"],
                span["trace_id"],
                span["parent_span_id"],
                span["kind"],
                span["name"],
                span["started_at"],
                _rows.dumps_json(span["raw"]),
                received,
            )
            for span in spans
        ],
    )
    inserted_count = cur.rowcount
    if inserted_count == len(spans):
        return [True] * len(spans)
    inserted = {
        row[0]
        for row in conn.execute(
            "SELECT span_id FROM spans ORDER BY id DESC LIMIT ?", (max(inserted_count, 0),)
        )
    }
    new: list[bool] = []
    for span in spans:
        sid = span["span_id"]
        new.append(sid in inserted)
        inserted.discard(sid)  # a repeat within the block is the duplicate
    return new


def _time_range(spans: list[Span]) -> tuple[tuple[str, int], tuple[str, int]]:
    points: list[tuple[int, str]] = []
    for span in spans:
        points.append((span["started_us"], span["started_at"]))
        points.extend((ev["ts_us"], ev["timestamp"]) for ev in span["events"])
        if span["ended_at"]:
            points.append((span["ended_us"], span["ended_at"]))
    if not points:
        at = _timeutil.now_at()
        return at, at
    lo, hi = min(points), max(points)
    return (lo[1], lo[0]), (hi[1], hi[0])


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


def _start(span: Span) -> tuple[str, int]:
    return span["started_at"], span["started_us"]


# -- projectors ------------------------------------------------------------------

_NO_METADATA = "{}"


def _metadata(value: Any) -> str | None:
    if value is None:
        return _NO_METADATA
    return dumps(_json_attr(value) or {})


def _turn(rows: _Rows, conv: int, span: Span) -> None:
    if span["attributes"].get("agentsight.turn.complete") is False:
        return  # archived only (protocol §3.4: incomplete turns stay out of the transcript)
    for event in span["events"]:
        if event["name"] != "agentsight.message":
            continue
        attrs = event["attributes"]
        content = attrs.get("agentsight.message.content")
        sender = attrs.get("agentsight.message.sender") or "end_user"
        if content is None:
            continue
        rows.messages.append(
            (
                rows.new_id("message"),
                conv,
                str(sender),
                _text(content),
                _metadata(attrs.get("agentsight.message.metadata")),
                event["timestamp"],
                event["ts_us"],
                span["span_id"],
                rows.now,
            )
        )


def _tool(rows: _Rows, conv: int, span: Span) -> None:
    attrs = span["attributes"]
    error = _text(attrs.get("agentsight.tool.error"))
    status = "error" if error or span["status"] == "error" else "ok"
    duration = span["duration_ms"]
    if duration is None and span["ended_at"]:
        duration = (span["ended_us"] - span["started_us"]) / 1000
    rows.actions.append(
        (
            rows.new_id("action"),
            conv,
            str(attrs.get("agentsight.tool.name") or span["name"] or span["kind"]),
            span["started_at"],
            span["ended_at"],
            duration,
            dumps(_json_attr(attrs.get("agentsight.tool.arguments"))),
            _text(attrs.get("agentsight.tool.response")),
            error,
            status,
            _metadata(attrs.get("agentsight.metadata")),
            0,
            span["started_at"],
            span["started_us"],
            span["span_id"],
            rows.now,
        )
    )


def _button(rows: _Rows, conv: int, span: Span) -> None:
    attrs = span["attributes"]
    rows.buttons.append(
        (
            rows.new_id("button"),
            conv,
            str(attrs.get("agentsight.button.event") or ""),
            str(attrs.get("agentsight.button.label") or span["name"] or ""),
            str(attrs.get("agentsight.button.value") or ""),
            _metadata(attrs.get("agentsight.metadata")),
            span["started_at"],
            span["started_us"],
            span["span_id"],
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


def _attachment(rows: _Rows, conv: int, span: Span) -> None:
    # Reads and writes attachment rows directly: the buffered rows go first, so
    # ids stay in projection order.
    rows.flush()
    conn = rows.conn
    attrs = span["attributes"]
    sender = str(attrs.get("agentsight.attachment.sender") or "end_user")
    mode = _text(attrs.get("agentsight.attachment.mode"))
    files = _descriptors(attrs.get("agentsight.attachment.files"))
    if mode == "base64" and _claim_upload(conn, conv, span, sender, files):
        return
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
        span_id=span["span_id"],
    )


def _claim_upload(
    conn: sqlite3.Connection,
    conv: int,
    span: Span,
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
                "UPDATE attachments SET span_id = ? WHERE id = ?", (span["span_id"], candidate)
            )
            return True
    return False


def _llm(rows: _Rows, conv: int, span: Span) -> None:
    attrs = span["attributes"]
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
    duration = span["duration_ms"]
    if duration is None and span["ended_at"]:
        duration = (span["ended_us"] - span["started_us"]) / 1000
    streamed = attrs.get("agentsight.llm.streaming")
    error = _text(attrs.get("agentsight.llm.error"))
    if error is None and span["status"] == "error":
        error = ""
    rows.token_usage.append(
        _rows.token_usage_row(
            rows.new_id("token_usage"),
            conv,
            counts,
            model=_text(attrs.get("gen_ai.request.model")) or span["name"],
            system=_text(attrs.get("gen_ai.system")),
            origin="llm",
            at=_start(span),
            action=None,
            span_id=span["span_id"],
            now=rows.now,
            call={
                "duration_ms": duration,
                "streamed": streamed if isinstance(streamed, bool) else None,
                "error": error,
                "requested_model": _text(attrs.get("agentsight.llm.requested_model")),
                "operation": _text(attrs.get("gen_ai.operation.name")),
            },
        )
    )


_PROJECTORS: dict[str, Callable[[_Rows, int, Span], None]] = {
    "turn": _turn,
    "tool": _tool,
    "task": _tool,
    "button": _button,
    "attachment": _attachment,
    "llm": _llm,
}
