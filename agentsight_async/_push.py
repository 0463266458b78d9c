"""Record offline, push later: upload a ``sqlite:///`` recording or a spool directory.

``agentsight-async push RECORDING.db`` (or :func:`push` / :func:`apush` in
code) reads the events back (:mod:`._recording`), applies the configured
redaction (push is one more way data leaves the machine) and an optional
``before_send``, and hands them to the very exporter tracking would use
(:func:`~._exporters.create_exporter`, either wire protocol) in batches.

**Idempotent.**  Every event keeps the id it was recorded with, and a
*progress file* remembers, per destination (protocol and endpoint), the id
of every event the server accepted or refused for good.  A second push sends
nothing again; a push to another endpoint starts from zero there.

**Resumable.**  The progress of a batch is committed (SQLite, WAL) as soon as
the server answered it, before the next batch goes out.  After a crash or a
``kill -9`` at most the batch in flight is sent again, and the server's
dedupe by event id (span id on ingest, ``Idempotency-Key`` on REST) stores
it once.  A batch that could not be delivered (the server unreachable past
the retry budget) stops the push: nothing after it is sent, so each
conversation's order holds, and the next push starts there.

The progress file sits next to the recording (``RECORDING.db.push-progress``;
inside a spool directory, ``push-progress.db``), or where ``state=`` says.
Reading a recording never writes to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from ._config import Settings, load_settings
from ._events import Batch, ConversationBatch, Event, parse_iso
from ._exceptions import ConfigurationError, NoApiKeyException
from ._exporters import create_exporter
from ._exporters._base import Exporter
from ._exporters._retry import REJECTED
from ._privacy import Redactor
from ._stats import Stats

if TYPE_CHECKING:  # imported when a push runs: importing the SDK stays light
    from ._recording import Page, Recorded

T = TypeVar("T")

#: ``before_send``: given ``{"kind", "conversation_id", "timestamp", "data"}``, returns it,
#: a changed copy, or None to drop the event.
BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]
#: ``progress(done, total)``: rows of the recording handled so far, of all.
ProgressCallback = Callable[[int, int], None]

STATE_SUFFIX: Final = ".push-progress"
SPOOL_STATE_NAME: Final = "push-progress.db"
_DELIVERED, _REJECTED = 1, 2
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class PushResult:
    """What a push did.  True when nothing is left to send (``failed == 0``).

    (A push fills it in as it goes; treat it as read-only once returned.)
    """

    #: The recording or spool directory pushed.
    source: str
    #: ``"<protocol> <endpoint>"`` (no credentials), the key of the progress file.
    destination: str
    #: Events read from the recording (each counted under exactly one of the next six).
    read: int = 0
    #: Delivered by this push.
    sent: int = 0
    #: Pushed to this destination before (by an earlier push): not sent again.
    already_sent: int = 0
    #: Recorded before ``since``: not sent (a later push without it sends them).
    skipped_since: int = 0
    #: Dropped by ``before_send`` (it returned None or raised).
    dropped: int = 0
    #: Refused by the server for good (a 4xx); remembered, not sent again.
    rejected: int = 0
    #: Not delivered (retries exhausted): the next push sends them.
    failed: int = 0
    #: In a dry run: what would be sent (nothing is).
    would_send: int = 0
    #: Spans the recording holds that are no event this SDK records (left out).
    unsupported: int = 0
    #: Replacements made by the configured redaction, per kind.
    redactions: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    seconds: float = 0.0
    #: The last delivery error (already free of credentials), if any.
    last_error: str | None = None

    @property
    def events_per_second(self) -> float:
        """Events sent per second of the push (0 when nothing was sent)."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def __bool__(self) -> bool:
        return self.failed == 0


# --- the progress file -------------------------------------------------------------------


def default_state_path(source: str | os.PathLike[str]) -> Path:
    """Where the progress of pushing *source* is kept by default."""
    p = Path(source).expanduser()
    return p / SPOOL_STATE_NAME if p.is_dir() else p.with_name(p.name + STATE_SUFFIX)


def destination_key(settings: Settings) -> str:
    """``"<protocol> <endpoint>"``, credentials stripped: what the progress is kept per."""
    url = settings.api_endpoint
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    protocol = settings.protocol if settings.scheme == "http" else settings.scheme
    return f"{protocol} {url}"


class PushState:
    """The progress file: per destination, the ids of events it accepted or refused.

    Each :meth:`record` is one committed transaction; WAL and ``synchronous=NORMAL``
    make it survive the process being killed (not a power cut: then at most the
    last batches are sent again, and the server dedupes them).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS destinations (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pushed (destination INTEGER NOT NULL, "
            "event INTEGER NOT NULL, status INTEGER NOT NULL, "
            "PRIMARY KEY (destination, event)) WITHOUT ROWID"
        )

    def close(self) -> None:
        self._db.close()

    def destination(self, name: str) -> int:
        self._db.execute("INSERT OR IGNORE INTO destinations (name) VALUES (?)", (name,))
        row = self._db.execute("SELECT id FROM destinations WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def known(self, destination: int, keys: list[int]) -> set[int]:
        """Which of *keys* this destination has answered for good already."""
        found: set[int] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._db.execute(
                    f"SELECT event FROM pushed WHERE destination = ? AND event IN ({marks})",
                    (destination, *chunk),
                )
            )
        return found

    def record(self, destination: int, done: list[tuple[int, int]]) -> None:
        """Remember ``(event id, status)`` pairs in one committed transaction."""
        if not done:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO pushed (destination, event, status) VALUES (?, ?, ?)",
                [(destination, key, status) for key, status in done],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def forget(self, destination: int) -> None:
        """Forget everything pushed to *destination* (``--restart``)."""
        self._db.execute("DELETE FROM pushed WHERE destination = ?", (destination,))

    def count(self, destination: int) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM pushed WHERE destination = ?", (destination,)
        ).fetchone()
        return int(row[0])


# --- since ---------------------------------------------------------------------------------


def parse_since(since: datetime | str | None, now: datetime | None = None) -> int | None:
    """``since`` as nanoseconds since the epoch.

    Accepts a datetime (naive means UTC), an ISO-8601 date or date-time
    (``2024-05-02``, ``2024-05-02T14:30Z``), or a duration before *now*
    (``90m``, ``12h``, ``7d``, ``2w``).

    Raises:
        ConfigurationError: for anything else.
    """
    if since is None:
        return None
    if isinstance(since, str):
        match = _DURATION.match(since)
        if match:
            delta = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])
            since = (now or datetime.now(timezone.utc)) - delta
        else:
            parsed = parse_iso(since)
            if parsed is None:
                raise ConfigurationError(
                    f"since: {since!r} is neither an ISO-8601 date-time nor a duration "
                    "such as 12h or 7d"
                )
            since = parsed
    if not isinstance(since, datetime):
        raise ConfigurationError(f"since: expected a datetime or a string, got {since!r}")
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (since - epoch) // timedelta(microseconds=1) * 1000


# --- the push ------------------------------------------------------------------------------


class _Filter:
    """Redaction, then ``before_send``, on one recorded event (push's share of the
    pipeline's hook: the same contract, the same order)."""

    def __init__(self, redactor: Redactor | None, before_send: BeforeSend | None) -> None:
        self.redactor = redactor
        self.before_send = before_send
        self.failed_once = False

    def apply(self, record: Recorded, tally: PushResult) -> tuple[Event, dict[str, Any]] | None:
        event = record.event
        data = event.data
        fields = record.fields
        if self.redactor is not None:
            data, counts = self.redactor.redact_event(event.kind, data)
            if fields:
                fields, _ = self.redactor.redact_event("conversation", fields)
            for kind, n in counts.items():
                tally.redactions[kind] = tally.redactions.get(kind, 0) + n
        if self.before_send is not None:
            plain = {
                "kind": event.kind,
                "conversation_id": event.conversation_id,
                "timestamp": event.timestamp,
                "data": data,
            }
            try:
                answer = self.before_send(plain)
            except Exception as exc:  # an exception drops the event, never sends it raw
                if not self.failed_once:
                    self.failed_once = True
                    _logger().error(
                        "agentsight_async push: before_send raised %s; the event is dropped "
                        "(further failures are counted, not logged)",
                        type(exc).__name__,
                    )
                return None
            if answer is None:
                return None
            new = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(new, dict):
                return None
            data = new
        if data is not event.data:
            event = Event(
                event.kind, event.conversation_id, event.ts_ns, event.seq, data, event.size
            )
        return event, fields


def _logger() -> Any:
    import logging

    return logging.getLogger("agentsight_async")


def _batch(records: list[tuple[Event, dict[str, Any]]]) -> Batch:
    """One batch, each conversation's events in recording order, its latest fields."""
    convs: dict[str, ConversationBatch] = {}
    for event, fields in records:
        cid = event.conversation_id
        conv = convs.get(cid)
        if conv is None:
            conv = convs[cid] = ConversationBatch(cid, [])
        conv.events.append(event)
        if fields:
            conv.fields = fields
    return Batch(list(convs.values()))


class _Pusher:
    def __init__(
        self,
        source: str,
        settings: Settings,
        *,
        dry_run: bool,
        since_ns: int | None,
        state_path: Path,
        restart: bool,
        progress: ProgressCallback | None,
        before_send: BeforeSend | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.dry_run = dry_run
        self.since_ns = since_ns
        self.state_path = state_path
        self.restart = restart
        self.progress = progress
        self.filter = _Filter(Redactor.from_settings(settings), before_send)
        self.transport = transport
        self.destination = destination_key(settings)
        self.stats = Stats()
        self.tally = PushResult(source, self.destination, dry_run=dry_run)

    async def run(self) -> PushResult:
        from ._recording import open_source

        started = time.monotonic()
        reader = await asyncio.to_thread(open_source, self.source)
        state: PushState | None = None
        exporter: Exporter | None = None
        try:
            if not self.dry_run or await asyncio.to_thread(self.state_path.exists):
                state = await asyncio.to_thread(PushState, self.state_path)
            dest = await asyncio.to_thread(state.destination, self.destination) if state else 0
            if self.restart and state is not None and not self.dry_run:
                await asyncio.to_thread(state.forget, dest)
            total = await asyncio.to_thread(reader.total)
            if not self.dry_run:
                exporter = create_exporter(self.settings, self.stats, transport=self.transport)
            pages = reader.pages(self.settings.batch_size, self.settings.batch_bytes)
            done = 0
            self._report(done, total)
            next_page = asyncio.ensure_future(asyncio.to_thread(_next, pages))
            while True:
                page = await next_page
                if page is None:
                    break
                next_page = asyncio.ensure_future(asyncio.to_thread(_next, pages))
                ok = await self._page(page, state, dest, exporter)
                done += page.consumed
                self._report(done, total)
                if not ok:
                    break
            next_page.cancel()
        finally:
            if exporter is not None:
                await exporter.aclose()
            await asyncio.to_thread(reader.close)
            if state is not None:
                await asyncio.to_thread(state.close)
        self.tally.seconds = time.monotonic() - started
        self.tally.last_error = self.stats.last_error
        return self.tally

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, max(total, done))

    async def _page(
        self, page: Page, state: PushState | None, dest: int, exporter: Exporter | None
    ) -> bool:
        """Send one page; False when the push must stop (a batch was not delivered)."""
        t = self.tally
        t.read += len(page.records)
        t.unsupported += page.unsupported
        keys = [r.key for r in page.records]
        known = await asyncio.to_thread(state.known, dest, keys) if state and keys else set()
        todo: list[tuple[Event, dict[str, Any]]] = []
        for record in page.records:
            if record.key in known:
                t.already_sent += 1
            elif self.since_ns is not None and record.event.ts_ns < self.since_ns:
                t.skipped_since += 1
            else:
                kept = self.filter.apply(record, t)
                if kept is None:
                    t.dropped += 1
                else:
                    todo.append(kept)
        if not todo:
            return True
        if exporter is None or state is None:
            t.would_send += len(todo)
            return True
        batch = _batch(todo)
        outcomes = await exporter.export(batch, time.monotonic() + self.settings.retry_budget)
        done: list[tuple[int, int]] = []
        failed = 0
        for conv, results in zip(batch.conversations, outcomes, strict=True):
            for event, outcome in zip(conv.events, results, strict=True):
                if outcome.ok:
                    done.append((event.seq, _DELIVERED))
                    t.sent += 1
                elif outcome.drop_reason == REJECTED:
                    done.append((event.seq, _REJECTED))
                    t.rejected += 1
                else:
                    failed += 1
        await asyncio.to_thread(state.record, dest, done)
        t.failed += failed
        return failed == 0


def _next(pages: Iterator[Page]) -> Page | None:
    return next(pages, None)


def _paths(
    source: str | os.PathLike[str], settings: Settings, state: str | os.PathLike[str] | None
) -> Path:
    """The progress file's path; refuses a ``sqlite:///`` destination that is *source*."""
    if settings.scheme == "sqlite":
        from ._exporters._sqlite import sqlite_path

        target = Path(sqlite_path(settings.api_endpoint)).resolve()
        if target == Path(source).expanduser().resolve():
            raise ConfigurationError("push: the destination is the recording itself")
    return Path(state).expanduser() if state is not None else default_state_path(source)


def _check(settings: Settings) -> None:
    reason = settings.tracking_disabled_reason
    if reason is not None:
        raise (NoApiKeyException if settings.enabled else ConfigurationError)(
            f"push: nothing can be sent: {reason}"
        )


async def apush(
    source: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    dry_run: bool = False,
    since: datetime | str | None = None,
    state: str | os.PathLike[str] | None = None,
    restart: bool = False,
    progress: ProgressCallback | None = None,
    before_send: BeforeSend | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> PushResult:
    """Upload a recording to the configured endpoint; the async form of :func:`push`.

    Args:
        source: a ``sqlite:///`` recording (the file) or a spool directory.
        settings: where to send and how (default: :func:`load_settings` with
            *overrides*, e.g. ``api_endpoint=``, ``protocol=``, ``api_key=``).
            Its redaction settings apply to what is pushed.
        dry_run: read, filter and count, send nothing and write no progress.
        since: only events tracked at or after this time (a datetime, an
            ISO-8601 string, or a duration such as ``"12h"`` or ``"7d"``).
        state: the progress file (default: next to *source*).
        restart: forget what was pushed to this destination before.
        progress: called with ``(rows done, rows in all)`` after each batch.
        before_send: given each event as ``{"kind", "conversation_id",
            "timestamp", "data"}`` after redaction; returns it, a changed copy
            (its ``data`` is sent) or None to drop it.  An exception drops it.
        transport: an httpx transport for the exporter (tests, proxies).
        **overrides: settings of the destination (``api_endpoint=``,
            ``protocol=``, ``api_key=`` ...), over ``AGENTSIGHT_*``; not with
            *settings*.

    Returns:
        The counts (:class:`PushResult`); its truth value says whether nothing
        is left to send.

    Raises:
        TypeError: both *settings* and keyword settings were given.
        agentsight_async._recording.RecordingError: *source* is not a recording or
            a spool directory (a ``ValueError``).
        ConfigurationError: invalid settings or *since*, or the destination is
            *source* itself.
        NoApiKeyException: the endpoint needs a key and none is configured.
    """
    if settings is not None and overrides:
        raise TypeError("apush: pass settings= or keyword settings, not both")
    settings = settings or load_settings(**overrides)
    _check(settings)
    state_path = await asyncio.to_thread(_paths, source, settings, state)
    pusher = _Pusher(
        os.fspath(source),
        settings,
        dry_run=dry_run,
        since_ns=parse_since(since),
        state_path=state_path,
        restart=restart,
        progress=progress,
        before_send=before_send,
        transport=transport,
    )
    return await pusher.run()


def push(source: str | os.PathLike[str], **kwargs: Any) -> PushResult:
    """Upload a ``sqlite:///`` recording or a spool directory; blocks until done.

    Called from a thread that runs an event loop (a notebook), it runs the push
    on a thread of its own.

    Example::

        result = agentsight_async.push("recording.db", api_endpoint="https://api.agentsight.io")
        print(result.sent, "sent,", result.already_sent, "sent before")

    Args:
        source: a ``sqlite:///`` recording (the file) or a spool directory.
        **kwargs: the keyword arguments of :func:`apush` (``settings``,
            ``dry_run``, ``since``, ``state``, ``restart``, ``progress``,
            ``before_send``, ``transport``, or any setting).

    Returns:
        The counts (:class:`PushResult`); its truth value says whether nothing
        is left to send.

    Raises:
        TypeError: both *settings* and keyword settings were given.
        ConfigurationError: invalid settings or *since*, or the destination is
            *source* itself.
        NoApiKeyException: the endpoint needs a key and none is configured.
    """
    return _run(apush(source, **kwargs))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(coro)))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=target, name="agentsight-push")
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    result: T = value
    return result


# --- the command ---------------------------------------------------------------------------


def add_push_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``agentsight-async push`` (the ``agentsight_async.commands`` entry point)."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "push",
        help="upload a sqlite:/// recording or a spool directory",
        description=(
            "Upload a recording (the file a sqlite:/// endpoint wrote) or a spool directory "
            "to the configured AgentSight endpoint (AGENTSIGHT_API_ENDPOINT, "
            "AGENTSIGHT_API_KEY, AGENTSIGHT_PROTOCOL, .env). Resumable and idempotent: "
            "progress is kept next to the recording, and nothing is sent twice. "
            "AGENTSIGHT_REDACT and AGENTSIGHT_REDACT_PATTERNS apply."
        ),
    )
    parser.add_argument("recording", help="the recording file, or a spool directory")
    parser.add_argument("--endpoint", help="where to send (default: AGENTSIGHT_API_ENDPOINT)")
    parser.add_argument("--protocol", choices=("ingest", "rest"), help="the wire protocol")
    parser.add_argument("--since", help="only events since: an ISO date-time, or 12h, 7d ...")
    parser.add_argument("--dry-run", action="store_true", help="count what would be sent")
    parser.add_argument("--state", help="the progress file (default: next to the recording)")
    parser.add_argument(
        "--restart", action="store_true", help="forget what was pushed to this endpoint before"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_command)
    return parser


def _command(args: argparse.Namespace) -> int:
    from ._recording import RecordingError

    overrides = {"api_endpoint": args.endpoint, "protocol": args.protocol}
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as exc:
        print(f"agentsight-async push: {exc}", file=sys.stderr)
        return 2
    with _ProgressDisplay(enabled=not args.no_progress) as progress:
        try:
            result = push(
                args.recording,
                settings=settings,
                dry_run=args.dry_run,
                since=args.since,
                state=args.state,
                restart=args.restart,
                progress=progress,
            )
        except (RecordingError, ConfigurationError) as exc:
            print(f"agentsight-async push: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("agentsight-async push: interrupted; push again to resume", file=sys.stderr)
            return 130
    print(summary(result))
    return 0 if result else 1


def summary(result: PushResult) -> str:
    """One line (two with an error) saying what a push did."""
    if result.dry_run:
        head = f"dry run: {result.would_send:,} event(s) would be sent to {result.destination}"
    else:
        head = (
            f"pushed {result.sent:,} event(s) to {result.destination} in {result.seconds:.1f} s"
            f" ({result.events_per_second:,.0f} events/s)"
        )
    parts = [
        f"{n:,} {label}"
        for n, label in (
            (result.already_sent, "sent before"),
            (result.skipped_since, "before --since"),
            (result.dropped, "dropped by before_send"),
            (result.rejected, "rejected"),
            (result.failed, "not delivered (push again)"),
            (result.unsupported, "unsupported span(s)"),
        )
        if n
    ]
    if result.redactions:
        parts.append(
            "redacted " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.redactions.items()))
        )
    line = head + (f"; {'; '.join(parts)}" if parts else "")
    if result.last_error and result.failed:
        line += f"\nlast error: {result.last_error}"
    return line


class _ProgressDisplay:
    """A rich progress bar on stderr (the ``[push]`` extra), else a line every few seconds."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> ProgressCallback | None:
        if not self.enabled:
            return None
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:
            print(
                "agentsight-async push: pip install 'agentsight-async[push]' for a progress bar",
                file=sys.stderr,
            )
            return self._plain
        self._bar = Progress(
            "push",
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task("push", total=None)
        return self._rich

    def _rich(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def _plain(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= 2.0 or done >= total:
            self._last = now
            print(f"push: {done:,} / {total:,}", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
