"""Encoding cost of an ingest batch per event (not a test: run it by hand).

    .venv/bin/python -m benchmarks.time_encoder

Times mapping + encoding one 500-event conversation into the ``POST /api/ingest/``
body (before gzip): short messages only, and a mix of every kind.  Best of 15
repeats of 20 runs, garbage collector on (the encoder creates many small dicts,
and in a real process the collector runs).

To time the encoder before the split (``BlockEncoder`` writing JSON through a
hand-written template), extract that tree and run this file against it::

    git archive 569ba6c agentsight_async | tar -x -C /tmp/before
    cp benchmarks/time_encoder.py /tmp/time_encoder.py
    cd /tmp && PYTHONPATH=/tmp/before python /tmp/time_encoder.py

(run it from a directory without an ``agentsight_async`` folder: the script's own
folder comes first on ``sys.path``).
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

from agentsight_async import _events as ev
from agentsight_async._events import ConversationBatch, Event

BASE = 1_795_000_000_123_456_000
FIELDS = {
    "name": "Support chat",
    "customer_id": "cust-42",
    "environment": "production",
    "metadata": {"plan": "pro"},
}


def messages(n: int = 500) -> list[Event]:
    kinds = (ev.QUESTION, ev.ANSWER)
    return [
        Event(
            kinds[i % 2],
            "c",
            BASE + i * 1_000_000,
            ev.next_seq(),
            {"content": f"short message number {i}", "sender": None, "metadata": {}},
            100,
        )
        for i in range(n)
    ]


def plain(n: int = 500) -> list[Event]:
    """Messages as the tracker queues them: the text alone (``Event.raw`` is a str)."""
    kinds = (ev.QUESTION, ev.ANSWER)
    return [
        Event(kinds[i % 2], "c", BASE + i * 1_000_000, ev.next_seq(), f"short message {i}", 100)
        for i in range(n)
    ]


def _mixed_data(i: int) -> tuple[str, dict[str, Any]]:
    k = i % 10
    if k < 5:
        meta = {"i": i} if k == 3 else {}
        return (ev.QUESTION if k % 2 == 0 else ev.ANSWER), {
            "content": f"message {i} é 日本",
            "metadata": meta,
        }
    if k == 5:
        return ev.ACTION, {
            "action_name": "lookup",
            "duration_ms": 12,
            "tools_used": {"q": i},
            "response": "ok",
            "metadata": {},
        }
    if k == 6:
        return ev.TOKEN_USAGE, {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "embedding_tokens": 0,
            "model": "gpt-4o",
            "system": "openai",
        }
    if k == 7:
        return ev.BUTTON, {"button_event": "fb", "label": "Yes", "value": "y", "metadata": {"p": 1}}
    if k == 8:
        files = [{"filename": "a.txt", "mime_type": "text/plain", "data": "aGk="}]
        return ev.ATTACHMENTS, {"sender": "end_user", "metadata": {}, "attachments": files}
    return ev.ACTION, {
        "action_name": "t",
        "started_at": "2026-11-18T10:00:00+00:00",
        "ended_at": "2026-11-18T10:00:01.5+00:00",
        "error_msg": "boom",
        "metadata": {},
    }


def mixed(n: int = 500) -> list[Event]:
    out = []
    for i in range(n):
        kind, data = _mixed_data(i)
        out.append(Event(kind, "c", BASE + i * 1_000_000, ev.next_seq(), data, 100))
    return out


def encoder() -> tuple[str, Callable[[ConversationBatch, frozenset[int]], bytes]]:
    """The batch encoder of the tree on ``sys.path``: after the split, or before it."""
    try:
        from agentsight_async._exporters._spans import BlockEncoder, encode_payload, otel_template
    except ImportError:  # the tree before the split
        import pydantic_core

        from agentsight_async._exporters import _ingest as old

        otel = old.otel_template("instance")
        otel_json = pydantic_core.to_json(otel).decode()

        def encode_before(conv: ConversationBatch, uploaded: frozenset[int]) -> bytes:
            enc = old.BlockEncoder(conv, otel, otel_json, uploaded=uploaded)
            for i, e in enumerate(conv.events):
                enc.add(i, e)
            return old.payload_json([enc.finish()])

        return "before: template BlockEncoder", encode_before

    otel = otel_template("instance")

    def encode(conv: ConversationBatch, uploaded: frozenset[int]) -> bytes:
        enc = BlockEncoder(conv, otel, uploaded=uploaded)
        for i, e in enumerate(conv.events):
            enc.add(i, e)
        return encode_payload([enc.finish()])

    return "after: orjson BlockEncoder", encode


def main() -> None:
    name, encode = encoder()
    workloads = (
        ("500 plain messages", plain()),
        ("500 short messages", messages()),
        ("500 mixed kinds", mixed()),
    )
    for label, events in workloads:
        conv = ConversationBatch("chat-123", events, FIELDS)
        uploaded = frozenset(i for i, e in enumerate(events) if e.kind == ev.ATTACHMENTS)
        runs = timeit.repeat(
            lambda conv=conv, up=uploaded: encode(conv, up), "gc.enable()", number=20, repeat=15
        )
        per_event = min(runs) / 20 / len(events) * 1e6
        size = len(encode(conv, uploaded))
        print(f"{name:32} {label:20} {per_event:5.2f} µs/event  ({size:,} bytes)")


if __name__ == "__main__":
    main()
