"""Size limits at their defaults, and inputs that are accepted at the call site but
then fail on the way to the collector (the "poison" cases).

Every test here brackets the interesting call with sentinel events - in the
same conversation and in another one - because the contract is not only
"refuse or deliver" but also "never lose other events".
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from reliability_support import KEY, connect, transcript_markers

from agentsight_async import (
    AsyncConversationTracker,
    InvalidAnswerDataException,
    InvalidAttachmentException,
    InvalidConversationDataException,
    InvalidQuestionDataException,
    Settings,
)
from agentsight_collector import LocalCollector

MIB = 1 << 20


def make_tracker(url: str, protocol: str = "ingest", **overrides: Any) -> AsyncConversationTracker:
    options: dict[str, Any] = {
        "api_key": KEY,
        "endpoint": url,
        "protocol": protocol,
        "flush_interval": 0.05,
        "retry_budget": 2.0,
        "request_timeout": 10.0,
        "_env_file": None,
    }
    options.update(overrides)
    return AsyncConversationTracker(**options)


def test_default_limits_are_what_the_docs_say() -> None:
    s = Settings(_env_file=None)
    assert s.max_message_chars == 1_000_000
    assert s.max_attachment_bytes == 20 * MIB
    assert s.max_queue_events == 100_000
    assert s.max_queue_bytes == 64 * MIB
    assert s.batch_size == 500
    assert s.batch_bytes == 1 * MIB


async def test_message_at_the_limit_arrives_and_past_it_is_refused() -> None:
    limit = Settings(_env_file=None).max_message_chars
    async with AsyncConversationTracker(endpoint="memory://limits-msg", _env_file=None) as t:
        await t.track_human_message("\U0001f600" * limit, conversation_id="lim")
        with pytest.raises(InvalidQuestionDataException, match=r"^message: is 1000001 char"):
            await t.track_human_message("x" * (limit + 1), conversation_id="lim")
        with pytest.raises(InvalidAnswerDataException, match=r"^message: is 1000001 char"):
            await t.track_agent_message("x" * (limit + 1), conversation_id="lim")
        with pytest.raises(InvalidConversationDataException, match=r"^response: is 1000001"):
            await t.track_action("a", response="x" * (limit + 1), conversation_id="lim")
        with pytest.raises(InvalidConversationDataException, match=r"^label: is 256 char"):
            await t.track_button("e", "x" * 256, "v", conversation_id="lim")
        assert await t.flush(10)
        assert t.stats()["delivered"] == 1


async def test_attachment_at_the_limit_is_accepted_and_past_it_refused() -> None:
    limit = Settings(_env_file=None).max_attachment_bytes
    exact = base64.b64encode(b"\0" * limit).decode()
    over = base64.b64encode(b"\0" * (limit + 1)).decode()
    async with AsyncConversationTracker(
        endpoint="memory://limits-att", max_queue_bytes=256 * MIB, _env_file=None
    ) as t:
        att = {"filename": "a.bin", "mime_type": "application/octet-stream"}
        await t.track_attachments([{**att, "data": exact}], conversation_id="lim")
        with pytest.raises(InvalidAttachmentException, match=r"^attachments\[0\]\.data: "):
            await t.track_attachments([{**att, "data": over}], conversation_id="lim")
        with pytest.raises(InvalidAttachmentException, match=r"^attachments\[0\]\.data: "):
            await t.track_attachments(
                [{"data": b"\0" * (limit + 1)}], mode="form_data", conversation_id="lim"
            )
        with pytest.raises(InvalidAttachmentException, match=r"^attachments\[1\]\.data: "):
            await t.track_human_message(
                "m",
                attachments=[{**att, "data": "aGk="}, {**att, "data": over}],
                conversation_id="lim",
            )
        assert await t.flush(10)
        assert t.stats()["delivered"] == 1


# --- poison inputs: accepted at the call site, then lost on the way -----------------------


async def _bracketed(
    collector: LocalCollector, protocol: str, bad: Any, **overrides: Any
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Track sentinels around ``bad(tracker)`` in its conversation and in another one."""
    t = make_tracker(collector.url, protocol, **overrides)
    async with t:
        await t.track_human_message("p-before", conversation_id="poison")
        await t.track_human_message("o-before", conversation_id="other")
        raised = None
        try:
            await bad(t)
        except Exception as exc:  # recorded, judged by the caller
            raised = exc
        await t.track_human_message("p-after", conversation_id="poison")
        await t.track_human_message("o-after", conversation_id="other")
        assert await t.flush(30)
        stats = t.stats()
    stats["raised"] = raised
    return transcript_markers(collector.db_path), stats


def _assert_refused_or_delivered(
    stored: dict[str, list[str]], stats: dict[str, Any], arg: str
) -> None:
    """The sentinels all arrive; the bad call was refused naming *arg*, or it arrived."""
    assert stored.get("other") == ["o-before", "o-after"], stored
    assert stored.get("poison", [])[:1] == ["p-before"], stored
    assert stored["poison"][-1:] == ["p-after"], stored
    if stats["raised"] is not None:
        assert str(stats["raised"]).startswith(arg)
    assert stats["dropped_total"] == 0, (stats["dropped"], stats["last_error"])


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
async def test_huge_duration_does_not_sink_its_conversation(
    protocol: str, collector: LocalCollector
) -> None:
    stored, stats = await _bracketed(
        collector,
        protocol,
        lambda t: t.track_action("a", response="huge", duration_ms=1e308, conversation_id="poison"),
    )
    _assert_refused_or_delivered(stored, stats, "duration_ms")


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
async def test_token_count_beyond_int64_is_refused_or_delivered(
    protocol: str, collector: LocalCollector
) -> None:
    stored, stats = await _bracketed(
        collector,
        protocol,
        lambda t: t.track_token_usage(2**63, 1, conversation_id="poison"),
    )
    _assert_refused_or_delivered(stored, stats, "prompt_tokens")


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
async def test_large_metadata_on_a_button_arrives_intact(
    protocol: str, collector: LocalCollector
) -> None:
    meta = {"k": "x" * 20_000}

    async def bad(t: AsyncConversationTracker) -> None:
        await t.track_button("e", "big-meta", "v", metadata=meta, conversation_id="poison")

    stored, stats = await _bracketed(collector, protocol, bad)
    _assert_refused_or_delivered(stored, stats, "metadata")
    with contextlib.closing(connect(collector.db_path)) as conn:
        (raw,) = conn.execute("SELECT metadata FROM buttons WHERE label = 'big-meta'").fetchone()
    assert json.loads(raw) == meta


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
async def test_long_action_response_arrives_whole(protocol: str, collector: LocalCollector) -> None:
    response = "r" * 20_000
    stored, stats = await _bracketed(
        collector,
        protocol,
        lambda t: t.track_action("a", response=response, conversation_id="poison"),
    )
    _assert_refused_or_delivered(stored, stats, "response")
    assert response in stored["poison"]


@pytest.mark.parametrize("protocol", ["ingest"])  # REST sends form_data as raw multipart
async def test_several_large_attachments_are_refused_or_delivered(
    protocol: str, collector: LocalCollector
) -> None:
    raw = b"\1" * (12 * MIB)

    async def bad(t: AsyncConversationTracker) -> None:
        await t.track_attachments(
            [{"data": raw, "filename": "a.bin"}, {"data": raw, "filename": "b.bin"}],
            mode="form_data",
            conversation_id="poison",
        )

    stored, stats = await _bracketed(collector, protocol, bad, max_queue_bytes=256 * MIB)
    _assert_refused_or_delivered(stored, stats, "attachments")
