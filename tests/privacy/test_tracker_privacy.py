"""Redaction, before_send and sampling on the live pipeline, into the real collector.

Conversations full of PII go through each protocol with the default redaction
set: none of it is stored.  before_send withholding a kind: none of that kind
is stored, and stats() counts exactly what was withheld.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from privacy_support import PII, counts, dump, track_mixed

from agentsight_async import AsyncConversationTracker
from agentsight_async._sampling import Sampler

CONVERSATIONS = 4


def run(**options: Any) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        async with AsyncConversationTracker(**options) as t:
            await track_mixed(t, CONVERSATIONS)
            result = await t.flush(60)
            stats = t.stats()
        assert result.pending == 0
        return stats

    return asyncio.run(main())


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_the_default_redaction_set_stores_none_of_the_pii(protocol: str, collector: Any) -> None:
    stats = run(endpoint=collector.url, protocol=protocol, redact="all", _env_file=None)
    stored = dump(collector.db_path)
    for kind, value in PII.items():
        assert value not in stored, (protocol, kind)
    assert "[email]" in stored
    assert "[card]" in stored
    assert set(stats["redactions"]) == set(PII)
    assert stats["dropped_total"] == 0
    assert counts(collector.db_path)["messages"] >= 3 * CONVERSATIONS


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_before_send_withholding_a_kind_stores_none_of_it(protocol: str, collector: Any) -> None:
    def no_buttons(event: dict[str, Any]) -> dict[str, Any] | None:
        return None if event["kind"] == "button" else event

    stats = run(endpoint=collector.url, protocol=protocol, before_send=no_buttons, _env_file=None)
    assert counts(collector.db_path)["buttons"] == 0
    assert stats["dropped"]["filtered"] == CONVERSATIONS  # one button per conversation
    assert stats["dropped_total"] == CONVERSATIONS
    assert stats["delivered"] == stats["tracked"] - CONVERSATIONS


def test_sampling_keeps_whole_conversations_the_sampler_picks(tmp_path: Path) -> None:
    url = "memory://sampled"
    ids = [f"chat-{i}" for i in range(400)]

    async def main() -> dict[str, Any]:
        async with AsyncConversationTracker(api_endpoint=url, sample_rate=0.25) as t:
            for cid in ids:
                await t.track_human_message("q", conversation_id=cid)
                await t.track_agent_message("a", conversation_id=cid)
            await t.flush(30)
            return t.stats()

    from agentsight_async.testing import recorded

    stats = asyncio.run(main())
    kept = {r["conversation_id"] for r in recorded(url)}
    expected = {cid for cid in ids if Sampler(0.25).keep(cid)}
    assert kept == expected  # the same decision as any other process would take
    assert 0.15 < len(kept) / len(ids) < 0.35
    assert stats["dropped"]["sampled"] == 2 * (len(ids) - len(kept))
    per_conversation = {cid: len(recorded(url, cid)) for cid in kept}
    assert set(per_conversation.values()) == {2}  # whole conversations, never halves
