"""What automatic capture adds to one non-streamed OpenAI call.

    python -m benchmarks.capture [--calls N]

The same ``chat.completions.create`` is timed unpatched and patched (into a
``memory://`` tracker), interleaved in rounds so drift hits both alike, two ways:

* ``in-process``: the client's own ``httpx`` transport answers from memory
  (``httpx.MockTransport``) - the overhead with nothing else in the way;
* ``loopback``: the fake model server of the tests on 127.0.0.1 - the overhead
  against that server's own cost.

Reports the median per-call time of each and the difference (the goal: < 20 µs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai

from agentsight_async import ConversationTracker, instrument, uninstrument

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_model_server import FAKE_KEY, FakeModelServer

ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-test",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
MESSAGES = [{"role": "user", "content": "hi"}]


def timed(call: Callable[[], object], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        call()
    return (time.perf_counter_ns() - start) / n / 1000


def measure(
    client: openai.OpenAI, tracker: ConversationTracker, calls: int, rounds: int
) -> dict[str, float]:
    def call() -> object:
        return client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    plain: list[float] = []
    patched: list[float] = []
    for _ in range(rounds):
        uninstrument()
        plain.append(timed(call, calls))
        instrument("openai", tracker=tracker)
        with tracker.conversation("bench"):
            patched.append(timed(call, calls))
        tracker.flush(timeout=10)
    uninstrument()
    p, q = statistics.median(plain), statistics.median(patched)
    return {"unpatched_us": round(p, 1), "patched_us": round(q, 1), "overhead_us": round(q - p, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tracker = ConversationTracker(endpoint="memory://bench-capture", max_queue_events=1_000_000)
    body = json.dumps(ANSWER).encode()
    mock = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body, headers={"content-type": "application/json"}
        )
    )
    in_process = openai.OpenAI(
        base_url="http://model.invalid/v1",
        api_key=FAKE_KEY,
        http_client=httpx.Client(transport=mock),
    )
    results = {"in-process": measure(in_process, tracker, args.calls, args.rounds)}
    with FakeModelServer() as server:
        loopback = openai.OpenAI(base_url=server.openai_url, api_key=FAKE_KEY, max_retries=0)
        results["loopback"] = measure(loopback, tracker, max(args.calls // 5, 20), args.rounds)
    tracker.close(timeout=10)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
