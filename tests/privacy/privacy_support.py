"""Helpers for the privacy suite: recordings made by the SDK, and the PII they hold.

Sizes: the kill/resume push test runs on 20,000 events by default (CI) and on
100,000 with ``AGENTSIGHT_PUSH_FULL=1``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from pathlib import Path
from typing import Any

from agentsight_async import AsyncConversationTracker
from agentsight_async._store import Store

#: Read at import: the root conftest removes every AGENTSIGHT_* variable per test.
FULL = os.environ.get("AGENTSIGHT_PUSH_FULL", "") not in ("", "0")

#: PII that every recording made by :func:`record_mixed` holds, and no push with the
#: default redaction set may deliver.
PII = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip": "192.168.10.77",
    "secret": "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2,
}


async def _record_mixed(path: Path, conversations: int) -> None:
    async with AsyncConversationTracker(api_endpoint=f"sqlite:///{path}") as t:
        await track_mixed(t, conversations)
        result = await t.flush(60)
        assert result, result


async def track_mixed(t: AsyncConversationTracker, conversations: int) -> None:
    """Every event kind, with the :data:`PII` in every scanned field (8 events each)."""
    text = " ".join(f"{k} {v}." for k, v in PII.items())
    for c in range(conversations):
        cid = f"conv-{c}"
        await t.get_or_create_conversation(
            cid,
            name=f"chat with {PII['email']}",
            metadata={"who": PII["phone"]},
            customer_ip_address="10.1.2.3",
            environment="production",
        )
        await t.track_human_message(f"q{c}: {text}", conversation_id=cid)
        await t.track_agent_message(f"a{c}: noted", conversation_id=cid, metadata={"n": c})
        await t.track_action(
            "charge",
            conversation_id=cid,
            tools_used={"card": PII["card"], "n": [1, 2]},
            response=f"ok {PII['iban']}",
            error_msg=f"retry {PII['secret']}",
            duration_ms=12.5,
        )
        await t.track_button("click", f"send to {PII['email']}", "yes", conversation_id=cid)
        await t.track_token_usage(prompt_tokens=10, completion_tokens=5, conversation_id=cid)
        files = [
            {
                "filename": f"{PII['email']}.txt",
                "mime_type": "text/plain",
                "data": base64.b64encode(b"hello").decode(),
            }
        ]
        await t.track_attachments(files, conversation_id=cid)
        await t.track_human_message(f"q{c} with a file", conversation_id=cid, attachments=files)


def _created(path: Path) -> None:
    """Create (and migrate) the store before recording into it.

    The ``sqlite:///`` exporter opens its store on the first batch; when batches of
    several conversations are exported at once, two threads can open a new file
    together and one fails with "database is locked" (reported to the pipeline's
    owner).  An existing file is opened without that race.
    """
    Store(path).close()


def record_mixed(path: Path, conversations: int = 5) -> Path:
    """A recording with every event kind and the :data:`PII` in every scanned field."""
    _created(path)
    asyncio.run(_record_mixed(path, conversations))
    return path


async def _record_messages(path: Path, events: int, conversations: int) -> None:
    settings: dict[str, Any] = {"max_queue_events": events + 10, "max_queue_bytes": 1 << 30}
    async with AsyncConversationTracker(api_endpoint=f"sqlite:///{path}", **settings) as t:
        for i in range(events):
            c = i % conversations
            await t.track_human_message(f"m{c}-{i // conversations}", conversation_id=f"c{c}")
        result = await t.flush(300)
        assert result, result


def record_messages(path: Path, events: int, conversations: int = 100) -> Path:
    """A recording of *events* messages ``m<conversation>-<n>`` over *conversations*."""
    _created(path)
    asyncio.run(_record_messages(path, events, conversations))
    return path


TABLES = ("conversations", "messages", "actions", "buttons", "attachments", "token_usage")


def rows(db_path: str | Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql, args).fetchall()


def counts(db_path: str | Path) -> dict[str, int]:
    return {t: rows(db_path, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def dump(db_path: str | Path) -> str:
    """Everything a database holds, attachment bytes included, as one text."""
    with sqlite3.connect(db_path) as db:
        text = "\n".join(db.iterdump())
    return text + "".join(
        bytes(b).decode("latin-1") for (b,) in rows(db_path, "SELECT data FROM attachment_files")
    )
