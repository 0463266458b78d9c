"""Run the seed scenario with the published ``agentsight==0.0.44`` client.

Runs inside that client's own virtualenv (never ours), started by
``tests/compat/test_published_clients.py``.  0.0.44 reads
``AGENTSIGHT_API_KEY`` / ``AGENTSIGHT_API_ENDPOINT`` when it is imported, so
the caller sets them in the environment.  Usage::

    python legacy_scenario.py RESULT.json

Writes ``{"version", "sends": [send_tracked_data() results], "token_usage"}``.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import agentsight
from agentsight import conversation_tracker
from compat_scenario import run_seed_steps  # same directory, on sys.path as the script's


def main(out_path: str) -> None:
    sends = run_seed_steps(conversation_tracker)
    result = {
        "version": version("agentsight"),
        "module": agentsight.__file__,
        "sends": sends,
        "token_usage": conversation_tracker.get_token_usage(),
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=repr, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
