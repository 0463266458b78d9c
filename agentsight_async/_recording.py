"""Reading recorded events back, for ``push``: a ``sqlite:///`` recording or a spool directory.

Both yield :class:`Recorded` events in the order they were recorded, in
pages, with the event ids they were recorded with - so that what ``push``
sends carries the recording's own ids and a server that dedupes by id (span
id on ingest, ``Idempotency-Key`` on REST) stores each event once however
often it is pushed.

**A ``sqlite:///`` recording** is a local AgentSight store: the ``sqlite``
exporter writes each batch as an ingest payload, and the store archives every
span verbatim (``spans.raw``) next to the transcript it projects.  The spans
are read back in archive order and mapped back to events - the inverse of
``_exporters._spans.BlockEncoder``:

* a ``turn`` holding one ``agentsight.message`` -> ``question``/``answer``
  (and its files, read from the upload the store kept under the span id the
  encoder derived for them);
* ``attachment`` -> ``attachments`` (the bytes from the stored upload);
  the span of a message's own files is skipped: its message carries them;
* ``tool``/``task`` -> ``action``; ``button`` -> ``button``; ``llm`` ->
  ``token_usage``; ``conversation`` -> ``conversation``/``conversation_opened``.

What does not come back exactly: an action's tracking time when it ran inside
a turn and had its own ``started_at`` (the span keeps the action's window,
not when it was tracked; the window is sent as ``started_at``/``ended_at``),
and the original attachment mode (files always travel as base64).  Spans
this SDK did not write (another client's, several messages in one turn) are
counted as ``unsupported`` and left out.

**A spool directory** (``AGENTSIGHT_SPOOL_DIR``) holds the events dead
processes left undelivered, exactly as they were queued.  Files of live
processes are skipped; the file being read is locked like a spool claims it,
so no SDK process replays it meanwhile.  Push never modifies its input.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from . import _events as ev
from ._events import CONVERSATION_FIELDS, Event, iso_utc, ns_from_iso
from ._exporters._spans import derived_span_id
from ._spool import _from_row

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: live spool files are not detected
    fcntl = None  # type: ignore[assignment]

_MASK64: Final = 0xFFFF_FFFF_FFFF_FFFF
_CONV_ATTR: Final = {
    key: "agentsight.conversation." + ("customer_ip" if key == "customer_ip_address" else key)
    for key in CONVERSATION_FIELDS
}


class RecordingError(ValueError):
    """The path is not a recording (or a spool directory) this SDK can read."""


@dataclass(slots=True)
class Recorded:
    """One event read back: the event, the conversation's fields then, its size."""

    event: Event
    fields: dict[str, Any]

    @property
    def key(self) -> int:
        """The event's id (a signed 64-bit integer): what push remembers as sent."""
        return self.event.seq


@dataclass(slots=True)
class Page:
    """Consecutive records; ``consumed`` counts the rows read, mapped or not."""

    records: list[Recorded] = field(default_factory=list)
    consumed: int = 0
    unsupported: int = 0


def signed64(value: int) -> int:
    """A 64-bit id as SQLite's signed integer (our own ids are below 2**63 anyway)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def open_source(path: str | os.PathLike[str]) -> SqliteRecording | SpoolDirectory:
    """The reader for *path*: a directory is a spool, a file a ``sqlite:///`` recording.

    Raises:
        RecordingError: *path* does not exist or is not something push reads.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        return SpoolDirectory(p)
    if p.is_file():
        return SqliteRecording(p)
    raise RecordingError(f"{path}: no such recording file or spool directory")


def _keyset(db: sqlite3.Connection, sql: str, start: int, batch: int) -> Iterator[tuple[Any, ...]]:
    """Every row of *sql* (``... WHERE key > ? ORDER BY key LIMIT ?``, the key first),
    fetched *batch* rows at a time from *start* on."""
    after = start
    while True:
        rows = db.execute(sql, (after, batch)).fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def paginate(
    rows: Iterator[tuple[Any, ...]],
    decode: Callable[[tuple[Any, ...]], Recorded | None],
    max_events: int,
    max_bytes: int,
) -> Iterator[Page]:
    """Rows decoded into pages of at most *max_events* events or about *max_bytes*.

    *decode* answers a record, None for a row to skip, or :data:`_UNSUPPORTED`.
    """
    page, size = Page(), 0
    for row in rows:
        page.consumed += 1
        record = decode(row)
        if record is _UNSUPPORTED:
            page.unsupported += 1
        elif record is not None:
            page.records.append(record)
            size += record.event.size
        if len(page.records) >= max_events or size >= max_bytes:
            yield page
            page, size = Page(), 0
    if page.consumed:
        yield page


def _spooled(row: tuple[Any, ...]) -> Recorded:
    event, fields = _from_row(row)
    return Recorded(event, fields or {})


# --- sqlite:/// recordings -------------------------------------------------------------------


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


class SqliteRecording:
    """A local store written by the ``sqlite:///`` exporter, read back as events."""

    kind = "recording"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0
            )
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise RecordingError(f"{path}: not a SQLite recording ({exc})") from None
        if not {"spans", "conversations", "attachments", "attachment_files"} <= tables:
            self._db.close()
            raise RecordingError(f"{path}: not an agentsight recording (no span archive)")

    def close(self) -> None:
        self._db.close()

    def total(self) -> int:
        """Rows to read (spans), for a progress bar."""
        return int(self._db.execute("SELECT count(*) FROM spans").fetchone()[0])

    def pages(self, max_events: int, max_bytes: int) -> Iterator[Page]:
        """Pages of at most *max_events* events / about *max_bytes*, in archive order."""
        rows = _keyset(
            self._db,
            "SELECT s.id, s.conversation, c.conversation_id, s.raw FROM spans s "
            "JOIN conversations c ON c.id = s.conversation WHERE s.id > ? "
            "ORDER BY s.id LIMIT ?",
            0,
            max_events,
        )
        return paginate(rows, self._row, max_events, max_bytes)

    def _row(self, row: tuple[Any, ...]) -> Recorded | None:
        _, conv_pk, cid, raw = row
        try:
            return self._decode(conv_pk, cid, orjson.loads(raw), len(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _UNSUPPORTED

    # -- span -> event ------------------------------------------------------------------

    def _decode(self, conv_pk: int, cid: str, span: dict[str, Any], size: int) -> Recorded | None:
        """The event a span stands for; None for a span to skip, :data:`_UNSUPPORTED`.

        *size* (the span's JSON length, plus any file) is the event's size estimate.
        """
        kind = span.get("kind")
        attrs: dict[str, Any] = span.get("attributes") or {}
        sid = span["span_id"]
        fields = {
            key: (_json(attrs[name]) if key == "metadata" else attrs[name])
            for key, name in _CONV_ATTR.items()
            if attrs.get(name) is not None
        }
        ts = _tracking_ns(span)
        if kind == "turn":
            messages = [
                e for e in span.get("events") or () if e.get("name") == "agentsight.message"
            ]
            if len(messages) != 1:
                return _UNSUPPORTED
            m = messages[0].get("attributes") or {}
            sender = m.get("agentsight.message.sender")
            if sender not in ("end_user", "agent") or not isinstance(
                m.get("agentsight.message.content"), str
            ):
                return _UNSUPPORTED
            data: dict[str, Any] = {
                "content": m["agentsight.message.content"],
                "sender": sender,
                "metadata": _json(m.get("agentsight.message.metadata")) or {},
            }
            files = self._files(conv_pk, derived_span_id(sid, "attachments"))
            if files:
                data["attachments"] = files
                data["attachment_mode"] = "base64"
                size += sum(len(f["data"]) for f in files)
            kind = ev.QUESTION if sender == "end_user" else ev.ANSWER
        elif kind == "attachment":
            if self._is_linked(conv_pk, span):
                return None
            files = self._files(conv_pk, sid)
            if not files:
                return _UNSUPPORTED
            data = {
                "attachments": files,
                "metadata": _json(attrs.get("agentsight.metadata")) or {},
                "mode": "base64",
                "sender": attrs.get("agentsight.attachment.sender") or "end_user",
            }
            size += sum(len(f["data"]) for f in files)
            kind = ev.ATTACHMENTS
        elif kind in ("tool", "task"):
            data, ts = _action(span, attrs, ts)
            kind = ev.ACTION
        elif kind == "button":
            data = {
                "button_event": attrs.get("agentsight.button.event"),
                "label": attrs.get("agentsight.button.label"),
                "value": attrs.get("agentsight.button.value"),
                "metadata": _json(attrs.get("agentsight.metadata")) or {},
            }
            kind = ev.BUTTON
        elif kind == "llm":
            data = _token_usage(attrs)
            kind = ev.TOKEN_USAGE
        elif kind == "conversation":
            kind = (
                ev.CONVERSATION_OPENED
                if span.get("name") == "conversation_opened"
                else ev.CONVERSATION
            )
            data = {"conversation_id": cid, **{k: fields.get(k) for k in CONVERSATION_FIELDS}}
            data["is_used"] = kind == ev.CONVERSATION
        else:
            return _UNSUPPORTED
        event = Event(kind, cid, ts, signed64(int(sid, 16)), data, size)
        return Recorded(event, fields)

    def _files(self, conv_pk: int, span_id: str) -> list[dict[str, Any]]:
        """The stored upload of the files a span describes, as base64 attachments."""
        rows = self._db.execute(
            "SELECT f.filename, f.mime_type, f.data FROM attachments a "
            "JOIN attachment_files f ON f.attachment = a.id "
            "WHERE a.conversation = ? AND a.span_id = ? ORDER BY a.id, f.position",
            (conv_pk, span_id),
        ).fetchall()
        if not rows or any(data is None for _, _, data in rows):
            return []
        return [
            {
                "filename": name,
                "mime_type": mime or "application/octet-stream",
                "data": base64.b64encode(data).decode("ascii"),
            }
            for name, mime, data in rows
        ]

    def _is_linked(self, conv_pk: int, span: dict[str, Any]) -> bool:
        """Whether an attachment span holds a message's own files (one microsecond after it)."""
        start = ns_from_iso(span.get("started_at"))
        if start is None:
            return False
        turns = self._db.execute(
            "SELECT span_id FROM spans WHERE conversation = ? AND kind = 'turn' AND started_at = ?",
            (conv_pk, iso_utc(start - 1000)),
        ).fetchall()
        return any(derived_span_id(t, "attachments") == span["span_id"] for (t,) in turns)


#: :meth:`SqliteRecording._decode`'s answer for a span that is no event of ours.
_UNSUPPORTED: Final = Recorded(Event("", "", 0, 0, {}, 0), {})


def _tracking_ns(span: dict[str, Any]) -> int:
    """When the event was tracked: exact from a top-level span's trace id (time + span id),
    else the span's start."""
    trace = span.get("trace_id") or ""
    if len(trace) == 32 and trace[16:] == span["span_id"]:
        return int(trace[:16], 16)
    start = ns_from_iso(span.get("started_at"))
    if start is None:
        raise ValueError("span without a start")
    return start


def _action(span: dict[str, Any], attrs: dict[str, Any], ts: int) -> tuple[dict[str, Any], int]:
    data: dict[str, Any] = {
        "action_name": attrs.get("agentsight.tool.name") or span.get("name") or "action",
        "metadata": _json(attrs.get("agentsight.metadata")) or {},
    }
    started, ended = span.get("started_at"), span.get("ended_at")
    start_ns = ns_from_iso(started)
    if started and ended and (ended != started or start_ns != ts // 1000 * 1000):
        # a window of its own: send it as the action's started_at/ended_at
        data["started_at"], data["ended_at"] = started, ended
        duration = span.get("duration_ms")
        if isinstance(duration, (int, float)) and duration > 0:
            data["duration_ms"] = duration
    if "agentsight.tool.arguments" in attrs:
        data["tools_used"] = _json(attrs["agentsight.tool.arguments"])
    for key, name in (
        ("response", "agentsight.tool.response"),
        ("error_msg", "agentsight.tool.error"),
    ):
        if attrs.get(name) is not None:
            data[key] = attrs[name]
    return data, ts


def _token_usage(attrs: dict[str, Any]) -> dict[str, Any]:
    prompt = int(attrs.get("gen_ai.usage.input_tokens") or 0)
    completion = int(attrs.get("gen_ai.usage.output_tokens") or 0)
    data: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "embedding_tokens": int(attrs.get("agentsight.llm.embedding_tokens") or 0),
    }
    if attrs.get("gen_ai.request.model"):
        data["model"] = attrs["gen_ai.request.model"]
    system = attrs.get("gen_ai.system")
    if system and system != "unknown":  # the encoder's stand-in for "not given"
        data["system"] = system
    return data


# --- spool directories ---------------------------------------------------------------------


class SpoolDirectory:
    """The spool files of dead processes in a directory, read in id order, file by file."""

    kind = "spool"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live_files = 0
        self._lock_fd: int | None = None

    def close(self) -> None:
        self._unlock()

    def _files(self) -> list[Path]:
        return sorted(self.path.glob("spool-*.db"))

    def total(self) -> int:
        n = 0
        for f in self._files():
            try:
                with sqlite3.connect(f"file:{f}?mode=ro", uri=True) as db:
                    n += int(db.execute("SELECT count(*) FROM events").fetchone()[0])
            except sqlite3.Error:
                continue
        return n

    def pages(self, max_events: int, max_bytes: int) -> Iterator[Page]:
        """Each unlocked spool file's events, in id order, in pages."""
        return paginate(self._rows(max_events), _spooled, max_events, max_bytes)

    def _rows(self, batch: int) -> Iterator[tuple[Any, ...]]:
        for f in self._files():
            if not self._lock(f.with_suffix(".lock")):
                self.live_files += 1
                continue
            try:
                db = sqlite3.connect(str(f), check_same_thread=False, timeout=10.0)
                try:
                    sql = (
                        "SELECT seq, conversation_id, kind, ts_ns, size, data, fields "
                        "FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
                    )
                    yield from _keyset(db, sql, -(1 << 63), batch)
                finally:
                    db.close()
            finally:
                self._unlock()

    def _lock(self, lock_path: Path) -> bool:
        """Hold the file's lock while it is read (a live process holds it: skip the file)."""
        if fcntl is None:  # pragma: no cover
            return True
        with contextlib.suppress(OSError):
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise
            self._lock_fd = fd
            return True
        return False

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
