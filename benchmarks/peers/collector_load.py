"""The collector's CPU per stored event: pre-encoded ingest payloads posted to a real collector.

Run from the repository root, in the project's interpreter (psutil needed)::

    python -m benchmarks.peers.collector_load [--conversations 1 1000] [--repeat 3]
        [--against REV] [--json]

Each run starts a fresh collector subprocess (``python -m agentsight_collector``
on 127.0.0.1 with a new SQLite file, :class:`benchmarks.serve.Serve`), posts the
same payloads to it, checks that every message was stored, and reads the
server's CPU.  It prints the runs and their median per shape; with ``--against
REV`` the collector of git revision *REV* (e.g. ``main``, extracted with ``git
archive``) is measured in the same run, alternating with the working tree's.
Bounded: 1 conversation is 50 payloads of 200 events, 1,000 conversations 5
payloads of 1,000 blocks of 4 events (plus a warm-up payload each), every
request has a 120 s timeout and the collector 30 s to start.

Given one JSON config as its argument instead, it posts to a collector started
by someone else (``endpoint``, ``api_key``, ``server_pid``, ``conversations``,
``spans_per_block``, ``payloads``) and prints one ``RESULT`` line, like the
other workload scripts.

Only the server is measured, so everything the client would do is done first:

1. **Realistic spans.** The SDK itself tracks the workload's messages into an
   ``httpx.MockTransport`` that keeps each request body; the spans are taken
   from those bodies (whatever the SDK sends today: ids, ``otel``, attributes).
2. **Payloads.** The spans are regrouped into the shape measured: one
   conversation of ``spans_per_block`` spans per payload, or ``conversations``
   blocks of ``spans_per_block`` spans each (the same conversations in every
   payload, as live chats are).  Each payload is encoded once and gzipped at
   level 1, as the SDK sends it.
3. **Posting.** One keep-alive connection (``http.client``), one request at a
   time.  The first payload (it creates the conversations) is a warm-up; the
   server's CPU time (all threads, user + system, from ``psutil``, in clock
   ticks of 10 ms) is read just before the first measured request and just
   after the last answer.

Result: CPU µs per stored event of the collector process, events/s, and what
it answered (accepted / duplicates).
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psutil

if __package__:
    from . import _common as c
else:  # run as a peer script: its directory is sys.path[0]
    import _common as c

logging.getLogger("agentsight_async").setLevel(logging.CRITICAL)

from agentsight_async import AsyncConversationTracker  # noqa: E402


def sdk_spans(conversations: int, per_conversation: int) -> dict[str, list[Any]]:
    """``conversation_id -> [block fields, spans in order]`` as the SDK sends them."""
    bodies: list[bytes] = []

    def keep(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ingest/"):
            body = request.content
            if request.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            bodies.append(body)
        return httpx.Response(201, json={"accepted": 0, "duplicates": 0, "conversations": []})

    async def track() -> None:
        tracker = AsyncConversationTracker(
            api_key=c.DUMMY_KEY,
            endpoint="http://127.0.0.1:9",
            protocol="ingest",
            transport=httpx.MockTransport(keep),
            max_queue_events=conversations * per_conversation + conversations + 100,
            max_queue_bytes=1 << 30,
        )
        async with tracker:
            for j in range(per_conversation):
                for i in range(conversations):
                    text = c.REPLY if j % 2 else c.MESSAGE
                    sender = tracker.track_agent_message if j % 2 else tracker.track_human_message
                    await sender(text, conversation_id=f"load-{i}")
                await asyncio.sleep(0)
            if not await tracker.flush(300):
                raise RuntimeError("the SDK did not hand over every span")

    asyncio.run(track())
    found: dict[str, list[Any]] = {}
    for body in bodies:
        for block in orjson.loads(body)["conversations"]:
            spans = block.pop("spans")
            entry = found.setdefault(block["conversation_id"], [block, []])
            entry[1].extend(spans)
    return found


def payloads(cfg: dict[str, Any]) -> tuple[list[bytes], list[int]]:
    """Gzipped payloads (the first is the warm-up) and the messages each carries."""
    convs, per_block, rounds = cfg["conversations"], cfg["spans_per_block"], cfg["payloads"]
    found = sdk_spans(convs, per_block * rounds)
    # The conversation span the SDK sends first goes with the warm-up payload.
    messages = {cid: [s for s in spans if s["kind"] == "turn"] for cid, (_, spans) in found.items()}
    bodies, counts = [], []
    for r in range(rounds):
        blocks = []
        for cid, (fields, spans) in found.items():
            chunk = messages[cid][r * per_block : (r + 1) * per_block]
            if r == 0:
                chunk = [s for s in spans if s["kind"] != "turn"] + chunk
                blocks.append({**fields, "spans": chunk})
            else:
                blocks.append({"conversation_id": cid, "spans": chunk})
        doc = {"sdk": {"name": "agentsight-async", "version": "bench"}, "conversations": blocks}
        bodies.append(gzip.compress(orjson.dumps(doc), compresslevel=1))
        counts.append(sum(1 for b in blocks for s in b["spans"] if s["kind"] == "turn"))
    return bodies, counts


def load(cfg: dict[str, Any], built: tuple[list[bytes], list[int]] | None = None) -> dict[str, Any]:
    """Post the payloads of *cfg* (or *built*, from :func:`payloads`) to ``cfg["endpoint"]``."""
    t_build = time.perf_counter()
    bodies, counts = built or payloads(cfg)
    build_s = time.perf_counter() - t_build
    url = urlsplit(cfg["endpoint"])
    timeout = float(cfg.get("request_timeout", 120))
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    headers = {
        "Authorization": f"Api-Key {cfg['api_key']}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    server = psutil.Process(cfg["server_pid"])
    answers: list[dict[str, Any]] = []

    def post(body: bytes) -> None:
        conn.request("POST", "/api/ingest/", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise RuntimeError(f"ingest answered {response.status}: {data[:300]!r}")
        answers.append(orjson.loads(data))

    post(bodies[0])  # warm-up: creates the conversations, first imports, caches
    time.sleep(0.2)  # let a checkpoint or anything lazy settle before measuring
    cpu0 = server.cpu_times()
    t0 = time.perf_counter()
    for body in bodies[1:]:
        post(body)
    elapsed = time.perf_counter() - t0
    cpu1 = server.cpu_times()
    conn.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    events = sum(counts[1:])
    accepted = sum(a["accepted"] for a in answers[1:])
    return {
        "events": events,
        "warmup_events": counts[0],
        "payloads": len(bodies) - 1,
        "blocks_per_payload": cfg["conversations"],
        "accepted": accepted,
        "duplicates": sum(a["duplicates"] for a in answers[1:]),
        "wire_bytes_per_event": sum(len(b) for b in bodies[1:]) / events,
        "server_cpu_s": cpu,
        "server_user_s": cpu1.user - cpu0.user,
        "server_system_s": cpu1.system - cpu0.system,
        "cpu_us_per_event": cpu / events * 1e6,
        "elapsed_s": elapsed,
        "events_per_s": events / elapsed,
        "build_s": build_s,
    }


#: Shapes measured standalone: ``conversations -> (spans_per_block, payloads)``, about
#: 10,000-20,000 stored events per run.
SHAPES = {1: (200, 51), 1000: (4, 6)}


def _standalone(argv: list[str] | None = None) -> None:
    import argparse
    import statistics
    import tempfile
    from pathlib import Path

    from benchmarks.serve import Serve, checkout

    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers.collector_load")
    parser.add_argument("--conversations", type=int, nargs="+", default=sorted(SHAPES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--json", action="store_true", help="print every run as JSON too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentsight-collector-load-") as tmp:
        variants: list[tuple[str, Path | None]] = [("worktree", None)]
        if args.against:
            variants.insert(0, (args.against, checkout(args.against, Path(tmp) / "code")))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for convs in args.conversations:
            per_block, rounds = SHAPES.get(convs, (max(1, 4000 // convs), 6))
            cfg: dict[str, Any] = {
                "conversations": convs,
                "spans_per_block": per_block,
                "payloads": rounds,
                "api_key": c.DUMMY_KEY,
            }
            built = payloads(cfg)
            for _ in range(args.repeat):
                for name, code in variants:  # alternate, so drift hits both alike
                    with Serve(c.DUMMY_KEY, code=code) as server:
                        at = {"endpoint": server.url, "server_pid": server.pid}
                        result = load({**cfg, **at}, built)
                        stored = server.count("messages")
                    expected = result["events"] + result["warmup_events"]
                    if result["accepted"] != result["events"] or stored != expected:
                        raise RuntimeError(
                            f"{name}, {convs} conversations: accepted {result['accepted']} "
                            f"of {result['events']}, {stored} messages stored of {expected}"
                        )
                    runs.setdefault((name, convs), []).append(result)
                    if args.json:
                        print(json.dumps({"variant": name, **result}))
    print(f"{'collector':<12} {'convs':>6} {'events':>7}  CPU µs/stored event (runs)   median")
    for (name, convs), results in runs.items():
        each = [r["cpu_us_per_event"] for r in results]
        print(
            f"{name:<12} {convs:>6} {results[0]['events']:>7}  "
            f"{' '.join(f'{x:6.1f}' for x in each):<28} {statistics.median(each):6.1f}"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("{"):
        c.emit(load(c.config()))  # as a peer: one JSON config, one RESULT line
    else:
        _standalone()
