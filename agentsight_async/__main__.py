"""The ``agentsight-async`` command line.

The SDK itself has no sub-commands to offer: they are plugged in through the
``agentsight_async.commands`` entry-point group, so the SDK never names the
package that provides them.  An entry point called ``NAME`` refers to a
callable that takes the ``add_subparsers()`` object, adds the sub-command
``NAME`` and sets its ``func`` default (``func(args) -> exit status``).  This
distribution registers ``serve`` and ``demo``, which need the ``[collector]``
extra (without it they say what to install and exit with status 2), and
``push``, which needs nothing more (``[push]`` adds its progress bar).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ._version import __version__

#: The entry-point group sub-commands are registered in.
COMMANDS_GROUP = "agentsight_async.commands"
#: What to install when a sub-command cannot be imported.
INSTALL_HINT = "pip install 'agentsight-async[collector]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``agentsight-async`` with *argv* (default: ``sys.argv[1:]``).

    Returns:
        The sub-command's exit status; 2 for a usage error or a missing extra.
    """
    parser = argparse.ArgumentParser(
        prog="agentsight-async",
        description="Tools of the agentsight-async SDK: run a local AgentSight-compatible "
        "collector, run the end-to-end demo on it, and more. "
        "`agentsight-async COMMAND --help` explains each command.",
    )
    parser.add_argument("--version", action="version", version=f"agentsight-async {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registered: set[str] = set()
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        if entry.name not in registered:  # the first of two same-named commands wins
            registered.add(entry.name)
            _register(sub, entry)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _register(sub: Any, entry: EntryPoint) -> None:
    try:
        add_parser: Callable[[Any], argparse.ArgumentParser] = entry.load()
    except ImportError as exc:  # its extra is not installed
        missing = exc.name or "a dependency"
        # It takes any arguments ("\0" is its only option prefix), so that
        # `serve --dev` also gets the message below rather than a usage error.
        unavailable = sub.add_parser(
            entry.name, help=f"(needs {INSTALL_HINT})", add_help=False, prefix_chars="\0"
        )
        unavailable.add_argument("rest", nargs=argparse.REMAINDER)
        unavailable.set_defaults(func=lambda _args: _needs_extra(entry.name, missing))
    else:
        add_parser(sub)


def _needs_extra(command: str, missing: str) -> int:
    print(
        f"agentsight-async {command}: this command needs the collector extra "
        f"({missing} is not installed): {INSTALL_HINT}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
