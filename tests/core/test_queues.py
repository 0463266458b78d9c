"""Queues: ordering through the inbox, result retention bounds, idle-conversation eviction."""

from __future__ import annotations

from agentsight_async._events import ANSWER, DELIVERED, QUESTION, Event
from agentsight_async._queues import EVENT_MEMORY, Queues
from agentsight_async._stats import Stats


def make(**kw: int) -> Queues:
    opts = dict(batch_size=500, batch_bytes=1 << 20, max_events=100_000, max_bytes=1 << 30)
    opts.update(kw)
    return Queues(Stats(), **opts)


def deliver_all(q: Queues) -> None:
    while (batch := q.cut_batch(force=True)) is not None:
        q.complete(batch, [[DELIVERED] * len(c.events) for c in batch.conversations])


def test_ids_follow_queue_order_across_inbox_and_locked_appends() -> None:
    q = make()
    q.push_message(QUESTION, "c", 1, "first")
    q.append(Event("action", "c", 2, 0, {"action_name": "a"}, 10), None)
    q.push_message(ANSWER, "c", 3, "third")
    events = q.tracked_events("c")
    assert [e.data.get("content") or e.data.get("action_name") for e in events] == [
        "first",
        "a",
        "third",
    ]
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3


def test_kept_results_are_bounded_across_many_conversations() -> None:
    q = make(max_events=10**6)
    q.max_results = 1000
    for i in range(20_000):
        q.push_message(QUESTION, f"c{i % 5000}", i, f"m{i}")
    deliver_all(q)
    assert q.result_count == 1000
    assert sum(len(c.results) for c in q.convs.values()) == 1000
    # the most recently delivered survive: c4999 went out last, all four at once
    newest = q.take_results("c4999")
    assert [r.event.data["content"] for r in newest] == ["m4999", "m9999", "m14999", "m19999"]
    assert q.take_results("c0") == []  # delivered first, forgotten first
    assert q.result_count == 996
    assert len(q.kept) <= 2 * q.max_results + 1024


def test_idle_conversations_are_evicted_oldest_first_busy_ones_kept() -> None:
    q = make()
    q.max_conversations = 100
    q.push_message(QUESTION, "busy", 0, "pending")  # never delivered: stays busy
    with q.locked():
        pass
    for i in range(500):
        with q.lock:
            q._new(f"idle-{i}")
    assert len(q.convs) <= 101
    assert "busy" in q.convs
    assert "idle-499" in q.convs
    assert "idle-0" not in q.convs


def test_byte_cap_counts_memory_not_just_payload() -> None:
    q = make()
    q.push_message(QUESTION, "c", 0, "x" * 40)
    with q.locked():
        pass
    assert q.stats.queued_bytes == 160 + 40 + EVENT_MEMORY
    q.max_bytes = q.stats.queued_bytes + 10
    assert q.push_message(QUESTION, "c", 1, "y") is False  # accepted into the inbox ...
    with q.locked():
        pass
    assert q.stats.dropped["queue_full"] == 1  # ... and refused when it would not fit
    assert q.stats.queued_events == 1
