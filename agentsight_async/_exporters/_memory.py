"""``memory://NAME``: records what would be sent, for users' own tests.

Events are stored as plain dicts in the original SDK's item shape, per memory
URL, in the process.  Read them with :func:`agentsight_async.testing.recorded`.
"""

from __future__ import annotations

import threading
from typing import Any

from .._events import DELIVERED, Batch, Outcome, event_uuid, span_id
from ._base import Exporter

_lock = threading.Lock()
_stores: dict[str, list[dict[str, Any]]] = {}


def store(url: str) -> list[dict[str, Any]]:
    """The record list behind a ``memory://`` URL (created on first use)."""
    with _lock:
        return _stores.setdefault(url, [])


def clear(url: str | None = None) -> None:
    """Forget what was recorded behind *url* (every memory URL when None)."""
    with _lock:
        if url is None:
            _stores.clear()
        else:
            _stores.pop(url, None)


def record_of(ev: Any) -> dict[str, Any]:
    """One recorded event: ids, kind, result type, conversation, timestamp and data."""
    return {
        "id": event_uuid(ev),
        "span_id": span_id(ev),
        "kind": ev.kind,
        "type": ev.result_type,
        "conversation_id": ev.conversation_id,
        "timestamp": ev.timestamp,
        "data": ev.data,
    }


class MemoryExporter(Exporter):
    """Appends every event to its memory URL's record list; always delivers."""

    name = "memory"

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Record *batch* (in order); every event is delivered."""
        records = [record_of(ev) for conv in batch.conversations for ev in conv.events]
        target = store(self.settings.api_endpoint)
        with _lock:
            target.extend(records)
        self.stats.requests += 1
        return [[DELIVERED] * len(conv.events) for conv in batch.conversations]
