"""An emulation of AgentSight's per-key ingest allowance (``serve --ingest-rate N``).

AgentSight throttles ingest per agent, and every process that uses the key
spends from the same allowance (the published 0.1.4 client batches every 5 s
because, at 1 s, ten busy workers were throttled).  :class:`IngestAllowance`
is a token bucket per API key: *per_minute* batches a minute, up to *burst*
at once.  A batch beyond it is answered ``429`` with ``Retry-After`` - the
whole seconds until the bucket has a token again - so an SDK (ours, or a
published client) can be tested against the throttling it will meet.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class IngestAllowance:
    """Token buckets of ingest batches, one per API key.

    Args:
        per_minute: batches a minute each key may send.
        burst: batches a key may send at once after a quiet spell (default:
            ten seconds' worth, at least one).
        clock: ``time.monotonic`` unless a test fakes it.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, math.floor(per_minute / 6)))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        #: Batches let through and refused, over every key.
        self.accepted = 0
        self.refused = 0

    def take(self, key: str) -> float | None:
        """Spend one batch of *key*'s allowance: None if it may go in, else seconds to wait."""
        now = self._clock()
        with self._lock:
            tokens, when = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self.accepted += 1
                return None
            self._buckets[key] = (tokens, now)
            self.refused += 1
            return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """The ``Retry-After`` value for *wait* seconds: whole seconds, rounded up."""
        return str(max(1, math.ceil(wait)))


__all__ = ["IngestAllowance"]
