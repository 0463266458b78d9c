"""CPU cost of built-in redaction per event (not a test: run it by hand).

    .venv/bin/python -m benchmarks.time_redaction [--json]

Times ``Redactor().redact_event(kind, data)`` - every built-in kind, the
default set - on the data the SDK's ``track_*`` calls produce, and reports
CPU microseconds per event (``time.process_time_ns``, so other processes on
a shared machine do not count; best of 7 repeats of >= 0.2 s each, garbage
collector on).  Three groups:

* ``typical``: what an agent's messages usually are - the benchmarks' own
  64-character message, chat text with order numbers, dates, prices and
  times, an action with a tool's arguments.  The goal: at most 2 µs each.
* ``pii``: text that holds something to redact (the work is then the
  regular expressions and the copy), reported so that nobody has to guess.
* ``floor``: the cheapest call on the same data (a redactor with no kind
  at all), to show what the walk over an event's fields costs by itself.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from agentsight_async import _events as ev
from agentsight_async._privacy import Redactor

from .peers._common import MESSAGE

Case = tuple[str, str, dict[str, Any]]


def _msg(text: str, kind: str = ev.QUESTION) -> dict[str, Any]:
    sender = "end_user" if kind == ev.QUESTION else "agent"
    return {"content": text, "sender": sender, "metadata": {}}


TYPICAL: list[Case] = [
    ("benchmarks' message (64 chars)", ev.QUESTION, _msg(MESSAGE)),
    (
        "question, no digits (85 chars)",
        ev.QUESTION,
        _msg(
            "Hi, I'd like to change my order please, it arrived yesterday but the box was damaged."
        ),
    ),
    (
        "answer, no digits (116 chars)",
        ev.ANSWER,
        _msg(
            "Sure! I can help with that. Could you tell me which item was damaged and "
            "whether you want a refund or a replacement?",
            ev.ANSWER,
        ),
    ),
    (
        "question, order no. + date + time (60 chars)",
        ev.QUESTION,
        _msg("The blue one. Order 48213, delivered on 2024-05-02 at 14:30."),
    ),
    (
        "answer, price + version (98 chars)",
        ev.ANSWER,
        _msg(
            "Done - a replacement for order 48213 ships today ($24.99, no charge). "
            "App version 3.11.7 is fine.",
            ev.ANSWER,
        ),
    ),
    (
        "answer, 3-item list (230 chars)",
        ev.ANSWER,
        _msg(
            "Here is what I found:\n1. Your parcel left the depot on May 2.\n"
            "2. The courier scanned it twice, at 9:10 and 16:45.\n"
            "3. It is now at the pick-up point; bring the code 7731 and an ID.\n"
            "Anything else I can do for you today?",
            ev.ANSWER,
        ),
    ),
    (
        "action with tools_used + metadata",
        ev.ACTION,
        {
            "action_name": "lookup_order",
            "metadata": {"source": "crm"},
            "duration_ms": 132.5,
            "tools_used": {"order_id": "48213", "fields": ["status", "eta"]},
            "response": "status=shipped eta=2024-05-04",
        },
    ),
]

PII: list[Case] = [
    (
        "question with an e-mail and a phone",
        ev.QUESTION,
        _msg("You can reach me at jane.doe@example.com or +44 20 7946 0958 after six."),
    ),
    (
        "question with a card number",
        ev.QUESTION,
        _msg("Please charge my other card, 4111 1111 1111 1111, expiry 12/27."),
    ),
    (
        "action error with a bearer token",
        ev.ACTION,
        {
            "action_name": "call_api",
            "metadata": {},
            "error_msg": "401 for Authorization: Bearer abcDEF123ghiJKL456 at 10.0.0.12",
        },
    ),
]


def per_event_us(fn: Callable[[], object], min_seconds: float = 0.2, repeats: int = 7) -> float:
    """Best-of-*repeats* CPU µs per call of *fn* (each repeat runs >= *min_seconds*)."""
    n = 1000
    while True:  # calibrate the loop count
        t0 = time.process_time_ns()
        for _ in range(n):
            fn()
        if time.process_time_ns() - t0 >= min_seconds * 1e9:
            break
        n *= 2
    best = float("inf")
    gc.collect()
    for _ in range(repeats):
        t0 = time.process_time_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time_ns() - t0) / n / 1000)
    return best


def measure() -> dict[str, list[dict[str, Any]]]:
    default = Redactor()
    nothing = Redactor(kinds=())
    out: dict[str, list[dict[str, Any]]] = {"typical": [], "pii": []}
    for group, cases in (("typical", TYPICAL), ("pii", PII)):
        for label, kind, data in cases:
            redacted, counts = default.redact_event(kind, data)
            call = default.redact_event
            floor = nothing.redact_event
            out[group].append(
                {
                    "case": label,
                    "us_per_event": round(per_event_us(lambda c=call, k=kind, d=data: c(k, d)), 3),
                    "floor_us": round(per_event_us(lambda c=floor, k=kind, d=data: c(k, d)), 3),
                    "changed": redacted is not data,
                    "counts": counts,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.time_redaction", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    results = measure()
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for group, rows in results.items():
        print(f"{group}:")
        for row in rows:
            print(
                f"  {row['case']:<46} {row['us_per_event']:>7.3f} µs/event"
                f"  (floor {row['floor_us']:.3f})  {row['counts'] or ''}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
