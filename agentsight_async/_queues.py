"""Per-conversation ordered queues, bounded in events and bytes.

Small events enter through a lock-free *inbox* (a ``deque``, whose ``append``
is atomic): the hot path pays one append, not a lock.  An event enters as a
bare ``(kind, conversation_id, ts_ns, payload, size)`` tuple - the payload of a
plain message is just its text - and becomes an :class:`Event` (with its id)
only when drained; the inbox is FIFO, so ids still follow tracking order.
Whoever next takes the lock - the flusher, a blocking call, or a producer when
the inbox reaches :data:`DRAIN_AT` events - first moves the inbox into the
conversations, in order.  Large events, conversation items, and any event while
the queue is near a cap take the lock directly, after draining, so each
thread's events keep their order and admission is exact.

The tracker appends (any thread, under one short lock); the flusher cuts
batches, and records what happened to them.  Conversations that have pending
events and nothing in flight sit in ``ready`` (an insertion-ordered dict used
as an ordered set), so cutting a batch never scans idle conversations, and a
conversation returns to the back of ``ready`` when its batch completes - each
conversation gets its turn.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from itertools import islice
from typing import Any

from . import _events
from ._events import (
    CONVERSATION,
    CONVERSATION_OPENED,
    UNPROCESSED,
    Batch,
    ConversationBatch,
    Event,
    FlushResult,
    Outcome,
)
from ._stats import WITHHELD, Stats

#: Events larger than this (bytes) skip the inbox, so the byte cap stays exact for them.
SMALL_EVENT = 2048
#: Conversation states looked at, at most, to forget idle ones when one is created.
EVICTION_WINDOW = 16
#: A producer drains the inbox itself when it holds this many events.
DRAIN_AT = 1024
#: What a queued event costs in memory beyond its JSON size (the Event, its
#: dict, ints, deque slots) - measured ~450 bytes for a short message; counted
#: so that ``max_queue_bytes`` bounds memory, not just payload.
EVENT_MEMORY = 320
#: What an inbox item may cost at most once queued: :meth:`Queues.push` reserves this
#: much for each item still in the inbox, so the byte cap holds before they are drained.
INBOX_RESERVE = SMALL_EVENT + EVENT_MEMORY


class Result:
    """One resolved event, as ``send_tracked_data()`` and the summary read it."""

    __slots__ = ("error", "event", "ok", "response")

    def __init__(self, event: Event, ok: bool, response: Any, error: str | None) -> None:
        self.event = event
        self.ok = ok
        self.response = response
        self.error = error


class Resolved:
    """A run of one conversation's resolved events, kept until reported or forgotten.

    One object per delivered block rather than a :class:`Result` per event:
    kept results are long-lived, and each object that outlives the young
    generations brings the next full garbage collection closer - a pass over
    the whole application's heap.  :class:`Result` objects are built only when
    a report asks for them.  ``outcomes`` is one :class:`Outcome` shared by
    every event, or one per event; events before ``start`` were forgotten.
    """

    __slots__ = ("conversation_id", "events", "outcomes", "start", "taken")

    def __init__(
        self, conversation_id: str, events: list[Event], outcomes: Outcome | list[Outcome]
    ) -> None:
        self.conversation_id = conversation_id
        self.events = events
        self.outcomes = outcomes
        self.start = 0
        self.taken = False  # reported (or forgotten) already

    def __len__(self) -> int:
        return len(self.events) - self.start

    def results(self) -> list[Result]:
        """The events still kept, each with its outcome."""
        events, outcomes, start = self.events, self.outcomes, self.start
        if isinstance(outcomes, Outcome):
            ok, response, error = outcomes.ok, outcomes.response, outcomes.error
            return [Result(ev, ok, response, error) for ev in events[start:]]
        return [
            Result(ev, o.ok, o.response, o.error)
            for ev, o in zip(events[start:], outcomes[start:], strict=True)
        ]


class Watch:
    """Counts the outcomes of the events queued when a flush began (see :class:`FlushResult`).

    ``targets[cid]`` is how many events the conversation had enqueued then and
    ``starts[cid]`` how many of them were already resolved: the events watched
    are those numbered ``starts + 1 .. targets`` in the conversation's order.
    """

    __slots__ = ("delivered", "dropped", "filtered", "starts", "targets")

    def __init__(self, targets: dict[str, int], starts: dict[str, int]) -> None:
        self.targets = targets
        self.starts = starts
        self.delivered = 0
        self.filtered = 0
        self.dropped: dict[str, int] = {}

    def count(self, cid: str, resolved_before: int, outcomes: list[tuple[bool, str]]) -> None:
        """Record outcomes ``(ok, drop reason)`` of events resolved after *resolved_before*.

        Withheld on purpose (:data:`WITHHELD` reasons) counts as ``filtered``.
        """
        target = self.targets.get(cid)
        if target is None:
            return
        start = self.starts[cid]
        for i, (ok, reason) in enumerate(outcomes, resolved_before + 1):
            if i <= start:
                continue
            if i > target:
                break
            if ok:
                self.delivered += 1
            elif reason in WITHHELD:
                self.filtered += 1
            else:
                self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def result(self) -> FlushResult:
        total = sum(t - self.starts[cid] for cid, t in self.targets.items())
        done = self.delivered + sum(self.dropped.values()) + self.filtered
        return FlushResult(self.delivered, dict(self.dropped), total - done, self.filtered)


class Conversation:
    """One conversation: its pending events, fields, token counters and results."""

    __slots__ = (
        "enqueued",
        "fields",
        "id",
        "in_flight",
        "pending",
        "resolved",
        "results",
        "tokens",
    )

    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self.pending: deque[Event] = deque()
        self.fields: dict[str, Any] = {}
        #: Token counters and kept results are made on first use: most conversations
        #: never count tokens, and each object a conversation keeps for long brings
        #: the next full garbage collection closer.
        self.tokens: dict[str, int] | None = None
        self.results: deque[Resolved] | None = None
        self.enqueued = 0
        self.resolved = 0
        self.in_flight = False

    @property
    def idle(self) -> bool:
        """Nothing queued, in flight or waiting to be reported: it may be forgotten.

        Token counters do not keep a conversation: they are kept for the
        ``max_conversations`` most recently active conversations, not forever.
        """
        return not self.pending and not self.in_flight and not self.results


class Queues:
    """All conversations' queues and the counters that bound them.

    ``max_conversations`` bounds the idle conversation states kept (token
    counters, unreported results); ``max_results`` bounds the results kept for
    code that never calls ``send_tracked_data()``.
    """

    def __init__(
        self,
        stats: Stats,
        *,
        batch_size: int,
        batch_bytes: int,
        max_events: int,
        max_bytes: int,
        max_conversations: int = 10_000,
        max_results: int = 10_000,
    ) -> None:
        self.stats = stats
        self.lock = threading.Lock()
        self.convs: OrderedDict[str, Conversation] = OrderedDict()
        #: Conversations with pending events and nothing in flight, oldest turn first.
        self.ready: OrderedDict[str, Conversation] = OrderedDict()
        #: Conversations with events tracked and not yet resolved (what a flush waits for).
        self.unresolved: dict[str, Conversation] = {}
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_conversations = max_conversations
        self.max_results = max_results
        self.result_count = 0
        #: Events withheld by processing and resolved so far (a flush may wait for them).
        self.withheld_resolved = 0
        #: Conversation states looked at to forget idle ones (a measure of that work).
        self.eviction_checks = 0
        #: Every kept run of results, oldest first (``result_count`` counts their events).
        self.kept: deque[Resolved] = deque()
        self.wake_sent = False
        self.inbox: deque[Any] = deque()
        #: Flushes in progress (usually none): each counts what became of its events.
        self.watches: list[Watch] = []
        #: With before_send, redaction or sampling: events wait for them (see :meth:`processed`).
        self.processing = False
        self.unprocessed: list[Event] = []
        #: With a durable spool: events (and conversation fields) not yet committed to it.
        self.spooling = False
        self.unspooled: list[tuple[Event, dict[str, Any] | None]] = []

    def get(self, conversation_id: str) -> Conversation | None:
        return self.convs.get(conversation_id)

    @property
    def backlog(self) -> int:
        """Events tracked and not yet resolved, including the undrained inbox."""
        return self.stats.queued_events + len(self.inbox)

    def full(self) -> bool:
        stats = self.stats
        return (
            stats.queued_events + len(self.inbox) >= self.max_events
            or stats.queued_bytes >= self.max_bytes
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock with the inbox drained: the conversations are complete."""
        with self.lock:
            self._drain()
            yield

    # --- producer side --------------------------------------------------------------------
    def push(self, kind: str, cid: str, ts_ns: int, payload: Any, size: int) -> bool | None:
        """The hot path: queue one event that carries no conversation fields.

        *payload* is a plain message's text, or the event's data dict.  A small
        event is one tuple appended to the inbox, without the lock; a large one,
        or any event while the queue is near its byte cap, is decided exactly
        under the lock (:meth:`append`).  Returns None when the event does not
        fit - the only moment an event is refused for room: an accepted event is
        never dropped later for lack of it - else whether to wake the flusher
        (once per batch).
        """
        stats = self.stats
        inbox = self.inbox
        # The inbox length is read before the counters: the drain counts items
        # before it takes them out, so no accepted item is ever missed here.
        waiting = len(inbox)
        queued = stats.queued_events + waiting
        if (
            queued >= self.max_events
            or size > SMALL_EVENT
            or stats.queued_bytes + (waiting + 1) * INBOX_RESERVE > self.max_bytes
        ):
            return self.append(Event(kind, cid, ts_ns, 0, payload, size), None)
        inbox.append((kind, cid, ts_ns, payload, size))
        if waiting + 1 >= DRAIN_AT:
            with self.lock:
                self._drain()
        if queued + 1 >= self.batch_size and not self.wake_sent:
            self.wake_sent = True
            return True
        return False

    def append(self, ev: Event, fields: dict[str, Any] | None) -> bool | None:
        """Queue *ev* under the lock, exactly within the caps: None if it does not fit,
        else whether to wake the flusher."""
        stats = self.stats
        with self.locked():
            if stats.queued_events >= self.max_events or (
                stats.queued_bytes + ev.size + EVENT_MEMORY > self.max_bytes
            ):
                return None
            self._enqueue(ev, fields)
            if stats.queued_events >= self.batch_size and not self.wake_sent:
                self.wake_sent = True
                return True
            return False

    def _drain(self, limit: int | None = None) -> None:
        """Move inbox items into their conversations, in order (at most *limit* of them).

        Every item was admitted by :meth:`push`, so none is refused here.  The
        counters grow by a conservative reservation *before* the items leave the
        inbox and are corrected after, so a producer reading the inbox and then
        the counters always sees each item at least once.  This runs once per
        event on the flusher's loop: events are built and queued inline.
        """
        inbox = self.inbox
        count = len(inbox) if limit is None else min(limit, len(inbox))
        if not count:
            return
        stats = self.stats
        reserved = count * INBOX_RESERVE
        stats.queued_events += count
        stats.queued_bytes += reserved
        convs, ready, unresolved = self.convs, self.ready, self.unresolved
        spooling = self.spooling
        processing = self.processing
        total = 0
        # Looked up per drain, not imported: a forked child gets a counter of its own
        # (_events rebinds next_seq there), and its ids must not repeat the parent's.
        next_seq = _events.next_seq
        for _ in range(count):
            kind, cid, ts_ns, payload, size = inbox.popleft()
            ev = Event(kind, cid, ts_ns, next_seq(), payload, size)
            conv = convs.get(cid)
            if conv is None:
                conv = self._new(cid)
            conv.pending.append(ev)
            conv.enqueued += 1
            unresolved[cid] = conv
            if processing:
                ev.hold = UNPROCESSED
                self.unprocessed.append(ev)
            elif spooling:
                self.unspooled.append((ev, None))
            if not conv.in_flight and cid not in ready:
                ready[cid] = conv
            total += size
        stats.queued_bytes += total + count * EVENT_MEMORY - reserved
        stats.tracked += count

    def _enqueue(self, ev: Event, fields: dict[str, Any] | None, *, replayed: bool = False) -> None:
        # Ids are taken here, under the lock, in queue order: they follow tracking
        # order even for inbox items created before a later locked append.
        if not replayed:
            ev.seq = _events.next_seq()
        stats = self.stats
        cid = ev.conversation_id
        conv = self.convs.get(cid)
        if conv is None:
            conv = self._new(cid)
        conv.pending.append(ev)
        conv.enqueued += 1
        self.unresolved[cid] = conv
        if self.processing and not replayed:  # a replayed event was processed already
            ev.hold = UNPROCESSED
            self.unprocessed.append(ev)
        else:
            if fields is not None:
                conv.fields.update({k: val for k, val in fields.items() if val is not None})
            if self.spooling:
                self.unspooled.append((ev, fields))
        stats.tracked += 1
        stats.queued_events += 1
        stats.queued_bytes += ev.size + EVENT_MEMORY
        if not conv.in_flight and cid not in self.ready:
            self.ready[cid] = conv

    def add_tokens(self, conversation_id: str, counts: dict[str, int]) -> None:
        with self.lock:
            self._drain()  # the conversation's state is complete (what locked() does)
            conv = self.convs.get(conversation_id) or self._new(conversation_id)
            for key, n in counts.items():
                tokens = conv.tokens
                if tokens is None:
                    tokens = conv.tokens = {}
                tokens[key] = tokens.get(key, 0) + n

    def take_unprocessed(self) -> list[Event]:
        """The events ``before_send`` / redaction / sampling have not seen yet, in order."""
        with self.locked():
            events, self.unprocessed = self.unprocessed, []
        return events

    def processed(self, events: list[Event]) -> None:
        """*events* went through processing (their ``hold`` says what was decided).

        Kept ones may now be cut, update their conversation's fields (with what
        processing left of them) and go to the spool; withheld ones are resolved
        as dropped when they reach the front of their queue, so every
        conversation still resolves in order.
        """
        with self.lock:
            for ev in events:
                if ev.hold is not None:
                    continue
                fields = ev.data if ev.kind in (CONVERSATION, CONVERSATION_OPENED) else None
                if fields is not None:
                    conv = self.convs.get(ev.conversation_id)
                    if conv is not None:
                        conv.fields.update((k, v) for k, v in fields.items() if v is not None)
                if self.spooling:
                    self.unspooled.append((ev, fields))

    def stop_spooling(self) -> None:
        """The spool is unavailable: stop collecting events for it and forget what waits."""
        with self.lock:
            self.spooling = False
            self.unspooled = []

    def take_unspooled(self) -> list[tuple[Event, dict[str, Any] | None]]:
        with self.locked():
            items, self.unspooled = self.unspooled, []
        return items

    def admit_replayed(self, items: list[tuple[Event, dict[str, Any] | None]]) -> list[int]:
        """Queue events replayed from a spool (already durable).

        Returns the ids of those that did not fit under the byte cap: they are
        dropped (``queue_full``) like any event tracked into a full queue, and
        the caller deletes them from the spool, so it stays bounded too.
        """
        stats = self.stats
        refused: list[int] = []
        with self.lock:
            spooling, self.spooling = self.spooling, False
            try:
                for ev, fields in items:
                    if stats.queued_bytes + ev.size + EVENT_MEMORY > self.max_bytes:
                        refused.append(ev.seq)
                        continue
                    self._enqueue(ev, fields, replayed=True)
            finally:
                self.spooling = spooling
        if refused:
            stats.drop("queue_full", len(refused))
        return refused

    def forget_pending(self) -> int:
        """Let go of queued events without dropping them: the spool keeps them."""
        stats = self.stats
        with self.locked():
            n = 0
            for conv in self.convs.values():
                for ev in conv.pending:
                    stats.queued_events -= 1
                    stats.queued_bytes -= ev.size + EVENT_MEMORY
                    n += 1
                conv.resolved += len(conv.pending)
                conv.pending.clear()
                if conv.resolved >= conv.enqueued:
                    self.unresolved.pop(conv.id, None)
            self.ready.clear()
        return n

    def _new(self, conversation_id: str) -> Conversation:
        conv = Conversation(conversation_id)
        convs = self.convs
        convs[conversation_id] = conv
        if len(convs) > self.max_conversations:
            self._evict(conversation_id)
        return conv

    def _evict(self, keep: str) -> None:
        """Forget idle conversations from the least recently active end.

        Each call looks at :data:`EVICTION_WINDOW` entries at most: a busy one
        moves to the back, so creating a conversation never scans all of them.
        Busy conversations are bounded anyway - by the queue caps (pending,
        in flight) and by ``max_results`` (unreported results) - so the states
        kept beyond ``max_conversations`` stay bounded.
        """
        convs = self.convs
        excess = len(convs) - self.max_conversations
        if excess <= 0:
            return
        # One pass over the oldest few (a list: the dict changes as we go).
        for cid in list(islice(convs, EVICTION_WINDOW)):
            self.eviction_checks += 1
            if cid != keep and convs[cid].idle:
                del convs[cid]
                excess -= 1
                if not excess:
                    return
            else:
                convs.move_to_end(cid)

    # --- flusher side --------------------------------------------------------------------
    def cut_batch(self, *, force: bool) -> Batch | None:
        """Take the next batch from conversations with pending events and nothing in flight.

        Without *force* only a full batch (``batch_size`` events) is cut.  A
        batch never holds more than ``batch_size`` events or ``batch_bytes``
        bytes, except that one event larger than ``batch_bytes`` travels alone.
        """
        limit_n, limit_b = self.batch_size, self.batch_bytes
        stats = self.stats
        with self.lock:
            # A bounded drain keeps this step short even after a burst; the rest of
            # the inbox stays in order for the next cut.
            self._drain(limit=4 * limit_n)
            if not self.ready or (not force and stats.queued_events - stats.in_flight < limit_n):
                self.wake_sent = False
                return None
            parts: list[ConversationBatch] = []
            skipped: list[Conversation] = []  # next event too large, or not processed yet
            withheld: dict[str, int] = {}
            ready = self.ready
            n = b = 0
            # Conversations are taken from the front, one at a time: a cut looks at the
            # conversations it takes, never at all the ready ones.
            while ready and n < limit_n and b < limit_b:
                cid, conv = ready.popitem(last=False)
                pending = conv.pending
                taken: list[Event] = []
                while pending and n < limit_n:
                    head = pending[0]
                    if head.hold is not None:
                        if head.hold is UNPROCESSED:
                            break  # not seen by processing yet: the next step
                        self._resolve_withheld(conv, pending.popleft(), withheld)
                        continue
                    size = head.size
                    if n and b + size > limit_b:
                        break
                    taken.append(pending.popleft())
                    n += 1
                    b += size
                if taken:
                    conv.in_flight = True
                    parts.append(ConversationBatch(cid, taken, dict(conv.fields)))
                elif pending:
                    skipped.append(conv)
            for conv in reversed(skipped):  # they keep their turn, at the front
                ready[conv.id] = conv
                ready.move_to_end(conv.id, last=False)
            if not ready:
                self.wake_sent = False
        for reason, count in withheld.items():
            stats.drop(reason, count)
        return Batch(parts) if parts else None

    def _resolve_withheld(self, conv: Conversation, ev: Event, counts: dict[str, int]) -> None:
        """Resolve an event processing withheld, in its turn (under the lock)."""
        reason = ev.hold or "filtered"
        stats = self.stats
        stats.queued_events -= 1
        stats.queued_bytes -= ev.size + EVENT_MEMORY
        for watch in self.watches:
            watch.count(conv.id, conv.resolved, [(False, reason)])
        self._keep(conv, ev, Outcome(False, error=f"dropped: {reason}"))
        conv.resolved += 1
        if conv.resolved >= conv.enqueued:
            self.unresolved.pop(conv.id, None)
        counts[reason] = counts.get(reason, 0) + 1
        self.withheld_resolved += 1

    def complete(self, batch: Batch, outcomes: list[list[Outcome]]) -> None:
        """Record each event's outcome; the conversation may go out again."""
        stats = self.stats
        drops: dict[str, int] = {}
        with self.lock:
            for part, results in zip(batch.conversations, outcomes, strict=True):
                events = part.events
                n = len(events)
                stats.queued_events -= n
                size = 0
                for ev in events:
                    size += ev.size
                stats.queued_bytes -= size + n * EVENT_MEMORY
                first = results[0] if results else None
                failed = 0
                kept: Outcome | list[Outcome]
                if first is not None and first.ok and results.count(first) == n:
                    kept = first  # the usual case: one answer for the whole block
                else:
                    kept = results
                    for out in results:
                        if not out.ok:
                            failed += 1
                            reason = out.drop_reason or "rejected"
                            drops[reason] = drops.get(reason, 0) + 1
                            if out.error:
                                stats.record_error(out.error)
                for ev in events:
                    if ev.has_attachments:
                        _strip_bytes(ev)
                stats.delivered += n - failed
                conv = self.convs.get(part.conversation_id)
                if conv is None:
                    continue
                for watch in self.watches:
                    watch.count(
                        conv.id,
                        conv.resolved,
                        [(o.ok, o.drop_reason or "rejected") for o in results],
                    )
                if n:
                    self._keep_all(conv, Resolved(conv.id, events, kept))
                conv.resolved += n
                if conv.resolved >= conv.enqueued:
                    self.unresolved.pop(conv.id, None)
                conv.in_flight = False
                self.convs.move_to_end(conv.id)  # recently active: forgotten last
                if conv.pending:
                    self.ready[conv.id] = conv
        for reason, count in drops.items():
            stats.drop(reason, count)

    def requeue(self, batch: Batch) -> None:
        """Put an unfinished batch back at the front of its conversations' queues."""
        with self.lock:
            for part in batch.conversations:
                conv = self.convs.get(part.conversation_id) or self._new(part.conversation_id)
                conv.pending.extendleft(reversed(part.events))
                conv.in_flight = False
                self.ready[conv.id] = conv

    def drop_pending(self, reason: str) -> int:
        """Resolve every queued (not in-flight) event as dropped for *reason*."""
        stats = self.stats
        dropped = 0
        with self.locked():
            for conv in self.convs.values():
                for watch in self.watches:
                    watch.count(conv.id, conv.resolved, [(False, reason)] * len(conv.pending))
                while conv.pending:
                    ev = conv.pending.popleft()
                    stats.queued_events -= 1
                    stats.queued_bytes -= ev.size + EVENT_MEMORY
                    self._keep(conv, ev, Outcome(False, error=f"dropped: {reason}"))
                    conv.resolved += 1
                    dropped += 1
                if conv.resolved >= conv.enqueued:
                    self.unresolved.pop(conv.id, None)
            self.ready.clear()
        if dropped:
            stats.drop(reason, dropped, interval=0)
        return dropped

    def _keep(self, conv: Conversation, ev: Event, outcome: Outcome) -> None:
        if ev.has_attachments:
            _strip_bytes(ev)
        self._keep_all(conv, Resolved(conv.id, [ev], outcome))

    def _keep_all(self, conv: Conversation, run: Resolved) -> None:
        if conv.results is None:
            conv.results = deque()
        conv.results.append(run)
        kept = self.kept
        kept.append(run)
        self.result_count += len(run)
        # Bound memory for code that never calls send_tracked_data(): forget the
        # oldest unreported results, across all conversations, a run at a time.
        while self.result_count > self.max_results:
            old = kept[0]
            if old.taken:
                kept.popleft()
                continue
            forget = min(len(old), self.result_count - self.max_results)
            old.start += forget
            self.result_count -= forget
            if len(old):
                break  # partly forgotten: its newer events stay
            old.taken = True
            kept.popleft()
            owner = self.convs.get(old.conversation_id)
            if owner is not None and owner.results:
                if owner.results[0] is old:
                    owner.results.popleft()
                else:  # pragma: no cover - runs are kept in order per conversation
                    with contextlib.suppress(ValueError):
                        owner.results.remove(old)
        if len(kept) > 2 * self.max_results + 1024:
            self.kept = deque(r for r in kept if not r.taken)

    # --- waiting and reporting -----------------------------------------------------------
    def watch(self, conversation_id: str | None) -> Watch:
        """Start counting what becomes of the events queued now (one conversation, or all).

        Call :meth:`unwatch` when done; :meth:`Watch.result` says what happened.
        """
        with self.locked():
            if conversation_id is not None:
                conv = self.convs.get(conversation_id)
                convs = [] if conv is None else [conv]
            else:
                convs = list(self.unresolved.values())
            busy = [c for c in convs if c.resolved < c.enqueued]
            watch = Watch({c.id: c.enqueued for c in busy}, {c.id: c.resolved for c in busy})
            self.watches.append(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        with self.lock:
            self.watches.remove(watch)

    def flush_targets(self, conversation_id: str | None) -> dict[str, int]:
        """How many events each unfinished conversation must resolve to be flushed."""
        with self.locked():
            if conversation_id is not None:
                conv = self.convs.get(conversation_id)
                if conv is None or conv.resolved >= conv.enqueued:
                    return {}
                return {conversation_id: conv.enqueued}
            return {c.id: c.enqueued for c in self.unresolved.values() if c.resolved < c.enqueued}

    def resolved(self, targets: dict[str, int]) -> bool:
        for cid, target in targets.items():
            conv = self.convs.get(cid)
            if conv is not None and conv.resolved < target:
                return False
        return True

    def take_results(self, conversation_id: str) -> list[Result]:
        with self.locked():
            conv = self.convs.get(conversation_id)
            if conv is None:
                return []
            results: list[Result] = []
            for run in conv.results or ():
                results.extend(run.results())
                self.result_count -= len(run)
                run.taken = True
            conv.results = None
        return results

    def find_result(self, ev: Event) -> Result | None:
        with self.locked():
            conv = self.convs.get(ev.conversation_id)
            if conv is None:
                return None
            for run in conv.results or ():
                if any(e is ev for e in run.events[run.start :]):
                    return next(r for r in run.results() if r.event is ev)
            return None

    def tracked_events(self, conversation_id: str) -> list[Event]:
        """Resolved-but-unreported and pending events, in tracking order."""
        with self.locked():
            conv = self.convs.get(conversation_id)
            if conv is None:
                return []
            events = [e for run in conv.results or () for e in run.events[run.start :]]
            events.extend(conv.pending)
        events.sort(key=lambda e: e.seq)
        return events

    def tokens(self, conversation_id: str) -> dict[str, int]:
        with self.locked():
            conv = self.convs.get(conversation_id)
            return dict(conv.tokens) if conv and conv.tokens else {}


def _strip_bytes(ev: Event) -> None:
    """Replace delivered attachment bytes by a note of their size: kept results stay small."""
    atts = ev.data["attachments"]
    ev.data = {
        **ev.data,
        "attachments": [
            {**a, "data": f"<{len(a['data'])} bytes delivered>"} if "data" in a else a for a in atts
        ],
    }
