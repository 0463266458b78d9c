"""The capture comparison with the published ``agentsight==0.1.4`` client (its own venv).

Usage::

    python v014_capture_scenario.py ENDPOINT API_KEY OPENAI_URL ANTHROPIC_URL RESULT.json

0.1.4 patches the provider SDKs itself (``auto_instrument``); the calls happen
inside one conversation and turn, then ``flush()``.
"""

from __future__ import annotations

import json
import sys

import agentsight
import capture_calls


def main(endpoint: str, api_key: str, openai_url: str, anthropic_url: str, out: str) -> None:
    ok = agentsight.init(
        api_key,
        endpoint=endpoint,
        auto_instrument=["openai", "anthropic"],
        export_interval_ms=60_000,
    )
    with agentsight.conversation(capture_calls.CONVERSATION_ID), agentsight.turn("calls"):
        capture_calls.run(openai_url, anthropic_url)
    flushed = agentsight.flush()
    agentsight.shutdown()
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"init": ok, "flush": flushed}, f)


if __name__ == "__main__":
    main(*sys.argv[1:6])
