"""The background flusher: one task on the pipeline's event loop.

It wakes when the interval passes, when enough events are queued for a full
batch (the producers wake it at most once per batch, never per event), and
when someone flushes or closes.  Each wake is one :meth:`Flusher.step`: commit
new events to the spool (if there is one), then cut batches from the
conversations that have pending events and no request in flight, and export
them concurrently (at most ``max_concurrency`` batches at once).  A
conversation is in at most one in-flight batch, so its events arrive in
tracking order, and a conversation stuck in retries holds up only itself.

Before anything is committed to the spool or cut into a batch, the step runs
the event processor (sampling, redaction, ``before_send``) over the events
queued since the last step.

The flusher is given what it works with - the queues, one exporter, the
settings, the counters, the spool, the error callback, the event processor
and a clock - and nothing else, so tests drive it one step at a time with a
fake exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from ._config import Settings
from ._events import Batch, ConversationBatch, Outcome
from ._exceptions import DeliveryError
from ._exporters._base import Exporter
from ._portal import wait_within
from ._processing import EventProcessor
from ._queues import Queues
from ._spool import Spool
from ._stats import ErrorCallback, Stats, call_on_error

logger = logging.getLogger("agentsight_async")

#: With a spool, queued events are committed to disk at least this often (seconds).
SPOOL_INTERVAL = 0.1


class Flusher:
    """Drives one exporter from the queues on one event loop.

    Construct it on (or for) the loop it runs on; :meth:`start` runs
    :meth:`run` as a task there.  *clock* is what the flush interval and the
    retry budget are measured with (``time.monotonic`` unless a test fakes it).
    """

    def __init__(
        self,
        queues: Queues,
        exporter: Exporter,
        *,
        settings: Settings,
        stats: Stats,
        spool: Spool | None = None,
        on_error: ErrorCallback | None = None,
        processor: EventProcessor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queues = queues
        self.processor = processor
        self.exporter = exporter
        self.settings = settings
        self.stats = stats
        self.spool = spool
        self._on_error = on_error
        self._clock = clock
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._exports: set[asyncio.Task[None]] = set()
        self._flush_requests = 0
        self._last_full_dispatch = clock()
        self._shutdown_deadline = math.inf
        self._hard_stop = False
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._spool_lock = asyncio.Lock()
        #: Set once the flusher runs (after replaying the spool, if there is one).
        self.started = asyncio.Event()

    # --- lifecycle -------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run :meth:`run` as a task on *loop* (call it from that loop's thread)."""
        self._loop = loop
        self._runner = loop.create_task(self.run(), name="agentsight-flusher")

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the flusher runs on, once started."""
        return self._loop

    @property
    def running(self) -> bool:
        loop = self._loop
        return (
            self._runner is not None
            and not self._runner.done()
            and loop is not None
            and not loop.is_closed()
        )

    @property
    def in_flight(self) -> int:
        """Batches being exported now."""
        return len(self._exports)

    def wake(self) -> None:
        """Wake the flusher (from its own loop's thread)."""
        self._wake.set()

    def wake_threadsafe(self) -> None:
        """Wake the flusher from any thread (producers call this once per batch)."""
        loop = self._loop
        if loop is None:
            return
        # A closed loop raises RuntimeError: the next loop's flusher picks the events up.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._wake.set)

    @property
    def interval(self) -> float:
        """Seconds between two flushes: ``flush_interval``, widened while throttled."""
        return self.settings.flush_interval * (1 << self.stats.throttle.level)

    async def run(self) -> None:
        """Replay the spool, then step on every wake and every interval until cancelled."""
        try:
            if self.spool is not None:
                try:
                    await self._open_spool()
                except Exception:  # the spool reports its own failures; keep delivering
                    logger.exception("agentsight_async: opening the spool failed")
            self.started.set()
            while True:
                interval = self.interval
                if self.spool is not None:
                    interval = min(interval, SPOOL_INTERVAL)
                # Not wait_for: up to Python 3.11 it drops a cancellation that arrives
                # as the event is set, and a flusher that survives asyncio.run()'s
                # cancellation would keep the application from exiting.
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waiter}, timeout=interval)
                finally:
                    waiter.cancel()
                self._wake.clear()
                try:
                    await self.step()
                except Exception as exc:  # a bug here must not stop deliveries for good
                    logger.exception("agentsight_async flusher step failed")
                    self.stats.record_error(f"{type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            # The loop is going away (asyncio.run() ended) or stop() was called:
            # the export tasks decide themselves (via _hard_stop) whether their
            # batches go back to the queues for the next flusher.
            await self._cancel_exports()
            raise

    async def step(self) -> None:
        """One round: process new events, commit them to the spool, start what the budget allows."""
        self._process()
        await self._commit_spool()
        await self._dispatch_and_notify()

    def _process(self) -> None:
        """Run sampling, redaction and ``before_send`` over the events queued since last time."""
        processor = self.processor
        if processor is None:
            return
        events = self.queues.take_unprocessed()
        if events:
            processor.process(events)
            self.queues.processed(events)

    async def _open_spool(self) -> None:
        spool = self.spool
        if spool is None:
            return
        if not spool.available and spool.path is None:
            replay = await spool.open()
            if replay:
                refused = self.queues.admit_replayed(replay)
                await spool.delete(refused)
        if not spool.available:  # reported by the spool; go on without durability
            self.queues.stop_spooling()

    async def _commit_spool(self) -> None:
        """Group-commit every event queued since the last commit (before any upload)."""
        if self.spool is None:
            return
        async with self._spool_lock:
            await self.spool.write(self.queues.take_unspooled())

    def _dispatch(self) -> None:
        """Start as many batches as the concurrency budget and the queues allow.

        While the backend throttles (see :class:`Throttle`), one batch at a
        time, and partial batches only once the widened interval has passed.
        """
        now = self._clock()
        force = (
            self._flush_requests > 0
            or self._closing
            or now - self._last_full_dispatch >= self.interval
        )
        if force:
            self._last_full_dispatch = now
        limit = 1 if self.stats.throttle.level else self.settings.max_concurrency
        loop = asyncio.get_running_loop()
        while len(self._exports) < limit:
            batch = self.queues.cut_batch(force=force)
            if batch is None:
                break
            task = loop.create_task(self._export(batch), name="agentsight-export")
            self._exports.add(task)
            task.add_done_callback(self._exports.discard)

    async def _export(self, batch: Batch) -> None:
        budget_deadline = self._clock() + self.settings.retry_budget
        deadline = min(budget_deadline, self._shutdown_deadline)
        stats = self.stats
        stats.in_flight += batch.event_count
        stats.batches += 1
        outcomes: list[list[Outcome]] | None = None
        try:
            await self._commit_spool()  # durable before it leaves the process
            outcomes = await self.exporter.export(batch, deadline)
            if [len(o) for o in outcomes] != [len(c.events) for c in batch.conversations]:
                raise RuntimeError(f"{self.exporter.name} exporter returned mismatched outcomes")
        except asyncio.CancelledError:
            if self._hard_stop and self.spool is None:
                outcomes = _all(batch, _shut_down())
            else:
                self.queues.requeue(batch)
                raise
        except Exception as exc:  # an exporter bug must never kill the pipeline
            logger.exception("agentsight_async %s exporter failed", self.exporter.name)
            stats.record_error(f"{type(exc).__name__}: {exc}")
            outcomes = _all(batch, Outcome(False, None, f"exporter error: {exc}", "rejected", exc))
        finally:
            stats.in_flight -= batch.event_count
            if outcomes is not None:
                if self.spool is not None and self._shutdown_deadline < budget_deadline:
                    # Cut short by shutdown, not by its budget: with a spool, what
                    # was not delivered waits on disk for the next start.
                    batch, outcomes = self._keep_cut_short(batch, outcomes)
                self.queues.complete(batch, outcomes)
                self._report_losses(batch, outcomes)
                if self.spool is not None:
                    seqs = [ev.seq for c in batch.conversations for ev in c.events]
                    await asyncio.shield(self.spool.delete(seqs))
                async with self._changed:
                    self._changed.notify_all()
        # Leave the in-flight set before dispatching, so this slot can be reused now
        # (the done-callback that also removes it runs only on a later loop turn).
        task = asyncio.current_task()
        if task is not None:
            self._exports.discard(task)
        await self._dispatch_and_notify()

    async def _dispatch_and_notify(self) -> None:
        """Dispatch; a cut that resolved withheld events wakes whoever waits for them."""
        queues = self.queues
        before = queues.withheld_resolved
        self._dispatch()
        if queues.withheld_resolved != before:
            async with self._changed:
                self._changed.notify_all()

    def _report_losses(self, batch: Batch, outcomes: list[list[Outcome]]) -> None:
        """Call ``on_error`` once per reason for the events of *batch* that were lost.

        Once per batch and reason, whatever the protocol (a REST batch fails
        item by item, an ingest batch as a whole): the first failure's
        exception, and a context saying how many events of which conversations.
        """
        if self._on_error is None:
            return
        lost: dict[str, tuple[Outcome, list[str], int]] = {}
        for part, results in zip(batch.conversations, outcomes, strict=True):
            for outcome in results:
                if outcome.ok:
                    continue
                reason = outcome.drop_reason or "rejected"
                first, cids, count = lost.get(reason, (outcome, [], 0))
                if not cids or cids[-1] != part.conversation_id:
                    cids.append(part.conversation_id)
                lost[reason] = (first, cids, count + 1)
        for reason, (first, cids, count) in lost.items():
            self._call_on_error(first, reason, count, cids)

    def _call_on_error(
        self, first: Outcome, reason: str, count: int, conversation_ids: list[str]
    ) -> None:
        exc = first.exception or DeliveryError(first.error or f"{count} event(s) {reason}")
        context = {
            "exporter": self.exporter.name,
            "reason": reason,
            "events": count,
            "conversation_ids": conversation_ids,
            "error": first.error,
        }
        call_on_error(self._on_error, exc, context)

    def _keep_cut_short(
        self, batch: Batch, outcomes: list[list[Outcome]]
    ) -> tuple[Batch, list[list[Outcome]]]:
        """Split off the events a shutdown deadline cut short; put them back in the queue."""
        done: list[ConversationBatch] = []
        done_outcomes: list[list[Outcome]] = []
        kept: list[ConversationBatch] = []
        for part, results in zip(batch.conversations, outcomes, strict=True):
            cut = next(
                (i for i, o in enumerate(results) if o.drop_reason == "retries_exhausted"),
                len(results),
            )
            if cut:
                done.append(ConversationBatch(part.conversation_id, part.events[:cut], part.fields))
                done_outcomes.append(results[:cut])
            if cut < len(results):
                kept.append(ConversationBatch(part.conversation_id, part.events[cut:], part.fields))
        if kept:
            self.queues.requeue(Batch(kept))
        return Batch(done), done_outcomes

    async def _cancel_exports(self) -> None:
        tasks = list(self._exports)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- waiting -------------------------------------------------------------------
    async def wait_resolved(self, targets: dict[str, int], timeout: float | None) -> bool:
        """Flush now and wait until each conversation resolved its first N events.

        *targets* maps conversation ids to the number of events that must be
        resolved (delivered or dropped).  Returns False on timeout; nothing is
        lost then, the events stay queued.
        """
        if not targets:
            return True
        self._flush_requests += 1
        self.wake()
        try:
            await wait_within(self._wait_for(targets), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._flush_requests -= 1

    async def _wait_for(self, targets: dict[str, int]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.queues.resolved(targets))

    async def stop(self, timeout: float) -> None:
        """Deliver what can be delivered within *timeout*, then drop the rest as ``shutdown``.

        With an available spool the rest is kept on disk for the next start instead.
        """
        self._closing = True
        self._shutdown_deadline = self._clock() + timeout
        await self.wait_resolved(self.queues.flush_targets(None), timeout)
        self._hard_stop = True
        await self._stop_runner()
        await self._cancel_exports()
        if self.spool is not None and self.spool.available:
            await self._commit_spool()
            kept = self.queues.forget_pending()
            if kept:
                logger.warning(
                    "agentsight_async: %d undelivered event(s) kept in the spool %s "
                    "for the next start",
                    kept,
                    self.spool.directory,
                )
        else:
            dropped = self.queues.drop_pending("shutdown")
            if dropped and self._on_error is not None:
                self._call_on_error(_shut_down(), "shutdown", dropped, [])
        await self._close_exporter()

    async def detach(self) -> None:
        """Stop without dropping anything: in-flight batches go back to the queues."""
        await self._stop_runner()
        await self._cancel_exports()
        await self._close_exporter()

    async def _stop_runner(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

    async def _close_exporter(self) -> None:
        try:
            await self.exporter.aclose()
        except Exception:
            logger.exception("agentsight_async exporter close failed")


def _shut_down() -> Outcome:
    text = "not delivered before the shutdown deadline"
    return Outcome(False, None, text, "shutdown", DeliveryError(text))


def _all(batch: Batch, outcome: Outcome) -> list[list[Outcome]]:
    return [[outcome] * len(c.events) for c in batch.conversations]
