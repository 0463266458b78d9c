"""Counters of what the pipeline did, and rate-limited reporting of drops and errors."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("agentsight_async")

#: Why an event can be dropped.  Every drop is counted under exactly one reason.
DROP_REASONS = (
    "queue_full",
    "rejected",
    "retries_exhausted",
    "shutdown",
    "disabled",
    "filtered",  # before_send returned None
    "sampled",  # AGENTSIGHT_SAMPLE_RATE left the conversation out
    "before_send_error",  # before_send raised, or returned something unusable
)
#: Reasons that withhold an event on purpose: counted, but not warned about, and not
#: failures of a flush (``FlushResult.filtered``).
WITHHELD = frozenset({"filtered", "sampled"})

ErrorCallback = Callable[[BaseException, dict[str, Any]], None]

#: Seconds between two reminders that delivery is still failing.
HEALTH_LOG_INTERVAL = 60.0


class Throttle:
    """The backend's allowance, spent as a budget rather than fought as an error.

    AgentSight throttles ingest per agent, and every worker process of a
    deployment spends from the same allowance.  A process cannot see the
    others, so it learns the pace from the 429s it gets: it gives way at once
    and takes room back slowly (one step per success, and only after a quiet
    spell):

    * a 429 raises the *level*, at least one step and at least far enough
      that the widened interval, ``flush_interval * 2**level``, covers
      ``Retry-After``; while above zero the flusher widens its interval to
      that (batches fill up, fewer requests go out) and keeps one batch in
      flight;
    * it pauses the whole exporter - every batch waits, not only the one
      refused - until ``Retry-After`` has passed and a widened interval with
      it, plus up to half as much again at random, so a fleet does not come
      back at one instant;
    * a success lowers the level one step once a whole widened interval has
      passed since the last 429.

    Time spent paused does not count against a batch's retry budget: a
    throttled event waits, it is not dropped.
    """

    #: The widest interval is ``flush_interval * 2**MAX_LEVEL``.
    MAX_LEVEL = 6
    #: A pause is stretched by up to this fraction, at random.
    JITTER = 0.5

    def __init__(self) -> None:
        self.until = 0.0  # monotonic time before which no request may start
        self.level = 0
        self.hits = 0  # 429 answers received
        self._last_hit = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may start (0 when not paused)."""
        return max(0.0, self.until - now)

    def throttled(self, wait: float, now: float, base: float, jitter: float) -> None:
        """A 429 at *now*; the server asked for *wait* seconds, *base* is ``flush_interval``.

        *jitter* is a random number in ``[0, 1)``.
        """
        self.hits += 1
        # at least far enough that the widened interval covers what the server asked for
        steps = math.ceil(math.log2(max(wait, base) / base))
        self.level = min(self.MAX_LEVEL, max(self.level + 1, steps))
        pause = max(wait, base * (1 << self.level)) * (1.0 + self.JITTER * jitter)
        self.until = max(self.until, now + pause)
        self._last_hit = now

    def succeeded(self, now: float, base: float) -> None:
        """A request got through at *now*: one step back once a widened interval was quiet."""
        if self.level and now - self._last_hit >= base * (1 << self.level):
            self.level -= 1
            self._last_hit = now


class Stats:
    """Mutable counters shared by the tracker, the flusher and the exporters.

    Increments happen under the tracker's lock or on the flusher's loop; a
    snapshot (:meth:`as_dict`) is what users see through ``tracker.stats()``.
    """

    def __init__(self) -> None:
        self.tracked = 0
        self.delivered = 0
        self.retried = 0
        self.requests = 0
        self.batches = 0
        #: Spans and log records an OTLP receiver answered as rejected in a partial
        #: success (not retried, per the specification; the receiver does not say which
        #: ones, so their events still count as delivered).
        self.partially_rejected = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        #: What built-in redaction replaced, by kind (``email``, ``card`` ...).
        self.redactions: dict[str, int] = {}
        self.queued_events = 0
        self.queued_bytes = 0
        self.in_flight = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        #: Wall time delivery started failing (transport errors, 5xx, 429), None when healthy.
        self.failing_since: float | None = None
        self._failing_logged = 0.0
        self.throttle = Throttle()
        self._last_drop_log = 0.0
        self._unlogged_drops = dict.fromkeys(DROP_REASONS, 0)
        self._log_lock = threading.Lock()

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracked": self.tracked,
            "delivered": self.delivered,
            "retried": self.retried,
            "requests": self.requests,
            "batches": self.batches,
            "partially_rejected": self.partially_rejected,
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "redactions": dict(self.redactions),
            "queued_events": self.queued_events,
            "queued_bytes": self.queued_bytes,
            "in_flight": self.in_flight,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "failing_since": self.failing_since,
            "throttled": self.throttle.hits,
        }

    def record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()

    def attempt_failed(self, message: str) -> None:
        """A delivery attempt failed in a way worth retrying: make the outage visible now.

        ``last_error`` is set from the first failed attempt.  One WARNING when
        delivery starts failing (the reason, how much is queued), a reminder at
        most every :data:`HEALTH_LOG_INTERVAL` while it lasts.
        """
        self.record_error(message)
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = time.time()
            self._failing_logged = now
            logger.warning(
                "agentsight_async: delivery is failing (%s); %d event(s) queued, retrying in "
                "the background",
                message,
                self.queued_events,
            )
        elif now - self._failing_logged >= HEALTH_LOG_INTERVAL:
            self._failing_logged = now
            logger.warning(
                "agentsight_async: delivery still failing after %.0f s (%s); %d event(s) "
                "queued, %d dropped so far",
                time.time() - self.failing_since,
                message,
                self.queued_events,
                sum(self.dropped.values()),
            )

    def attempt_succeeded(self, now: float, base_interval: float) -> None:
        """A delivery attempt got through: one INFO if it ends an outage.

        *now* (monotonic) and *base_interval* (``flush_interval``) pace the throttle.
        """
        self.throttle.succeeded(now, base_interval)
        if self.failing_since is not None:
            logger.info(
                "agentsight_async: delivery recovered after %.0f s of failures",
                time.time() - self.failing_since,
            )
            self.failing_since = None

    def drop(self, reason: str, count: int = 1, interval: float = 10.0) -> None:
        """Count *count* dropped events and log them at most once per *interval*.

        Events withheld on purpose (:data:`WITHHELD`) are counted, not logged.
        """
        self.dropped[reason] += count
        if reason in WITHHELD:
            return
        with self._log_lock:
            self._unlogged_drops[reason] += count
            now = time.monotonic()
            if now - self._last_drop_log < interval:
                return
            self._last_drop_log = now
            summary = {k: v for k, v in self._unlogged_drops.items() if v}
            self._unlogged_drops = dict.fromkeys(DROP_REASONS, 0)
        logger.warning("agentsight_async dropped events: %s (totals: %s)", summary, self.dropped)


def call_on_error(
    callback: ErrorCallback | None, exc: BaseException, context: dict[str, Any]
) -> None:
    """Call the user's ``on_error`` without ever letting it raise into the pipeline."""
    if callback is None:
        return
    try:
        callback(exc, context)
    except Exception:
        logger.exception("agentsight_async on_error callback raised")
