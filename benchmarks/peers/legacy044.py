"""agentsight==0.0.44, the original ``ConversationTracker`` (runs in its own virtualenv).

It reads ``AGENTSIGHT_API_KEY`` / ``AGENTSIGHT_API_ENDPOINT`` at import (the
orchestrator sets them).  ``track_*`` only appends to an in-memory list;
``send_tracked_data()`` then makes one blocking request per item.
"""

from __future__ import annotations

import logging
import time

import _common as c

logging.disable(logging.CRITICAL)  # its per-item debug/info logging is not what we measure

from agentsight import conversation_tracker as tracker  # noqa: E402


def percall(cfg: dict) -> dict:
    tracker.get_or_create_conversation("bench-percall")
    track, msg = tracker.track_human_message, c.MESSAGE
    run = c.loop_timer(lambda: track(msg))
    c.time_batches(run, max(1, cfg["batches"] // 10), cfg["per_batch"])  # warm-up
    return c.per_call_summary(
        c.time_batches(run, cfg["batches"], cfg["per_batch"]), cfg["per_batch"]
    )


def e2e(cfg: dict) -> dict:
    convs, per_conv = cfg["conversations"], cfg["events_per_conversation"]
    errors = 0
    t0 = time.perf_counter()
    # One current conversation per process: conversations can only go one after another.
    for i in range(convs):
        tracker.get_or_create_conversation(f"c{i}")
        for j in range(per_conv):
            if j % 2:
                tracker.track_agent_message(c.REPLY)
            else:
                tracker.track_human_message(c.MESSAGE)
        report = tracker.send_tracked_data()
        errors += report["summary"]["errors"]
    elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "tracked": convs * per_conv, "client_errors": errors}


if __name__ == "__main__":
    cfg = c.config()
    c.emit({"percall": percall, "e2e": e2e}[cfg["bench"]](cfg))
