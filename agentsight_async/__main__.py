"""``agentsight-async`` command line: ``serve`` (local collector) and ``demo`` (main job)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agentsight-async",
        description="AgentSight async SDK tools: a local collector and an end-to-end demo.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    try:
        from ._collector._cli import add_serve_parser
    except ImportError as exc:  # the [collector] extra is not installed
        missing = exc.name or "starlette"
        serve = sub.add_parser("serve", help="run the local AgentSight-compatible collector")
        serve.set_defaults(func=lambda _args: _needs_extra(missing))
        demo = sub.add_parser("demo", help="run simulated agents against a local collector")
        demo.set_defaults(func=lambda _args: _needs_extra(missing))
    else:
        from ._demo import add_demo_parser

        add_serve_parser(sub)
        add_demo_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _needs_extra(missing: str) -> int:
    print(
        f"this command needs the collector extra ({missing} is not installed): "
        "pip install 'agentsight-async[collector]'",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
