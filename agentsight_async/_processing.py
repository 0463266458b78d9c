"""The one place every event passes before it is stored or sent: sampling, redaction,
``before_send``.

The flusher runs an :class:`EventProcessor` over the events queued since its
last step, on its own loop - off the caller's hot path - and before the spool
commit and every exporter, so nothing unredacted reaches disk or the wire.  In
order, for each event:

1. **sampling** (``AGENTSIGHT_SAMPLE_RATE``) keeps or withholds whole
   conversations, decided from the conversation id;
2. **built-in redaction** (``AGENTSIGHT_REDACT``) replaces e-mail addresses,
   card numbers, keys ... with markers that say what was removed;
3. **``before_send``** - your callable - gets the event as plain data,
   ``{"kind", "conversation_id", "timestamp", "data"}``, and returns it, a
   changed copy, or None to withhold it.  Only ``data`` is taken from what it
   returns.  If it raises, or returns something that is not such a dict, the
   event is dropped (``before_send_error``), never sent unredacted; the first
   such failure is logged.

A withheld event is counted (``stats()["dropped"]``: ``sampled``, ``filtered``,
``before_send_error``) and resolved in its turn, so every conversation still
resolves in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from ._events import Event
from ._stats import Stats

logger = logging.getLogger("agentsight_async")

#: ``before_send(event) -> event | None``; see the module docstring.
BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class Redacting(Protocol):
    """What the processor needs of a redactor (``agentsight_async._privacy.Redactor``)."""

    def redact_event(
        self, kind: str, data: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, int]]: ...


class Sampling(Protocol):
    """What the processor needs of a sampler (``agentsight_async._sampling.Sampler``)."""

    def keep_event(self, conversation_id: str, kind: str, data: dict[str, Any]) -> bool: ...


class EventProcessor:
    """Sampling, redaction and ``before_send``, run once over each event (see the module)."""

    def __init__(
        self,
        stats: Stats,
        *,
        before_send: BeforeSend | None = None,
        redactor: Redacting | None = None,
        sampler: Sampling | None = None,
    ) -> None:
        self.stats = stats
        self.before_send = before_send
        self.redactor = redactor
        self.sampler = sampler
        self._failure_logged = False

    def process(self, events: list[Event]) -> None:
        """Decide every event's fate: ``event.hold`` is None (send it) or why it is withheld."""
        for ev in events:
            ev.hold = self._one(ev)

    def _one(self, ev: Event) -> str | None:
        sampler = self.sampler
        if sampler is not None and not sampler.keep_event(ev.conversation_id, ev.kind, ev.data):
            return "sampled"
        redactor = self.redactor
        if redactor is not None:
            try:
                ev.data, counts = redactor.redact_event(ev.kind, ev.data)
            except Exception as exc:  # never send what could not be redacted
                self._failed("redaction", exc)
                return "before_send_error"
            if counts:
                redactions = self.stats.redactions
                for kind, n in counts.items():
                    redactions[kind] = redactions.get(kind, 0) + n
        hook = self.before_send
        if hook is None:
            return None
        try:
            out = hook(
                {
                    "kind": ev.kind,
                    "conversation_id": ev.conversation_id,
                    "timestamp": ev.timestamp,
                    "data": ev.data,
                }
            )
        except Exception as exc:
            self._failed("before_send", exc)
            return "before_send_error"
        if out is None:
            return "filtered"
        data = out.get("data") if isinstance(out, dict) else None
        if not isinstance(data, dict):
            self._failed(
                "before_send",
                TypeError(
                    "before_send must return the event dict (with a 'data' dict) or None, "
                    f"not {type(out).__name__}"
                ),
            )
            return "before_send_error"
        ev.data = data
        return None

    def _failed(self, what: str, exc: BaseException) -> None:
        """Count and, the first time, log a failure; the event is dropped, not sent."""
        self.stats.record_error(f"{what} failed: {type(exc).__name__}")
        if not self._failure_logged:
            self._failure_logged = True
            # the exception's type only: its message may quote the event's content
            logger.error(
                "agentsight_async: %s raised %s; the event is dropped, not sent "
                "(counted as before_send_error; logged once)",
                what,
                type(exc).__name__,
            )
