"""``sqlite:///path``: record conversations into a local AgentSight-compatible store.

No server and no network: each batch goes through the local store - the very
code behind ``agentsight-async serve`` - so the file can be served and browsed
later (``agentsight-async serve --db path``).  A block is the ingest exporter's,
byte for byte (the same :class:`~._spans.BlockEncoder`); the store takes it
parsed, as the collector would (one transaction per conversation, spans
deduplicated by id).  Attachment bytes are stored first, as the ingest
exporter uploads them, with the same upload body.  Store calls are blocking
SQLite work, so they run in a worker thread and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from typing import Any

import orjson

from .._events import ATTACHMENTS, Batch, ConversationBatch, Event, Outcome
from .._store import Store
from ._base import Exporter
from ._retry import REJECTED
from ._spans import build_block, encode_payload, otel_template
from ._uploads import attachment_upload, upsert_body


def sqlite_path(endpoint: str) -> str:
    """``sqlite:///rel/path`` → ``rel/path``; ``sqlite:////abs/path`` → ``/abs/path``."""
    return os.path.expanduser(endpoint[len("sqlite:///") :])


class SqliteExporter(Exporter):
    """Writes batches into a local SQLite store (opened on first use)."""

    name = "sqlite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = sqlite_path(self.settings.api_endpoint)
        self._store: Store | None = None
        self._open_lock = threading.Lock()
        self._otel = otel_template(secrets.token_hex(16))

    def _open(self) -> Store:
        # Exports run in worker threads, several at once: one of them creates the file
        # (two creating it together would race on its schema: "database is locked").
        with self._open_lock:
            if self._store is None:
                parent = os.path.dirname(os.path.abspath(self._path))
                os.makedirs(parent, exist_ok=True)
                self._store = Store(self._path)
            return self._store

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Store every conversation of *batch* (in a worker thread); never raises."""
        return await asyncio.to_thread(self._export_sync, batch)

    def _export_sync(self, batch: Batch) -> list[list[Outcome]]:
        store = self._open()
        results = [self._store_conversation(store, conv) for conv in batch.conversations]
        self.stats.requests += 1
        return results

    def _store_conversation(self, store: Store, conv: ConversationBatch) -> list[Outcome]:
        uploaded: set[int] = set()
        skip: set[int] = set()
        failed: dict[int, Outcome] = {}
        for i, ev in enumerate(conv.events):
            if not ev.has_attachments:
                continue
            try:
                self._store_files(store, conv, ev)
                uploaded.add(i)
            except Exception as exc:  # a file the store refuses is that event's failure
                outcome = Outcome(
                    False,
                    error=f"attachments not stored: {exc}",
                    drop_reason=REJECTED,
                    exception=exc,
                )
                self.stats.record_error(outcome.error or "")
                if ev.kind == ATTACHMENTS:
                    skip.add(i)
                    failed[i] = outcome
        try:
            block = build_block(
                conv, self._otel, skip=frozenset(skip), uploaded=frozenset(uploaded)
            )
            answer = store.ingest(orjson.loads(encode_payload([block])))
        except Exception as exc:
            text = f"local store refused the batch: {exc}"
            self.stats.record_error(text)
            refused = Outcome(False, error=text, drop_reason=REJECTED, exception=exc)
            return [refused] * len(conv.events)
        ok = Outcome(True, response=answer)
        return [failed.get(i, ok) for i in range(len(conv.events))]

    @staticmethod
    def _store_files(store: Store, conv: ConversationBatch, ev: Event) -> None:
        pk = store.create_conversation(upsert_body(conv))["id"]
        body, key = attachment_upload(ev, conv.conversation_id, pk)
        store.create_attachments(body, idempotency_key=key)

    async def aclose(self) -> None:
        """Close the store, if it was opened."""
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)
