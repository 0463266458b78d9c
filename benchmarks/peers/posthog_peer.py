"""PostHog ``capture`` (runs in its own virtualenv), posting to a sink that discards."""

from __future__ import annotations

import logging

import _common as c

logging.disable(logging.CRITICAL)

from posthog import Posthog  # noqa: E402


def percall(cfg: dict) -> dict:
    client = Posthog("phc_benchmark", host=cfg["endpoint"], enable_local_evaluation=False)
    props = {"content": c.MESSAGE, "sender": "end_user", "conversation_id": "bench-percall"}
    capture, msg_event = client.capture, "message"
    run = c.loop_timer(lambda: capture(msg_event, distinct_id="user-1", properties=props))
    c.time_batches(run, max(1, cfg["batches"] // 10), cfg["per_batch"])
    result = c.per_call_summary(
        c.time_batches(run, cfg["batches"], cfg["per_batch"]), cfg["per_batch"]
    )
    client.shutdown()
    return result


if __name__ == "__main__":
    cfg = c.config()
    c.emit({"percall": percall}[cfg["bench"]](cfg))
