"""Fault injection over a real loopback receiver: every event of many concurrent
conversations arrives once, in tracking order, through 503s, 429 + Retry-After,
502s and dropped connections - and a retried request carries the same bytes."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

from otlp_support import OtlpReceiver

from agentsight_async import AsyncConversationTracker

FAULTS = (
    ("status", 503),
    ("drop",),
    ("status", 429, {"Retry-After": "1"}),
    ("drop",),
    ("status", 502),
    ("status", 504),
)


async def test_order_and_exactly_once_through_faults(receiver: OtlpReceiver) -> None:
    receiver.fail_next(*FAULTS)
    tracker = AsyncConversationTracker(
        endpoint=receiver.url,
        protocol="otlp",
        otlp_capture_content=True,
        batch_size=40,
        flush_interval=0.05,
        _env_file=None,
    )
    async with tracker:

        async def conversation(i: int) -> None:
            async with tracker.conversation(f"conv-{i:02d}"):
                for turn in range(5):
                    await tracker.track_human_message(f"q{turn}")
                    await tracker.track_action(f"tool{turn}", duration_ms=1)
                    await tracker.track_token_usage(3, 4, 7, model="m")
                    await tracker.track_agent_message(f"a{turn}")
                    await tracker.track_button("vote", "Up", str(turn))
                    await asyncio.sleep(0)

        await asyncio.gather(*(conversation(i) for i in range(24)))
        result = await tracker.flush(60)
        stats = tracker.stats()
    # per conversation: its row (tracker.conversation) and 5 turns of 5 items
    assert result
    assert stats["delivered"] == 24 * 26
    assert stats["dropped_total"] == 0
    assert stats["retried"] >= len(FAULTS)

    spans = receiver.spans()
    logs = receiver.logs()
    assert len(spans) == 24 * 20
    assert len({s["span_id"] for s in spans}) == len(spans)
    assert sorted({r["event_name"] for r in logs}) == [
        "agentsight.conversation",
        "app.widget.click",
    ]
    assert len(logs) == 24 * 6

    seen: dict[str, list[str]] = defaultdict(list)
    for span in spans:
        cid = span["attributes"]["gen_ai.conversation.id"]
        name = span["name"]
        if name == "invoke_agent":
            [message] = json.loads(span["attributes"]["gen_ai.input.messages"])
            name = message["parts"][0]["content"]
        seen[cid].append(name)
    expected = []
    for turn in range(5):
        expected += [f"q{turn}", f"execute_tool tool{turn}", "chat m", "agentsight.message"]
    for cid, names in seen.items():
        assert names == expected, cid  # every conversation's spans in tracking order
    # each conversation's span ids increase in tracking order across all requests
    for cid in seen:
        ids = [
            int(s["span_id"], 16) for s in spans if s["attributes"]["gen_ai.conversation.id"] == cid
        ]
        assert ids == sorted(ids)

    # a retried request is a replay: the failed attempts' bodies equal a delivered one
    with receiver.lock:
        failed = [r.raw for r in receiver.requests if r.status != 200]
        delivered = {r.raw for r in receiver.requests if r.status == 200}
    assert failed
    assert all(body in delivered for body in failed)
