"""Queues: ordering through the inbox, result retention bounds, idle-conversation eviction."""

from __future__ import annotations

import threading

from agentsight_async._events import ANSWER, DELIVERED, QUESTION, Event, Outcome
from agentsight_async._queues import EVENT_MEMORY, INBOX_RESERVE, Queues
from agentsight_async._stats import Stats
from agentsight_async._validation import EVENT_OVERHEAD


def msg_size(text: str) -> int:
    return EVENT_OVERHEAD + len(text)


def make(**kw: int) -> Queues:
    opts = dict(batch_size=500, batch_bytes=1 << 20, max_events=100_000, max_bytes=1 << 30)
    opts.update(kw)
    return Queues(Stats(), **opts)


def deliver_all(q: Queues) -> None:
    while (batch := q.cut_batch(force=True)) is not None:
        q.complete(batch, [[DELIVERED] * len(c.events) for c in batch.conversations])


def test_ids_follow_queue_order_across_inbox_and_locked_appends() -> None:
    q = make()
    q.push(QUESTION, "c", 1, "first", msg_size("first"))
    q.append(Event("action", "c", 2, 0, {"action_name": "a"}, 10), None)
    q.push(ANSWER, "c", 3, "third", msg_size("third"))
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
        q.push(QUESTION, f"c{i % 5000}", i, f"m{i}", msg_size(f"m{i}"))
    deliver_all(q)
    assert q.result_count == 1000
    assert sum(len(run) for c in q.convs.values() for run in c.results or ()) == 1000
    # the most recently delivered survive: c4999 went out last, all four at once
    newest = q.take_results("c4999")
    assert [r.event.data["content"] for r in newest] == ["m4999", "m9999", "m14999", "m19999"]
    assert q.take_results("c0") == []  # delivered first, forgotten first
    assert q.result_count == 996
    assert len(q.kept) <= 2 * q.max_results + 1024


def test_results_are_forgotten_oldest_first_even_from_the_middle_of_a_block() -> None:
    """A delivered block is kept as one run; the cap may forget part of the oldest one."""
    q = make(batch_size=10)
    q.max_results = 15
    for i in range(25):  # three blocks: 10, 10, 5
        q.push(QUESTION, "c", i, f"m{i}", msg_size(f"m{i}"))
    deliver_all(q)
    assert q.result_count == 15
    assert [e.data["content"] for e in q.tracked_events("c")] == [f"m{i}" for i in range(10, 25)]
    q.push(ANSWER, "c", 99, "pending", msg_size("pending"))
    assert [e.data["content"] for e in q.tracked_events("c")][-2:] == ["m24", "pending"]
    # a per-event outcome survives next to the shared ones
    failed = Outcome(False, error="boom", drop_reason="rejected")
    batch = q.cut_batch(force=True)
    assert batch is not None
    q.complete(batch, [[failed]])
    results = q.take_results("c")
    assert [(r.event.data["content"], r.ok, r.error) for r in results][-3:] == [
        ("m23", True, None),
        ("m24", True, None),
        ("pending", False, "boom"),
    ]
    assert len(results) == 15
    assert q.result_count == 0
    assert q.take_results("c") == []


def test_idle_conversations_are_evicted_oldest_first_busy_ones_kept() -> None:
    q = make()
    q.max_conversations = 100
    q.push(QUESTION, "busy", 0, "pending", msg_size("pending"))  # never delivered: stays busy
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
    q.push(QUESTION, "c", 0, "x" * 40, msg_size("x" * 40))
    with q.locked():
        pass
    assert q.stats.queued_bytes == EVENT_OVERHEAD + 40 + EVENT_MEMORY
    q.max_bytes = q.stats.queued_bytes + 10
    assert q.push(QUESTION, "c", 1, "y", msg_size("y")) is None  # refused at the call ...
    assert q.stats.queued_events == 1  # ... and nothing else changed
    assert len(q.inbox) == 0


def test_an_accepted_event_is_never_dropped_later_for_room() -> None:
    """Exact admission: whatever push() accepted is queued, however threads interleave."""
    q = make(max_bytes=400 * (EVENT_OVERHEAD + 8 + EVENT_MEMORY), batch_size=10**6)
    accepted = [0] * 8
    refused = [0] * 8
    start = threading.Barrier(8)

    def produce(t: int) -> None:
        start.wait()
        for i in range(2_000):
            text = f"t{t}-{i:05d}"
            if q.push(QUESTION, f"c{t}", i, text, msg_size(text)) is None:
                refused[t] += 1
            else:
                accepted[t] += 1
            if i % 500 == 0:  # the flusher drains now and then
                with q.locked():
                    pass

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with q.locked():
        pass
    assert sum(refused) > 0  # the cap was reached
    assert q.stats.queued_events == sum(accepted)
    assert q.stats.tracked == sum(accepted)
    assert q.stats.dropped["queue_full"] == 0  # the queue itself never dropped one
    # bounded: the exact cap, give or take one small event per concurrent producer
    assert q.stats.queued_bytes <= q.max_bytes + 8 * INBOX_RESERVE
    # and each producer's accepted events are queued in its own order
    for t in range(8):
        conv = q.convs.get(f"c{t}")
        texts = [ev.data["content"] for ev in conv.pending] if conv else []
        assert texts == sorted(texts)
        assert len(texts) == accepted[t]


def test_near_the_cap_push_decides_exactly_under_the_lock() -> None:
    size = msg_size("abc")
    q = make(max_bytes=5 * (size + EVENT_MEMORY))
    results = [q.push(QUESTION, "c", i, "abc", size) for i in range(7)]
    assert [r is not None for r in results] == [True] * 5 + [False] * 2
    with q.locked():
        pass
    assert q.stats.queued_events == 5
    assert q.stats.queued_bytes == 5 * (size + EVENT_MEMORY)


def test_creating_a_conversation_never_scans_them_all() -> None:
    """Beyond the cap, with every state kept busy, each creation looks at a few entries.

    Counted, not timed: conversation 12,001 costs the same bounded number of
    checks as conversation 10,002 (it used to rescan every busy one: O(n) each).
    """
    q = make(max_events=10**6)
    q.max_conversations = 10_000
    for i in range(12_001):
        q.push(QUESTION, f"c{i}", i, "hi", msg_size("hi"))  # pending: busy, never idle
        with q.locked():
            pass
    assert len(q.convs) == 12_001  # busy states are kept (bounded by the queue caps)
    before = q.eviction_checks
    q.push(QUESTION, "c-new", 0, "hi", msg_size("hi"))
    with q.locked():
        pass
    assert q.eviction_checks - before <= 16


def test_token_counters_do_not_pin_a_conversation_forever() -> None:
    q = make()
    q.max_conversations = 100
    for i in range(300):
        q.add_tokens(f"t{i}", {"prompt_tokens": 1})
    assert len(q.convs) <= 100 + 16
    assert "t299" in q.convs  # the most recent ones are kept
    assert "t0" not in q.convs


async def test_delivering_plain_messages_builds_no_dict_and_keeps_one_run_per_block() -> None:
    """Issue 14: long-lived objects per event bring full garbage collections closer.

    Plain messages delivered over ``ingest`` to a real collector stay their
    text (no data dict is ever built for them) and their kept results are one
    object per delivered block - counted, not timed.
    """
    from agentsight_async import AsyncConversationTracker
    from agentsight_collector import LocalCollector

    with LocalCollector(dev=True) as collector:
        async with AsyncConversationTracker(endpoint=collector.url, batch_size=50) as tracker:
            async with tracker.conversation("plain"):
                for i in range(200):
                    if i % 2:
                        await tracker.track_agent_message(f"reply {i}")
                    else:
                        await tracker.track_human_message(f"question {i}")
            result = await tracker.flush(timeout=10)
            queues = tracker._pipeline.queues
            events = queues.tracked_events("plain")
            runs = list(queues.convs["plain"].results or ())
    assert result.delivered == 201  # the conversation and its 200 messages
    messages = [e for e in events if e.kind in (QUESTION, ANSWER)]
    assert len(messages) == 200
    assert all(type(e.raw) is str for e in messages)
    assert 4 <= len(runs) < 200  # one per delivered block, not one per event
    assert sum(len(r) for r in runs) == 201
