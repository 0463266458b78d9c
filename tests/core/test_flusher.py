"""The flusher on its own: queues, a fake exporter and a fake clock, one step at a time.

No tracker, no loop thread, no network: each test builds the parts the flusher
is given and drives :meth:`Flusher.step` itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from agentsight_async._config import load_settings
from agentsight_async._events import DELIVERED, QUESTION, Batch, Outcome
from agentsight_async._exporters._base import Exporter
from agentsight_async._flusher import Flusher
from agentsight_async._queues import Queues
from agentsight_async._stats import Stats
from agentsight_async._validation import EVENT_OVERHEAD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeExporter(Exporter):
    """Records every batch; answers DELIVERED, or what ``answer`` says; can be held."""

    name = "fake"

    def __init__(self, settings: Any, stats: Stats) -> None:
        super().__init__(settings, stats)
        self.batches: list[tuple[list[tuple[str, list[str]]], float]] = []
        self.gate: asyncio.Event | None = None
        self.answer: Any = None  # an exception to raise, or a callable(batch) -> outcomes
        self.closed = 0

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        self.batches.append(
            (
                [
                    (c.conversation_id, [e.data["content"] for e in c.events])
                    for c in batch.conversations
                ],
                deadline,
            )
        )
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.answer, BaseException):
            raise self.answer
        if callable(self.answer):
            result: list[list[Outcome]] = self.answer(batch)
            return result
        return [[DELIVERED] * len(c.events) for c in batch.conversations]

    async def aclose(self) -> None:
        self.closed += 1


@dataclass
class Rig:
    queues: Queues
    exporter: FakeExporter
    flusher: Flusher
    stats: Stats
    clock: Clock
    errors: list[Any]


def rig(**overrides: Any) -> Rig:
    opts: dict[str, Any] = {
        "api_endpoint": "memory://flusher",
        "flush_interval": 1.0,
        "batch_size": 3,
        "max_concurrency": 2,
        "retry_budget": 60.0,
    }
    opts.update(overrides)
    settings = load_settings(**opts)
    stats = Stats()
    queues = Queues(
        stats,
        batch_size=settings.batch_size,
        batch_bytes=settings.batch_bytes,
        max_events=settings.max_queue_events,
        max_bytes=settings.max_queue_bytes,
    )
    exporter = FakeExporter(settings, stats)
    clock = Clock()
    errors: list[Any] = []
    flusher = Flusher(
        queues,
        exporter,
        settings=settings,
        stats=stats,
        on_error=lambda exc, ctx: errors.append((exc, ctx)),
        clock=clock,
    )
    return Rig(queues, exporter, flusher, stats, clock, errors)


def track(queues: Queues, cid: str, *texts: str) -> None:
    for i, text in enumerate(texts):
        assert queues.push(QUESTION, cid, i, text, EVENT_OVERHEAD + len(text)) is not None


async def settle() -> None:
    """Let every export task started by a step run to completion (a few loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_partial_batch_waits_for_the_interval() -> None:
    r = rig()
    track(r.queues, "a", "one", "two")
    await r.flusher.step()
    await settle()
    assert r.exporter.batches == []  # not a full batch, interval not over
    r.clock.now += 1.0
    await r.flusher.step()
    await settle()
    assert [b for b, _ in r.exporter.batches] == [[("a", ["one", "two"])]]
    assert r.stats.delivered == 2
    assert r.stats.queued_events == 0


async def test_a_full_batch_goes_at_once_and_the_deadline_is_the_budget() -> None:
    r = rig()
    track(r.queues, "a", "1", "2", "3", "4")
    await r.flusher.step()
    await settle()
    assert r.exporter.batches[0] == ([("a", ["1", "2", "3"])], r.clock.now + 60.0)
    assert len(r.exporter.batches) == 1  # the fourth waits: not a full batch yet


async def test_one_batch_in_flight_per_conversation_keeps_order() -> None:
    r = rig()
    r.exporter.gate = asyncio.Event()
    track(r.queues, "a", "1", "2", "3", "4", "5", "6")
    await r.flusher.step()
    await settle()
    assert [b for b, _ in r.exporter.batches] == [[("a", ["1", "2", "3"])]]
    await r.flusher.step()  # "a" is in flight: its next events wait
    await settle()
    assert len(r.exporter.batches) == 1
    r.exporter.gate.set()
    await settle()  # completing an export dispatches what became ready
    assert [b for b, _ in r.exporter.batches] == [
        [("a", ["1", "2", "3"])],
        [("a", ["4", "5", "6"])],
    ]


async def test_concurrency_is_bounded() -> None:
    r = rig(batch_size=1)
    r.exporter.gate = asyncio.Event()
    for cid in "abcd":
        track(r.queues, cid, f"{cid}1")
    await r.flusher.step()
    await settle()
    assert r.flusher.in_flight == 2
    assert r.stats.in_flight == 2
    r.exporter.gate.set()
    await settle()
    assert sorted(b[0][0] for b, _ in r.exporter.batches) == ["a", "b", "c", "d"]
    assert r.flusher.in_flight == 0


async def test_a_failing_exporter_rejects_the_batch_and_the_flusher_goes_on() -> None:
    r = rig()
    r.exporter.answer = RuntimeError("exporter bug")
    track(r.queues, "a", "1", "2", "3")
    await r.flusher.step()
    await settle()
    assert r.stats.dropped["rejected"] == 3
    assert "exporter bug" in (r.stats.last_error or "")
    # on_error: once for the batch, with the exception and what was lost
    assert [(type(exc), ctx) for exc, ctx in r.errors] == [
        (
            RuntimeError,
            {
                "exporter": "fake",
                "reason": "rejected",
                "events": 3,
                "conversation_ids": ["a"],
                "error": "exporter error: exporter bug",
            },
        )
    ]
    r.exporter.answer = None
    track(r.queues, "a", "4", "5", "6")
    await r.flusher.step()
    await settle()
    assert r.stats.delivered == 3


async def test_mismatched_outcomes_are_a_rejection_not_a_crash() -> None:
    r = rig()
    r.exporter.answer = lambda batch: [[DELIVERED]]  # one outcome for three events
    track(r.queues, "a", "1", "2", "3")
    await r.flusher.step()
    await settle()
    assert r.stats.dropped["rejected"] == 3
    assert "mismatched outcomes" in (r.stats.last_error or "")


async def test_wait_resolved_true_when_done_false_on_timeout() -> None:
    r = rig()
    r.flusher.start(asyncio.get_running_loop())
    try:
        track(r.queues, "a", "1")
        assert await r.flusher.wait_resolved(r.queues.flush_targets("a"), 5)  # a flush forces it
        r.exporter.gate = asyncio.Event()
        track(r.queues, "a", "2")
        assert not await r.flusher.wait_resolved(r.queues.flush_targets("a"), 0.05)
        assert r.stats.queued_events == 1  # nothing lost by the timeout
        r.exporter.gate.set()
        assert await r.flusher.wait_resolved(r.queues.flush_targets("a"), 5)
    finally:
        await r.flusher.detach()


async def test_stop_drops_what_could_not_be_delivered_in_time() -> None:
    r = rig()
    r.exporter.gate = asyncio.Event()  # never opens: the backend hangs
    r.flusher.start(asyncio.get_running_loop())
    track(r.queues, "a", "1", "2")
    await r.flusher.stop(0.05)
    assert r.stats.dropped["shutdown"] == 2
    assert r.stats.queued_events == 0
    assert r.exporter.closed == 1
    assert not r.flusher.running


async def test_detach_puts_in_flight_batches_back_in_order() -> None:
    r = rig()
    r.exporter.gate = asyncio.Event()
    r.flusher.start(asyncio.get_running_loop())
    track(r.queues, "a", "1", "2", "3")
    await r.flusher.step()
    await settle()
    assert r.flusher.in_flight == 1
    track(r.queues, "a", "4")
    await r.flusher.detach()
    assert sum(r.stats.dropped.values()) == 0
    assert r.exporter.closed == 1
    first, second = r.queues.cut_batch(force=True), None
    assert first is not None
    assert [e.data["content"] for e in first.conversations[0].events] == ["1", "2", "3"]
    r.queues.complete(first, [[DELIVERED] * 3])
    second = r.queues.cut_batch(force=True)
    assert second is not None
    assert [e.data["content"] for e in second.conversations[0].events] == ["4"]


@pytest.mark.parametrize("interval", [0.5, 2.0])
async def test_interval_is_measured_with_the_given_clock(interval: float) -> None:
    r = rig(flush_interval=interval)
    track(r.queues, "a", "x")
    r.clock.now += interval * 0.9
    await r.flusher.step()
    await settle()
    assert r.exporter.batches == []
    r.clock.now += interval * 0.2
    await r.flusher.step()
    await settle()
    assert len(r.exporter.batches) == 1


async def test_while_throttled_one_batch_at_a_time_and_a_wider_interval() -> None:
    r = rig(batch_size=1, flush_interval=1.0)
    r.exporter.gate = asyncio.Event()
    r.stats.throttle.level = 2  # two 429s without a success since
    assert r.flusher.interval == 4.0
    for cid in "abc":
        track(r.queues, cid, f"{cid}1")
    await r.flusher.step()
    await settle()
    assert r.flusher.in_flight == 1  # not max_concurrency: the allowance is spent
    r.exporter.gate.set()
    await settle()
    r.stats.throttle.level = 0
    assert r.flusher.interval == 1.0  # narrows again as requests get through
    track(r.queues, "d", "d1", "d2")
    r.clock.now += 1.0
    await r.flusher.step()
    await settle()
    assert sorted(b[0][0] for b, _ in r.exporter.batches) == ["a", "b", "c", "d", "d"]


async def test_a_cancellation_arriving_with_a_wake_still_stops_the_run_loop() -> None:
    """asyncio.run() cancels every task at its end; if the flusher's loop survived that
    (Python 3.11's wait_for drops a cancellation that arrives as its awaitable completes),
    the application could not exit."""
    r = rig()
    loop = asyncio.get_running_loop()
    for _ in range(20):
        r.flusher.start(loop)
        await asyncio.sleep(0)  # the run loop now waits for a wake
        runner = r.flusher._runner
        assert runner is not None
        r.flusher.wake()
        runner.cancel()  # in the same turn as the wake, like asyncio.run()'s shutdown
        done, _ = await asyncio.wait({runner}, timeout=5)
        assert done == {runner}
        assert runner.cancelled()


async def test_wait_within_never_drops_a_cancellation() -> None:
    """What flush() and the API clients wait with: a cancellation arriving as the awaited
    thing completes still cancels the caller (Python 3.11's wait_for returned instead)."""
    from agentsight_async._portal import wait_within

    for _ in range(20):
        event = asyncio.Event()
        task = asyncio.create_task(wait_within(event.wait(), 5))
        await asyncio.sleep(0)  # waiting now
        event.set()
        task.cancel()  # in the same turn as the completion
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(TimeoutError):
        await wait_within(asyncio.Event().wait(), 0.01)
