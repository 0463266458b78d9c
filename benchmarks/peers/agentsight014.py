"""agentsight==0.1.4, the OpenTelemetry-based successor (runs in its own virtualenv).

``init()`` builds a TracerProvider with a BatchSpanProcessor and its ingest
exporter; a message is an event on the current turn's span.  A turn's span is
exported when the turn ends; ``flush()`` force-flushes the provider.
"""

from __future__ import annotations

import logging
import time

import _common as c

logging.disable(logging.CRITICAL)

import agentsight  # noqa: E402


def _init(cfg: dict, max_queue: int) -> None:
    ok = agentsight.init(
        api_key=c.DUMMY_KEY if not cfg.get("api_key") else cfg["api_key"],
        endpoint=cfg["endpoint"],
        auto_instrument=False,
        verify_key=False,
        max_queue_size=max_queue,
    )
    if not ok:
        raise SystemExit("agentsight.init() returned False")


def percall(cfg: dict) -> dict:
    _init(cfg, 2048)  # the default queue: what a user gets
    per_batch, msg = cfg["per_batch"], c.MESSAGE
    user_message, clock = agentsight.user_message, time.perf_counter_ns

    def run(n: int) -> int:
        # A span keeps at most 128 events (OTel's default limit): one turn per batch.
        with agentsight.turn():
            r = range(n)
            t0 = clock()
            for _ in r:
                user_message(msg)
            return clock() - t0

    with agentsight.conversation("bench-percall"):
        c.time_batches(run, max(1, cfg["batches"] // 10), per_batch)
        result = c.per_call_summary(c.time_batches(run, cfg["batches"], per_batch), per_batch)
    agentsight.flush(10_000)
    return result


def e2e(cfg: dict) -> dict:
    convs, per_conv = cfg["conversations"], cfg["events_per_conversation"]
    # A queue large enough that nothing is dropped before flush(): the best case for it.
    _init(cfg, max(2048, convs * per_conv))
    t0 = time.perf_counter()
    for i in range(convs):
        with agentsight.conversation(f"c{i}"):
            for _ in range(per_conv // 2):
                with agentsight.turn():
                    agentsight.user_message(c.MESSAGE)
                    agentsight.agent_message(c.REPLY)
    flushed = agentsight.flush(600_000)
    elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "tracked": convs * (per_conv // 2) * 2, "flushed": flushed}


if __name__ == "__main__":
    cfg = c.config()
    result = {"percall": percall, "e2e": e2e}[cfg["bench"]](cfg)
    c.emit(result)
    agentsight.shutdown()
