"""``python -m agentsight_collector``: the same server as ``agentsight-async serve``."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
