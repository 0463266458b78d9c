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
from ._rows import dumps, new_id

Span = Mapping[str, Any]


def apply_block(
    conn: sqlite3.Connection, agent_id: int, block: Mapping[str, Any]
) -> dict[str, Any]:
    spans: list[Span] = block["spans"]
    used = any(span["kind"] != "conversation" for span in spans)
    first, last = _time_range(spans)
    pk, _ = _rows.upsert_conversation(
        conn, agent_id, block["conversation_id"], block["fields"], first=first, last=last, used=used
    )
    accepted = duplicates = 0
    received = _timeutil.now_iso()
    for span in spans:
        cur = conn.execute(
            "INSERT OR IGNORE INTO spans (conversation, span_id, trace_id, parent_span_id, kind, "
            "name, started_at, raw, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pk,
                span["span_id"],
                span["trace_id"],
                span["parent_span_id"],
                span["kind"],
                span["name"],
                span["started_at"],
                dumps(span["raw"]),
                received,
            ),
        )
        if cur.rowcount == 0:
            duplicates += 1
            continue
        accepted += 1
        project = _PROJECTORS.get(span["kind"])
        if project is not None:
            project(conn, pk, span)
    return {
        "conversation_id": block["conversation_id"],
        "id": pk,
        "accepted": accepted,
        "duplicates": duplicates,
    }


def _time_range(spans: list[Span]) -> tuple[tuple[str, int], tuple[str, int]]:
    points: list[tuple[int, str]] = []
    for span in spans:
        points.append((span["started_us"], span["started_at"]))
        points.extend((ev["ts_us"], ev["timestamp"]) for ev in span["events"])
        if span["ended_at"]:
            points.append((_timeutil.iso_to_us(span["ended_at"]), span["ended_at"]))
    if not points:
        now = _timeutil.now_iso()
        at = (now, _timeutil.iso_to_us(now))
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


def _turn(conn: sqlite3.Connection, conv: int, span: Span) -> None:
    if span["attributes"].get("agentsight.turn.complete") is False:
        return  # archived only (protocol §3.4: incomplete turns stay out of the transcript)
    now = _timeutil.now_iso()
    for event in span["events"]:
        if event["name"] != "agentsight.message":
            continue
        attrs = event["attributes"]
        content = attrs.get("agentsight.message.content")
        sender = attrs.get("agentsight.message.sender") or "end_user"
        if content is None:
            continue
        pk = new_id(conn, "message")
        conn.execute(
            "INSERT INTO messages (id, conversation, sender, content, metadata, timestamp, ts_us, "
            "span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pk,
                conv,
                str(sender),
                _text(content),
                dumps(_json_attr(attrs.get("agentsight.message.metadata")) or {}),
                event["timestamp"],
                event["ts_us"],
                span["span_id"],
                now,
            ),
        )


def _tool(conn: sqlite3.Connection, conv: int, span: Span) -> None:
    attrs = span["attributes"]
    error = _text(attrs.get("agentsight.tool.error"))
    status = "error" if error or span["status"] == "error" else "ok"
    duration = span["duration_ms"]
    if duration is None and span["ended_at"]:
        duration = (_timeutil.iso_to_us(span["ended_at"]) - span["started_us"]) / 1000
    pk = new_id(conn, "action")
    conn.execute(
        """
        INSERT INTO actions (id, conversation, action_name, started_at, ended_at, duration_ms,
            tools_used, response, error_msg, status, metadata, is_token_usage, timestamp, ts_us,
            span_id, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
        """,
        (
            pk,
            conv,
            str(attrs.get("agentsight.tool.name") or span["name"] or span["kind"]),
            span["started_at"],
            span["ended_at"],
            duration,
            dumps(_json_attr(attrs.get("agentsight.tool.arguments"))),
            _text(attrs.get("agentsight.tool.response")),
            error,
            status,
            dumps(_json_attr(attrs.get("agentsight.metadata")) or {}),
            span["started_at"],
            span["started_us"],
            span["span_id"],
            _timeutil.now_iso(),
        ),
    )


def _button(conn: sqlite3.Connection, conv: int, span: Span) -> None:
    attrs = span["attributes"]
    pk = new_id(conn, "button")
    conn.execute(
        "INSERT INTO buttons (id, conversation, button_event, label, value, metadata, timestamp, "
        "ts_us, span_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            pk,
            conv,
            str(attrs.get("agentsight.button.event") or ""),
            str(attrs.get("agentsight.button.label") or span["name"] or ""),
            str(attrs.get("agentsight.button.value") or ""),
            dumps(_json_attr(attrs.get("agentsight.metadata")) or {}),
            span["started_at"],
            span["started_us"],
            span["span_id"],
            _timeutil.now_iso(),
        ),
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


def _attachment(conn: sqlite3.Connection, conv: int, span: Span) -> None:
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


def _llm(conn: sqlite3.Connection, conv: int, span: Span) -> None:
    attrs = span["attributes"]
    counts = {
        "input_tokens": _int(attrs.get("gen_ai.usage.input_tokens")),
        "output_tokens": _int(attrs.get("gen_ai.usage.output_tokens")),
        "embedding_tokens": _int(attrs.get("agentsight.llm.embedding_tokens")),
        "cache_read_tokens": _int(attrs.get("agentsight.llm.cache_read_tokens")),
        "cache_write_tokens": _int(attrs.get("agentsight.llm.cache_write_tokens")),
    }
    # Prompt plus completion (input counts cache reads/writes separately), as the
    # seed and the legacy REST path define it; embedding tokens stand apart.
    counts["total_tokens"] = (
        counts["input_tokens"]
        + counts["output_tokens"]
        + counts["cache_read_tokens"]
        + counts["cache_write_tokens"]
    )
    _rows.insert_token_usage(
        conn,
        conv,
        counts,
        model=_text(attrs.get("gen_ai.request.model")) or span["name"],
        system=_text(attrs.get("gen_ai.system")),
        origin="llm",
        at=_start(span),
        span_id=span["span_id"],
    )


_PROJECTORS: dict[str, Callable[[sqlite3.Connection, int, Span], None]] = {
    "turn": _turn,
    "tool": _tool,
    "task": _tool,
    "button": _button,
    "attachment": _attachment,
    "llm": _llm,
}
