"""The one interface every exporter implements.

The flusher hands an exporter a :class:`Batch`: one or more conversations, each
with the events it may send *in this order*, never two batches in flight for the
same conversation.  The exporter shapes the events for its wire format, sends
them (retrying as its protocol allows, within ``deadline``) and answers with
one :class:`Outcome` per event, in the same order.

An exporter never raises for a delivery failure: a failure is an outcome with
``ok=False`` and a ``drop_reason``.  If the export task is *cancelled* (the
event loop is going away, not a shutdown with a deadline), the flusher puts the
batch's events back at the front of their queues; ids are stable, so resending
them cannot duplicate rows in a server that dedupes.
"""

from __future__ import annotations

import abc
from typing import Final

from .._config import Settings
from .._events import Batch, Outcome
from .._stats import Stats

#: The name this SDK reports itself as: ``User-Agent``, the ingest payload's ``sdk``
#: and the spans' OpenTelemetry resource.
SDK_NAME: Final = "agentsight-async"


class Exporter(abc.ABC):
    """Base class of the exporters: holds the settings and the counters.

    An exporter turns a :class:`Batch` into requests (or rows) and answers one
    :class:`Outcome` per event. It reports a failure through the outcome it
    returns (with the exception that caused it) and never raises: the flusher
    turns lost events into counters, log lines and ``on_error`` calls, the same
    way for every exporter. Give a tracker your own with
    ``exporter_factory=lambda settings, stats: MyExporter(settings, stats)``.

    Args:
        settings: the tracker's settings.
        stats: the tracker's counters (``requests``, ``retried`` ... are the
            exporter's to count).
    """

    #: Short name shown in logs and stats (``ingest``, ``rest``, ``sqlite``, ``memory``).
    name = "exporter"

    def __init__(self, settings: Settings, stats: Stats) -> None:
        self.settings = settings
        self.stats = stats

    @abc.abstractmethod
    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Deliver *batch*; one outcome list per conversation, one outcome per event.

        Args:
            batch: the conversations and their events, each conversation's in
                tracking order.
            deadline: a ``time.monotonic()`` value after which no new attempt may
                start (the retry budget or a shutdown deadline, whichever is first).

        Returns:
            For each ``batch.conversations[i]``, a list with one :class:`Outcome`
            per event, in order: delivered (``ok``), or dropped with its
            ``drop_reason`` (``rejected``, ``retries_exhausted``, ``shutdown``) and
            the ``exception`` that caused it.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files.

        Called once, on the flusher's loop, when the tracker closes or its flusher
        restarts with new settings. The default does nothing.
        """
