"""Run the reading-and-managing scenario with the published ``agentsight==0.0.44``.

Runs inside that client's own virtualenv, started by
``tests/compat/test_published_managers.py`` after it seeded a collector.
0.0.44 reads ``AGENTSIGHT_API_KEY`` / ``AGENTSIGHT_API_ENDPOINT`` when it is
imported, so the caller sets them in the environment.  Usage::

    python legacy_manage.py '{"m-1": pk, ...}' RESULT.json

Writes :func:`manage_scenario.run`'s results plus the client's version.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

from agentsight import agentsight_api, conversation_manager
from manage_scenario import run  # same directory, on sys.path as the script's


def main(pks_json: str, out_path: str) -> None:
    pks = {str(k): int(v) for k, v in json.loads(pks_json).items()}
    result = run(agentsight_api, conversation_manager, pks)
    result["version"] = version("agentsight")
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=repr, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
