"""``sqlite:///path``: record conversations into a local AgentSight-compatible store.

No server and no network: each batch goes through the collector's storage
module - the very code behind ``agentsight-async serve`` - so the file can be
served and browsed later (``agentsight-async serve --db path``).  The batch is
shaped exactly as for the ingest protocol (one transaction per conversation,
spans deduplicated by id), and attachment bytes are stored first, as the
ingest exporter uploads them.  Storage calls are blocking SQLite work, so they
run in a worker thread and never stall the event loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import Any

from .._events import ATTACHMENTS, Batch, ConversationBatch, Event, Outcome
from .._store import Store as Storage
from ._base import Exporter
from ._ingest import (
    attachment_upload,
    block_fields,
    build_block,
    build_payload,
    otel_template,
)


def sqlite_path(endpoint: str) -> str:
    """``sqlite:///rel/path`` → ``rel/path``; ``sqlite:////abs/path`` → ``/abs/path``."""
    return os.path.expanduser(endpoint[len("sqlite:///") :])


class SqliteExporter(Exporter):
    name = "sqlite"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._path = sqlite_path(self.settings.api_endpoint)
        self._storage: Storage | None = None
        self._otel = otel_template(secrets.token_hex(16))

    def _open(self) -> Storage:
        if self._storage is None:
            parent = os.path.dirname(os.path.abspath(self._path))
            os.makedirs(parent, exist_ok=True)
            self._storage = Storage(self._path)
        return self._storage

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        return await asyncio.to_thread(self._export_sync, batch)

    def _export_sync(self, batch: Batch) -> list[list[Outcome]]:
        storage = self._open()
        results: list[list[Outcome]] = []
        for conv in batch.conversations:
            results.append(self._store_conversation(storage, conv))
        self.stats.requests += 1
        return results

    def _store_conversation(self, storage: Storage, conv: ConversationBatch) -> list[Outcome]:
        uploaded: set[int] = set()
        skip: set[int] = set()
        failed: dict[int, Outcome] = {}
        for i, ev in enumerate(conv.events):
            if not ev.data.get("attachments"):
                continue
            try:
                self._store_files(storage, conv, ev)
                uploaded.add(i)
            except Exception as exc:  # a file the store refuses is that event's failure
                outcome = Outcome(
                    False, error=f"attachments not stored: {exc}", drop_reason="rejected"
                )
                self.stats.record_error(outcome.error or "")
                if ev.kind == ATTACHMENTS:
                    skip.add(i)
                    failed[i] = outcome
        block = build_block(conv, self._otel, skip=frozenset(skip), uploaded=frozenset(uploaded))
        try:
            answer = storage.ingest(build_payload([block]))
        except Exception as exc:
            text = f"local store refused the batch: {exc}"
            self.stats.record_error(text)
            return [Outcome(False, error=text, drop_reason="rejected")] * len(conv.events)
        ok = Outcome(True, response=answer)
        return [failed.get(i, ok) for i in range(len(conv.events))]

    def _store_files(self, storage: Storage, conv: ConversationBatch, ev: Event) -> None:
        cid = conv.conversation_id
        pk = storage.create_conversation({"conversation_id": cid, **block_fields(conv)})["id"]
        body, key = attachment_upload(ev, cid, pk)
        storage.create_attachments(body, idempotency_key=key)

    async def aclose(self) -> None:
        if self._storage is not None:
            storage, self._storage = self._storage, None
            await asyncio.to_thread(storage.close)
