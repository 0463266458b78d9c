"""``agentsight-async demo``: the whole pipeline, end to end, on this machine.

It lives with the collector because it starts one: the SDK's command line
finds :func:`add_demo_parser` through the ``agentsight_async.commands`` entry
point.  What it does is :data:`DESCRIPTION`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentsight_async import AsyncConversationTracker

from ._server import LocalCollector, generate_api_key

DESCRIPTION = """\
Run the whole pipeline end to end on this machine: start the local collector on
a free loopback port (SQLite file), run simulated async agents - each its own
conversation, all at once - through the SDK's AsyncConversationTracker, flush,
read every conversation back over the collector's read API, and check that
every event arrived once and in order.

Exit status: 0 when it did; 1 when something was missing or out of order (and
the summary says what); 2 when the demo could not run.
"""
TOPICS = ("a late delivery", "a refund", "a password reset", "an invoice", "a broken login")


@dataclass
class Expected:
    """What one simulated conversation tracked, in order, as the transcript should show it."""

    conversation_id: str
    items: list[tuple[str, str]] = field(default_factory=list)
    tokens: int = 0


def add_demo_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo`` to *subparsers* (an ``agentsight_async.commands`` entry point).

    The parser it returns has a ``func`` default that runs the demo.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run simulated async agents through the SDK into a local collector and verify",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--conversations", type=int, default=50, help="agents to run (50)")
    parser.add_argument("--turns", type=int, default=4, help="question/answer turns each (4)")
    parser.add_argument(
        "--protocol",
        choices=("ingest", "rest"),
        default="ingest",
        help="wire protocol: ingest batches or legacy per-item REST (ingest)",
    )
    parser.add_argument(
        "--db", default="agentsight-demo.db", help="SQLite file (agentsight-demo.db)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed for the simulation")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the collector running afterwards so you can open the transcript page",
    )
    parser.set_defaults(func=demo_main)
    return parser


def demo_main(args: argparse.Namespace) -> int:
    """Run the demo with parsed *args*; the exit status of :data:`DESCRIPTION`."""
    if args.conversations < 1 or args.turns < 1:
        print("demo: --conversations and --turns must be at least 1", file=sys.stderr)
        return 2
    db = Path(args.db).resolve()
    for suffix in ("", "-wal", "-shm"):  # a fresh recording each run
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    try:
        return asyncio.run(run_demo(args, db))
    except KeyboardInterrupt:
        return 130


async def run_demo(args: argparse.Namespace, db: Path) -> int:
    """Start a collector on *db*, simulate, verify and report; 0 when all arrived."""
    key = generate_api_key()
    collector = LocalCollector(db, api_keys=[key])
    collector.start()
    try:
        print(f"collector  {collector.url}  (SQLite: {db})")
        print(
            f"running    {args.conversations} simulated agents x {args.turns} turns "
            f"over the {args.protocol} protocol"
        )
        started = time.perf_counter()
        expected, latencies, stats = await simulate(args, collector.url, key)
        elapsed = time.perf_counter() - started
        problems = await verify(collector.url, key, expected)
        report(expected, latencies, stats, elapsed, problems)
        print()
        print("see the transcripts:")
        if args.serve:
            print(f"  open {collector.url}/?key={key}   (Ctrl-C to stop)")
            await _serve_until_interrupted()
        else:
            print(f"  agentsight-async serve --db {db} --dev   then open http://127.0.0.1:8765/")
        return 1 if problems else 0
    finally:
        collector.stop()


async def simulate(
    args: argparse.Namespace, url: str, key: str
) -> tuple[list[Expected], list[int], dict[str, Any]]:
    """Run the simulated agents against *url* at once; what each tracked, call latencies, stats."""
    rng = random.Random(args.seed)
    latencies: list[int] = []
    expected = [Expected(f"demo-{n:04d}") for n in range(args.conversations)]
    done = 0
    async with AsyncConversationTracker(
        api_key=key, api_endpoint=url, protocol=args.protocol, flush_interval=0.25
    ) as tracker:

        async def timed(coro: Any) -> None:
            t0 = time.perf_counter_ns()
            await coro
            latencies.append(time.perf_counter_ns() - t0)

        async def agent(exp: Expected) -> None:
            nonlocal done
            seed = rng.random()
            local = random.Random(seed)
            topic = local.choice(TOPICS)
            async with tracker.conversation(
                exp.conversation_id,
                name=f"Help with {topic}",
                customer_id=f"customer-{local.randint(1, 999)}",
                environment="production",
                metadata={"channel": local.choice(("web", "app", "email"))},
            ):
                for turn in range(args.turns):
                    question = f"[{exp.conversation_id} #{turn}] I need help with {topic}."
                    await timed(tracker.track_human_message(question))
                    exp.items.append(("message", question))
                    await asyncio.sleep(local.uniform(0, 0.02))  # the model thinks
                    ms = local.randint(20, 400)
                    await timed(
                        tracker.track_action(
                            "search_knowledge_base",
                            duration_ms=ms,
                            tools_used={"kb": "articles", "query": topic},
                            response=f"{local.randint(1, 5)} articles found",
                        )
                    )
                    exp.items.append(("action", "search_knowledge_base"))
                    prompt, completion = local.randint(200, 900), local.randint(30, 200)
                    await timed(
                        tracker.track_token_usage(
                            prompt, completion, prompt + completion, model="gpt-4o-mini"
                        )
                    )
                    exp.tokens += prompt + completion
                    exp.items.append(("token_usage", ""))
                    answer = f"[{exp.conversation_id} #{turn}] Here is how to fix {topic}."
                    await timed(tracker.track_agent_message(answer))
                    exp.items.append(("message", answer))
                await timed(tracker.track_button("satisfaction", "Helpful", "yes"))
                exp.items.append(("button", "Helpful"))
                note = f"Summary of {exp.conversation_id}: {topic} resolved.\n".encode()
                await timed(
                    tracker.track_attachments(
                        [
                            {
                                "filename": "summary.txt",
                                "mime_type": "text/plain",
                                "data": base64.b64encode(note).decode(),
                            }
                        ],
                        sender="agent",
                    )
                )
                exp.items.append(("attachment", "summary.txt"))
            done += 1
            if done % max(1, args.conversations // 10) == 0 or done == args.conversations:
                s = tracker.stats()
                print(
                    f"  {done:>5}/{args.conversations} agents done   "
                    f"tracked {s['tracked']:>6}  delivered {s['delivered']:>6}  "
                    f"queued {s['queued_events']:>5}",
                    flush=True,
                )

        await asyncio.gather(*(agent(e) for e in expected))
        flushed = await tracker.flush(timeout=60)
        stats = tracker.stats()
        stats["flushed"] = flushed
    return expected, latencies, stats


async def verify(url: str, key: str, expected: Sequence[Expected]) -> list[str]:
    """Read every conversation back over HTTP; describe whatever does not match."""
    problems: list[str] = []
    headers = {"Authorization": f"Api-Key {key}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        sem = asyncio.Semaphore(8)

        async def check(exp: Expected) -> None:
            async with sem:
                found = await client.get(
                    "/api/conversations/", params={"conversation_id": exp.conversation_id}
                )
                results = found.json().get("results", []) if found.status_code == 200 else []
                if len(results) != 1:
                    problems.append(f"{exp.conversation_id}: not found ({found.status_code})")
                    return
                detail = (await client.get(f"/api/conversations/{results[0]['id']}/")).json()
            got = [_describe(item) for item in detail.get("transcript", [])]
            if got != exp.items:
                problems.append(
                    f"{exp.conversation_id}: transcript differs: {_diff(exp.items, got)}"
                )
            total = (results[0].get("token_usage") or {}).get("total_tokens")
            if total != exp.tokens:
                problems.append(f"{exp.conversation_id}: {total} tokens, expected {exp.tokens}")

        await asyncio.gather(*(check(e) for e in expected))
    return problems


def _describe(item: dict[str, Any]) -> tuple[str, str]:
    kind = str(item.get("type"))
    if kind == "message":
        return kind, str(item.get("content"))
    if kind == "action":
        return kind, str(item.get("action_name"))
    if kind == "button":
        return kind, str(item.get("label"))
    if kind == "attachment":
        return kind, ",".join(str(f.get("filename")) for f in item.get("files", []))
    return kind, ""


def _diff(want: list[tuple[str, str]], got: list[tuple[str, str]]) -> str:
    for i, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            return f"item {i}: expected {a}, got {b}"
    return f"expected {len(want)} items, got {len(got)}"


def report(
    expected: Sequence[Expected],
    latencies: list[int],
    stats: dict[str, Any],
    elapsed: float,
    problems: list[str],
) -> None:
    """Print the summary and the verification verdict."""
    events = stats["tracked"]
    lat = sorted(latencies)
    p50 = statistics.median(lat) / 1000 if lat else 0.0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000 if lat else 0.0
    print()
    print("summary")
    print(f"  conversations     {len(expected)}")
    print(f"  events tracked    {events}")
    print(f"  events delivered  {stats['delivered']}")
    dropped = {k: v for k, v in stats["dropped"].items() if v}
    print(f"  events dropped    {stats['dropped_total']}{'  ' + str(dropped) if dropped else ''}")
    print(f"  requests          {stats['requests']} ({stats['retried']} retried)")
    print(f"  wall time         {elapsed:.2f} s   ({events / elapsed:,.0f} events/s end to end)")
    print(f"  per-call overhead p50 {p50:.1f} µs   p99 {p99:.1f} µs   (await tracker.track_*)")
    if problems:
        print(f"  verification      FAILED: {len(problems)} conversation(s) differ")
        for line in problems[:10]:
            print(f"    - {line}")
    else:
        print("  verification      OK: every event stored once, in order, in every conversation")


async def _serve_until_interrupted() -> None:
    stop = asyncio.Event()
    if os.name == "posix":
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
