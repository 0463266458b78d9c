"""The durable spool (opt-in, ``AGENTSIGHT_SPOOL_DIR``): queued events survive a crash.

The flusher commits queued events to a SQLite file (WAL, one transaction per
group) before it uploads them, deletes them once they are resolved, and a new
process replays whatever an earlier one left behind.  Event ids travel with
the rows, so a replayed event that had in fact been delivered is deduplicated
by the server (span id on ingest, ``Idempotency-Key`` on REST).

Each live process owns one file, ``spool-<random>.db``, locked with ``flock``
for as long as the process lives.  A file that nobody holds a lock on belongs
to a process that died: the next process to start claims it, copies its rows
into its own file in one transaction, and removes it.  A file that cannot be
read (corrupt, not a database) is renamed ``*.corrupt`` and reported; the
spool never raises into the tracker - it logs, records ``last_error`` and
carries on without durability if it must.

All SQLite work happens on one dedicated thread, so the event loop never waits
on the disk and the connection is never shared between threads.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ._events import Event
from ._stats import Stats

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process claiming
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("agentsight_async")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    data TEXT NOT NULL,
    fields TEXT
)
"""


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "__bytes__" in obj:
        return base64.b64decode(obj["__bytes__"])
    return obj


def _to_row(ev: Event, fields: dict[str, Any] | None) -> tuple[Any, ...]:
    return (
        ev.seq,
        ev.conversation_id,
        ev.kind,
        ev.ts_ns,
        ev.size,
        json.dumps(ev.data, default=_encode, ensure_ascii=False),
        json.dumps(fields, ensure_ascii=False) if fields else None,
    )


def _from_row(row: tuple[Any, ...]) -> tuple[Event, dict[str, Any] | None]:
    seq, cid, kind, ts_ns, size, data, fields = row
    ev = Event(kind, cid, ts_ns, seq, json.loads(data, object_hook=_decode), size)
    return ev, (json.loads(fields) if fields else None)


class Spool:
    """One process's spool file in *directory*, plus the orphans it claims."""

    def __init__(self, directory: str | os.PathLike[str], stats: Stats) -> None:
        self.directory = Path(directory).expanduser()
        self.stats = stats
        self.path: Path | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="agentsight-spool"
        )
        self.available = False

    # --- running on the spool thread ---------------------------------------------------
    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> list[tuple[Event, dict[str, Any] | None]]:
        """Create our file and return the events of dead processes' files, in order."""
        result: list[tuple[Event, dict[str, Any] | None]] = await self._call(self._open_sync)
        return result

    async def write(self, items: list[tuple[Event, dict[str, Any] | None]]) -> None:
        if items and self.available:
            await self._call(self._write_sync, items)

    async def delete(self, seqs: list[int]) -> None:
        if seqs and self.available:
            await self._call(self._delete_sync, seqs)

    async def count(self) -> int:
        if not self.available:
            return 0
        n: int = await self._call(self._count_sync)
        return n

    async def close(self) -> None:
        await self._call(self._close_sync)
        self._pool.shutdown(wait=False)

    # --- the synchronous work ---------------------------------------------------------
    def _open_sync(self) -> list[tuple[Event, dict[str, Any] | None]]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"spool-{os.getpid()}-{secrets.token_hex(4)}.db"
            self._lock_fd = self._lock(path.with_suffix(".lock"))
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            self._db, self.path, self.available = db, path, True
        except (OSError, sqlite3.Error) as exc:
            self._fail(f"spool disabled: cannot create a spool in {self.directory}: {exc}")
            return []
        return self._claim_orphans()

    def _lock(self, lock_path: Path) -> int | None:
        if fcntl is None:
            return None
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    def _claim_orphans(self) -> list[tuple[Event, dict[str, Any] | None]]:
        replay: list[tuple[Event, dict[str, Any] | None]] = []
        for other in sorted(self.directory.glob("spool-*.db")):
            if other == self.path:
                continue
            lock_fd = self._try_lock(other.with_suffix(".lock"))
            if lock_fd is False:
                continue  # a live process owns it
            try:
                rows = self._read_all(other)
                self._write_sync(rows)
                replay.extend(rows)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{other}{suffix}").unlink(missing_ok=True)
                other.with_suffix(".lock").unlink(missing_ok=True)
                if rows:
                    logger.info(
                        "agentsight_async: replaying %d spooled event(s) from %s",
                        len(rows),
                        other.name,
                    )
            except (sqlite3.Error, ValueError, OSError) as exc:
                self._set_aside(other, exc)
            finally:
                if isinstance(lock_fd, int):
                    os.close(lock_fd)
        replay.sort(key=lambda item: item[0].seq)
        return replay

    def _try_lock(self, lock_path: Path) -> int | bool | None:
        if fcntl is None:
            return None
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        return fd

    @staticmethod
    def _read_all(path: Path) -> list[tuple[Event, dict[str, Any] | None]]:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        try:
            rows = db.execute(
                "SELECT seq, conversation_id, kind, ts_ns, size, data, fields "
                "FROM events ORDER BY seq"
            ).fetchall()
        finally:
            db.close()
        return [_from_row(r) for r in rows]

    def _set_aside(self, path: Path, exc: BaseException) -> None:
        target = path.with_name(path.name + f".corrupt-{secrets.token_hex(3)}")
        try:
            path.rename(target)
        except OSError:
            target = path
        self._fail(f"spool file {path.name} could not be replayed ({exc}); set aside as {target}")

    def _fail(self, message: str) -> None:
        logger.error("agentsight_async: %s", message)
        self.stats.record_error(message)

    def _write_sync(self, items: Iterable[tuple[Event, dict[str, Any] | None]]) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_to_row(ev, fields) for ev, fields in items],
            )
            db.execute("COMMIT")
        except (sqlite3.Error, ValueError, TypeError, OverflowError) as exc:
            self._rollback()
            self._fail(f"spool write failed, events stay in memory only: {exc}")

    def _delete_sync(self, seqs: list[int]) -> None:
        db = self._db
        if db is None:
            return
        try:
            db.execute("BEGIN")
            db.executemany("DELETE FROM events WHERE seq = ?", [(s,) for s in seqs])
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self._fail(f"spool delete failed (the server dedupes any replay): {exc}")

    def _count_sync(self) -> int:
        if self._db is None:
            return 0
        row = self._db.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

    def _rollback(self) -> None:
        if self._db is not None and self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _close_sync(self) -> None:
        db, self._db = self._db, None
        self.available = False
        if db is None:
            return
        left = db.execute("SELECT count(*) FROM events").fetchone()[0]
        db.close()
        if left == 0 and self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self.path.with_suffix(".lock").unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
