"""Counters of what the pipeline did, and rate-limited reporting of drops and errors."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("agentsight_async")

#: Why an event can be dropped.  Every drop is counted under exactly one reason.
DROP_REASONS = ("queue_full", "rejected", "retries_exhausted", "shutdown", "disabled")

ErrorCallback = Callable[[BaseException, dict[str, Any]], None]


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
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.queued_events = 0
        self.queued_bytes = 0
        self.in_flight = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
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
            "dropped": dict(self.dropped),
            "dropped_total": sum(self.dropped.values()),
            "queued_events": self.queued_events,
            "queued_bytes": self.queued_bytes,
            "in_flight": self.in_flight,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def record_error(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()

    def drop(self, reason: str, count: int = 1, interval: float = 10.0) -> None:
        """Count *count* dropped events and log them at most once per *interval*."""
        self.dropped[reason] += count
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
