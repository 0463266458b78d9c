"""Run the reading-and-managing scenario with the published ``agentsight==0.0.44`` clients.

Runs inside that client's own virtualenv (never ours), started by
``tests/compat/test_published_api_clients.py``.  0.0.44 builds its
``agentsight_api`` and ``conversation_manager`` when it is imported, from
``AGENTSIGHT_API_KEY`` / ``AGENTSIGHT_API_ENDPOINT``, so the caller sets them
in the environment.  Usage::

    python legacy_api_scenario.py RESULT.json

Writes ``{"version", "calls": [one outcome per step]}``.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from agentsight import agentsight_api, conversation_manager
from api_scenario import run_api_calls  # same directory, on sys.path as the script's


def main(out_path: str) -> None:
    result = {
        "version": version("agentsight"),
        "calls": run_api_calls(agentsight_api, conversation_manager),
    }
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=repr, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
