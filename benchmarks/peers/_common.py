"""Helpers shared by every workload script (standard library only).

Peer scripts import this as ``_common`` (their directory is ``sys.path[0]``);
our own workloads import it as ``benchmarks.peers._common``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

#: The message every comparator tracks: a typical short chat line.
MESSAGE = "Hello, I need help with my order #12345, it has not arrived yet."
REPLY = "Sorry to hear that! Let me look up order #12345 for you right away."
#: One agent turn of the OTLP benchmark, the same for us and for the OpenTelemetry SDK:
#: the user's message, a tool call, a model call with its usage, the agent's reply.
TOOL = "lookup_order"
TOOL_ARGS = {"order_id": 12345, "include": ["status", "eta"]}
TOOL_RESULT = "shipped; arrives tomorrow"
TOOL_MS = 25.0
MODEL = "gpt-4o-mini"
PROVIDER = "openai"
PROMPT_TOKENS = 812
COMPLETION_TOKENS = 64
ITEMS_PER_TURN = 4
#: A well-formed dummy key (``ags_`` + 32 hex + ``_`` + 6 hex); our collector accepts any
#: key it was started with, the sink accepts everything.
DUMMY_KEY = "ags_0123456789abcdef0123456789abcdef_abcdef"


def config() -> dict[str, Any]:
    """The JSON config passed as the first argument."""
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def emit(result: dict[str, Any]) -> None:
    """Print the result line the orchestrator parses, and flush."""
    result.setdefault("python", sys.version.split()[0])
    result.setdefault("pid", os.getpid())
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def per_call_summary(batch_ns: list[int], per_batch: int) -> dict[str, Any]:
    """p50/p99/mean of per-call cost in microseconds, from per-batch durations."""
    per_call = sorted(ns / per_batch / 1000.0 for ns in batch_ns)
    return {
        "p50_us": percentile(per_call, 50),
        "p99_us": percentile(per_call, 99),
        "mean_us": sum(per_call) / len(per_call),
        "max_us": per_call[-1],
        "calls": len(batch_ns) * per_batch,
        "per_batch": per_batch,
    }


def time_batches(run_batch: Callable[[int], int], batches: int, per_batch: int) -> list[int]:
    """Call ``run_batch(per_batch)`` (which returns its own elapsed ns) *batches* times."""
    return [run_batch(per_batch) for _ in range(batches)]


def loop_timer(call: Callable[[], Any]) -> Callable[[int], int]:
    """A batch runner timing *n* back-to-back calls of *call* with ``perf_counter_ns``."""
    clock = time.perf_counter_ns

    def run(n: int) -> int:
        r = range(n)
        t0 = clock()
        for _ in r:
            call()
        return clock() - t0

    return run


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
