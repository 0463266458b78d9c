"""The delivery pipeline behind a tracker: queues, spool, flusher, their event loop, hooks.

A tracking call validates its arguments and hands the pipeline one event
(:meth:`Pipeline.push`).  From there the pipeline owns everything:

* the per-conversation queues, bounded in events and bytes, and the counters
  that ``stats()`` shows;
* the durable spool, opened with the first flusher when
  ``AGENTSIGHT_SPOOL_DIR`` is set;
* the flusher and the exporter it drives, on exactly one event loop at a time:
  the running loop of the first async call (:meth:`Pipeline.bind`), or a
  private loop in a daemon thread for sync callers
  (:meth:`Pipeline.start_loop_thread`, after anyio's blocking portal);
* waits from async code on any loop (:meth:`Pipeline.run`) and blocking calls
  from any other thread (:meth:`Pipeline.call`), every one with a deadline;
* the process hooks: at interpreter exit every pipeline flushes within its
  ``shutdown_timeout``; in a forked child every pipeline starts empty (the
  parent owns, and sends, what it had queued).

A sync facade and its ``.aio`` share one pipeline, so they share queues,
counters and the loop.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._config import Settings
from ._events import Event, FlushResult
from ._exceptions import ConfigurationError, FlushTimeoutError, NoApiKeyException
from ._exporters._base import Exporter
from ._flusher import Flusher
from ._portal import LoopThread, wait_within
from ._processing import BeforeSend, EventProcessor, Redacting, Sampling
from ._queues import Queues
from ._spool import Spool
from ._stats import ErrorCallback, Stats

logger = logging.getLogger("agentsight_async")
T = TypeVar("T")

#: Builds the exporter a flusher drives: ``factory(settings, stats)``.
ExporterFactory = Callable[[Settings, Stats], Exporter]


class Pipeline:
    """Queues, spool and flusher for one tracker, and the loop they run on.

    *exporter_factory* builds the exporter each time a flusher starts (on a new
    loop, or after :meth:`reconfigure`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        exporter_factory: ExporterFactory,
        on_error: ErrorCallback | None = None,
        config_error: ConfigurationError | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        self.on_error = on_error
        self.before_send = before_send
        #: The configuration error that disabled tracking (the lazy singleton's), if any.
        self.config_error = config_error
        #: What explicit delivery calls raise while tracking is disabled by configuration.
        self.delivery_error: ConfigurationError | None = None
        self.stats = Stats()
        self.settings = settings
        self.processor: EventProcessor | None = None
        self.queues = self._new_queues(settings)
        self._exporter_factory = exporter_factory
        self._flusher: Flusher | None = None
        #: The loop our flusher runs on, while it runs (the fast path of :meth:`bind`).
        self._flusher_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal = LoopThread(
            "agentsight-async-loop",
            own_thread_error="agentsight_async: a blocking ConversationTracker call was made "
            "from the tracker's own event-loop thread; use the async API (tracker.aio) there",
        )
        self._spool: Spool | None = None
        self._closed = False
        self._start_lock = threading.Lock()
        self.disabled = False
        self.waits_for_room = False
        #: Set in a forked child whose parent ran the loop thread: the next event restarts it.
        self._revive_loop_thread = False
        self.apply(settings)
        _live.add(self)

    # --- settings ------------------------------------------------------------------
    def apply(self, settings: Settings) -> None:
        """Take *settings* for what follows: caps, batch limits, enabled, log level."""
        self.settings = settings
        q = self.queues
        q.batch_size, q.batch_bytes = settings.batch_size, settings.batch_bytes
        q.max_events, q.max_bytes = settings.max_queue_events, settings.max_queue_bytes
        reason = settings.tracking_disabled_reason
        error = self.config_error
        if error is None and reason is not None and settings.enabled:
            error = NoApiKeyException(reason)
        self.delivery_error = error
        self.disabled = reason is not None or error is not None
        #: ``await track_*`` may wait for room (read once per call: kept precomputed).
        self.waits_for_room = settings.backpressure_timeout > 0 and not self.disabled
        if error is not None:
            # An invalid setting is an error; a missing key may be deliberate (a test run).
            logger.log(
                logging.ERROR if self.config_error is not None else logging.WARNING,
                "agentsight_async: tracking is disabled: %s. track_* calls do nothing; "
                "send_tracked_data() and flush() raise this error.",
                error,
            )
        if settings.log_level is not None:
            logger.setLevel(settings.log_level)

    def _new_queues(self, settings: Settings) -> Queues:
        queues = Queues(
            self.stats,
            batch_size=settings.batch_size,
            batch_bytes=settings.batch_bytes,
            max_events=settings.max_queue_events,
            max_bytes=settings.max_queue_bytes,
        )
        # Every event is spooled from the first one on (the file opens with the flusher).
        queues.spooling = bool(settings.spool_dir)
        self.processor = self._new_processor(settings)
        queues.processing = self.processor is not None
        return queues

    def _new_processor(self, settings: Settings) -> EventProcessor | None:
        """Sampling, redaction and ``before_send``, when any of them is asked for.

        Their modules load only then: a tracker that uses none pays nothing.
        """
        redactor: Redacting | None = None
        sampler: Sampling | None = None
        if settings.redact or settings.redact_patterns:
            from ._privacy import Redactor

            redactor = Redactor.from_settings(settings)
        if settings.sample_rate < 1.0:
            from ._sampling import Sampler, register

            made = Sampler.from_settings(settings)
            sampler = register(made) if made is not None else None
        if self.before_send is None and redactor is None and sampler is None:
            return None
        return EventProcessor(
            self.stats, before_send=self.before_send, redactor=redactor, sampler=sampler
        )

    def check_deliverable(self) -> None:
        """Raise the configuration error that disabled tracking, if one did.

        Explicit delivery calls (``send_tracked_data``, ``flush``,
        ``initialize_conversation``) must not pretend: ``track_*`` calls stay
        safe no-ops, but these say why nothing can be delivered.  Tracking
        turned off on purpose (``AGENTSIGHT_ENABLED=false``) raises nothing.
        """
        if self.delivery_error is not None:
            raise self.delivery_error

    def snapshot(self) -> dict[str, Any]:
        """The counters as ``stats()`` shows them."""
        with self.queues.locked():
            snap = self.stats.as_dict()
        s = self.settings
        snap["exporter"] = s.scheme if s.scheme != "http" else s.protocol
        snap["enabled"] = not self.disabled
        return snap

    # --- the hot path ----------------------------------------------------------------
    def push(self, kind: str, conversation_id: str, payload: Any, size: int) -> bool:
        """Queue one event that carries no conversation fields; never blocks or raises.

        *payload* is a plain message's text or the event's data dict, *size*
        its estimated JSON size.  False when the event was dropped (tracking
        disabled, or no room); the drop is counted.
        """
        if self.disabled:
            self.stats.dropped["disabled"] += 1
            return False
        return self._admitted(
            self.queues.push(kind, conversation_id, time.time_ns(), payload, size)
        )

    def append(self, ev: Event, fields: dict[str, Any] | None = None) -> bool:
        """Queue *ev* (a conversation item: *fields* update the conversation's fields).

        Like :meth:`push`, but the caller keeps the :class:`Event` to wait for it.
        """
        if self.disabled:
            self.stats.dropped["disabled"] += 1
            return False
        return self._admitted(self.queues.append(ev, fields))

    def _admitted(self, wake: bool | None) -> bool:
        """What the queues said: refused (None, counted), or accepted and maybe wake."""
        if wake is None:
            self.stats.drop("queue_full")
            return False
        if self._revive_loop_thread:
            # A sync tracker used before a fork: its loop thread did not come along.
            self._revive_loop_thread = False
            self.start_loop_thread()
        elif wake:
            self._wake_flusher()
        return True

    def _wake_flusher(self) -> None:
        flusher = self._flusher
        if flusher is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is flusher.loop:
            flusher.wake()
        else:
            flusher.wake_threadsafe()

    def must_wait(self) -> bool:
        """True when an awaiting caller should wait for room (``backpressure_timeout``)."""
        return self.waits_for_room and self.queues.full()

    async def wait_for_room(self) -> None:
        """Wait up to ``backpressure_timeout`` for the flusher to free space in the queues."""
        deadline = time.monotonic() + self.settings.backpressure_timeout
        delay = 0.002
        while self.queues.full() and time.monotonic() < deadline:
            self._wake_flusher()
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.05)

    # --- the event loop ----------------------------------------------------------------
    def bind(self) -> None:
        """From async code: make sure a flusher runs, on this loop unless another owns it.

        The first loop to call wins.  A loop that ended (``asyncio.run()``
        returned) hands over to the next one that calls; events queued in
        between are kept.  While a live loop - the private loop thread, or an
        application loop running in another thread - owns the flusher, other
        loops only queue.
        """
        loop = asyncio.get_running_loop()
        if loop is self._flusher_loop:
            return  # the common case: our flusher runs right here
        owner = self._loop
        if (
            owner is not None
            and owner is not loop
            and not owner.is_closed()
            and (owner.is_running() or self._portal.running)
        ):
            return  # another live loop owns the flusher
        flusher = self._flusher
        if owner is loop and flusher is not None and flusher.running:
            return
        self._start_flusher(loop)

    def _start_flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed:
            return
        exporter = self._exporter_factory(self.settings, self.stats)
        if self.settings.spool_dir and self._spool is None and not self.disabled:
            self._spool = Spool(self.settings.spool_dir, self.stats)
        flusher = Flusher(
            self.queues,
            exporter,
            settings=self.settings,
            stats=self.stats,
            spool=self._spool,
            on_error=self.on_error,
            processor=self.processor,
        )
        self._loop = loop
        self._flusher = flusher
        self._flusher_loop = loop
        flusher.start(loop)
        if self.queues.backlog:
            flusher.wake()

    def start_loop_thread(self) -> None:
        """Run the flusher on a private event loop in a daemon thread (for sync callers).

        Idempotent.  Fire-and-forget calls never touch this loop; blocking calls
        reach it through :meth:`call`.
        """
        portal = self._portal
        if portal.running:
            return
        with self._start_lock:
            if portal.running:
                return
            self._loop = portal.start()

            async def bind_here() -> None:
                self.bind()

            portal.call(bind_here, None, RuntimeError)

    def stop_loop_thread(self) -> None:
        """Stop the private loop thread (after :meth:`aclose`); a no-op without one."""
        if self._portal.running:
            self._portal.stop()
            self._loop = None

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float | None, what: str) -> T:
        """Run ``fn()`` on the private loop and wait for it, from any other thread.

        Raises :class:`FlushTimeoutError` when *timeout* (plus a second of
        slack) passes - the work goes on in the background - and
        ``RuntimeError`` when called from the loop's own thread, where waiting
        would deadlock.  Called from inside a running event loop it works, but
        blocks that loop: the first time, a warning says for how long and
        points to the ``await`` API.  *what* names the call in messages.
        """
        self.start_loop_thread()
        caller_loop = _running_loop()
        started = time.perf_counter()
        try:
            return self._portal.call(
                fn,
                None if timeout is None else timeout + 1.0,
                lambda: FlushTimeoutError(
                    f"agentsight_async: {what} did not finish within {timeout} s"
                ),
            )
        finally:
            if caller_loop is not None:
                _warn_blocked_loop(what, time.perf_counter() - started)

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` on the pipeline's loop, from async code on any loop."""
        self.bind()
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():
            return await fn()
        fut = asyncio.run_coroutine_threadsafe(_call(fn), loop)
        return await asyncio.wrap_future(fut)

    # --- delivery (coroutines: run them on the pipeline's loop) ----------------------------
    async def wait(self, targets: dict[str, int], timeout: float) -> bool:
        """Flush now; True once each conversation in *targets* resolved that many events."""
        flusher = self._flusher
        if flusher is None or not targets:
            return not targets
        return await flusher.wait_resolved(targets, timeout)

    async def flush(self, conversation_id: str | None, timeout: float) -> FlushResult:
        """Flush one conversation (or all) and say what became of what was queued then."""
        self.check_deliverable()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        flusher = self._flusher
        if (
            conversation_id is None
            and flusher is not None
            and flusher.spool is not None
            and not flusher.started.is_set()
        ):
            # events replayed from the spool count as queued: wait for the replay first
            try:
                await wait_within(flusher.started.wait(), timeout)
            except asyncio.TimeoutError:
                return FlushResult(pending=self.queues.backlog)
        watch = self.queues.watch(conversation_id)
        try:
            await self.wait(watch.targets, max(0.0, deadline - loop.time()))
        finally:
            self.queues.unwatch(watch)
        return watch.result()

    async def aclose(self, timeout: float) -> FlushResult:
        """Flush within *timeout*, then stop for good (from any loop; safe twice).

        Events that could not be delivered by then are dropped and counted
        under ``dropped["shutdown"]`` - or, with a spool, kept on disk for the
        next start (``pending`` in the result).
        """
        if self._closed:
            return FlushResult()
        old = self._flusher
        if (
            self.queues.backlog
            and not self.disabled
            and (old is None or old.loop is None or old.loop.is_closed())
        ):
            # Nothing runs a flusher (never started, or its loop ended): start one here,
            # so what is queued is sent rather than dropped.
            self.bind()
        flusher = self._flusher
        self._closed = True
        watch = self.queues.watch(None)
        try:
            loop = flusher.loop if flusher is not None else None
            if flusher is not None and loop is not None and not loop.is_closed():
                await self.run(lambda: flusher.stop(timeout))
            elif self._spool is None:
                self.queues.drop_pending("shutdown")
            if self._spool is not None:
                await self._spool.close()
        finally:
            self.queues.unwatch(watch)
        dropped = self.stats.dropped
        lost = dropped["shutdown"] + dropped["retries_exhausted"]
        if lost:
            logger.warning(
                "agentsight_async: closed with %d event(s) not delivered (dropped: %s)",
                lost,
                {k: n for k, n in dropped.items() if n},
            )
        return watch.result()

    @property
    def closed(self) -> bool:
        """True after :meth:`aclose`."""
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the flusher runs on (the private loop thread's, for sync callers)."""
        return self._loop

    async def reconfigure(self, settings: Settings) -> None:
        """Restart the flusher with *settings*; queued and in-flight events go out with them."""
        flusher = self._flusher
        if flusher is not None and flusher.running:
            await self.run(flusher.detach)
        self._flusher = None
        self._flusher_loop = None
        self.apply(settings)
        self.bind()

    # --- exit and fork -------------------------------------------------------------------
    def flush_at_exit(self) -> None:
        """At interpreter exit: deliver what is queued within ``shutdown_timeout``."""
        if self._closed or not self.queues.backlog:
            return
        loop = self._loop
        timeout = self.settings.shutdown_timeout
        try:
            if loop is not None and loop.is_running() and not loop.is_closed():
                fut = asyncio.run_coroutine_threadsafe(self.aclose(timeout), loop)
                fut.result(timeout + 1)
            else:
                self._flusher = None
                self._flusher_loop = None
                self._loop = None
                asyncio.run(self.aclose(timeout))
        except Exception as exc:
            logger.warning("agentsight_async: flush at exit failed: %s", exc)

    def reset_in_child(self) -> None:
        """A forked child starts empty: the parent owns (and sends) what it queued.

        A loop thread the parent ran did not survive the fork; the child's first
        event starts its own, so it delivers in the background as the parent did.
        """
        self._revive_loop_thread = self._portal.started_in_parent()
        self.stats = Stats()
        self.queues = self._new_queues(self.settings)
        self._spool = None  # the parent owns its spool file; the child opens its own
        self._flusher = None
        self._flusher_loop = None
        self._loop = None  # the portal notices the fork itself and starts afresh
        self._start_lock = threading.Lock()


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_blocked_warned = False


def _warn_blocked_loop(what: str, seconds: float) -> None:
    """Once per process: a blocking call was made from async code and held its loop."""
    global _blocked_warned
    if _blocked_warned:
        return
    _blocked_warned = True
    logger.warning(
        "agentsight_async: ConversationTracker.%s blocked a running event loop for %.0f ms. "
        "In async code use the async API instead - AsyncConversationTracker, or "
        "`await conversation_tracker.aio.%s` - which waits without blocking the loop.",
        what,
        seconds * 1000,
        what.replace("close()", "aclose()"),
    )


# --- process-wide hooks: exit flush and fork reset ---------------------------------------------
_live: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for pipeline in list(_live):
        pipeline.flush_at_exit()


def _reset_all_in_child() -> None:
    for pipeline in list(_live):
        pipeline.reset_in_child()


def _register_exit_hook() -> None:
    """Flush at exit *before* the thread pools shut down.

    ``atexit`` runs after ``concurrent.futures`` has stopped accepting work, so a
    flush there could neither resolve a host name (asyncio uses the default
    executor) nor write SQLite off-loop.  ``threading``'s own exit hooks run
    earlier, in reverse order of registration: importing the thread pool module
    first puts our hook ahead of its shutdown.  ``atexit`` is the fallback.
    """
    import concurrent.futures.thread  # noqa: F401 - registers its hook before ours

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_flush_all_at_exit)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(_flush_all_at_exit)


_register_exit_hook()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_in_child)
