"""``python -m agentsight_collector``: the same server as ``agentsight-async serve``."""

from __future__ import annotations

import sys


def _run() -> int:
    try:
        from ._cli import main
    except ImportError as exc:  # the [collector] extra is not installed
        print(
            f"python -m agentsight_collector needs the collector extra ({exc.name} is not "
            "installed): pip install 'agentsight-async[collector]'",
            file=sys.stderr,
        )
        return 2
    return main()


if __name__ == "__main__":
    sys.exit(_run())
