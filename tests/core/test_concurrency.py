"""Concurrent conversations never mix, and each keeps its exact order."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

import pytest

from agentsight_async import AsyncConversationTracker, conversation_tracker
from agentsight_async.testing import recorded

TASKS = 1000
THREADS = 32
PER_CONVERSATION = 20


def _check_exact(url: str, expected: dict[str, list[str]]) -> None:
    got: dict[str, list[str]] = defaultdict(list)
    for rec in recorded(url):
        if rec["type"] in ("question", "answer"):
            got[rec["conversation_id"]].append(rec["data"]["content"])
    assert set(got) == set(expected)
    for cid, contents in expected.items():
        assert got[cid] == contents, cid
        # every message names its own conversation: nothing landed elsewhere
        assert all(c.startswith(cid + ":") for c in got[cid])


def test_thousand_tasks_and_32_threads_through_the_singleton(memory_singleton: str) -> None:
    expected: dict[str, list[str]] = {}
    start = threading.Barrier(THREADS + 1)

    def thread_worker(n: int) -> None:
        cid = f"thread-{n}"
        conversation_tracker.get_or_create_conversation(conversation_id=cid)
        start.wait(timeout=30)
        for i in range(PER_CONVERSATION):
            if i % 2:
                conversation_tracker.track_agent_message(f"{cid}:{i}")
            else:
                conversation_tracker.track_human_message(f"{cid}:{i}")

    async def task_worker(n: int) -> None:
        cid = f"task-{n}"
        conversation_tracker.get_or_create_conversation(conversation_id=cid)
        for i in range(PER_CONVERSATION):
            conversation_tracker.track_human_message(f"{cid}:{i}")
            if i % 5 == 0:
                await asyncio.sleep(0)  # interleave with the other tasks

    async def run_tasks() -> None:
        await asyncio.gather(*(task_worker(n) for n in range(TASKS)))

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    start.wait(timeout=30)
    asyncio.run(run_tasks())
    for t in threads:
        t.join(timeout=60)
    for n in range(THREADS):
        expected[f"thread-{n}"] = [f"thread-{n}:{i}" for i in range(PER_CONVERSATION)]
    for n in range(TASKS):
        expected[f"task-{n}"] = [f"task-{n}:{i}" for i in range(PER_CONVERSATION)]
    assert conversation_tracker.flush(timeout=60)
    _check_exact(memory_singleton, expected)
    stats = conversation_tracker.stats()
    total = (TASKS + THREADS) * (PER_CONVERSATION + 1)
    assert stats["tracked"] == total
    assert stats["delivered"] == total
    assert stats["dropped_total"] == 0


async def test_async_tracker_tasks_with_conversation_blocks() -> None:
    url = "memory://async-blocks"
    async with AsyncConversationTracker(api_endpoint=url, batch_size=64) as tracker:

        async def worker(n: int) -> None:
            async with tracker.conversation(f"c{n}", name=f"conv {n}"):
                for i in range(PER_CONVERSATION):
                    await tracker.track_human_message(f"c{n}:{i}")
                    await asyncio.sleep(0)
                # a child task inherits the conversation of its parent
                await asyncio.create_task(tracker.track_agent_message(f"c{n}:child"))

        await asyncio.gather(*(worker(n) for n in range(TASKS)))
        assert await tracker.flush(timeout=60)
    expected = {
        f"c{n}": [f"c{n}:{i}" for i in range(PER_CONVERSATION)] + [f"c{n}:child"]
        for n in range(TASKS)
    }
    _check_exact(url, expected)


async def test_conversation_block_restores_the_previous_one() -> None:
    async with AsyncConversationTracker(api_endpoint="memory://restore") as tracker:
        await tracker.get_or_create_conversation("outer")
        async with tracker.conversation("inner"):
            assert tracker.current_conversation_id == "inner"
        assert tracker.current_conversation_id == "outer"


def test_threads_do_not_see_each_others_conversation(memory_singleton: str) -> None:
    seen: dict[str, str | None] = {}
    ready = threading.Barrier(2)

    def worker(name: str) -> None:
        conversation_tracker.get_or_create_conversation(conversation_id=name)
        ready.wait(timeout=10)
        seen[name] = conversation_tracker.current_conversation_id

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert seen == {"a": "a", "b": "b"}


@pytest.mark.parametrize("batch_size", [1, 7, 500])
async def test_order_is_kept_across_many_batches(batch_size: int) -> None:
    url = f"memory://order-{batch_size}"
    async with AsyncConversationTracker(api_endpoint=url, batch_size=batch_size) as tracker:
        for i in range(300):
            await tracker.track_human_message(f"o:{i}", conversation_id="o")
        assert await tracker.flush(timeout=30)
    assert [r["data"]["content"] for r in recorded(url, "o")] == [f"o:{i}" for i in range(300)]
