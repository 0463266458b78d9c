"""``serve``: run the collector from the command line.

Two ways in: ``agentsight-async serve`` (the SDK's command line finds
:func:`add_serve_parser` through the ``agentsight_async.commands`` entry
point) and ``python -m agentsight_collector`` (:func:`main`).  Importing this
module imports uvicorn on purpose: without the ``[collector]`` extra the
import fails, and the SDK's command line says what to install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from agentsight_async._store import SchemaVersionError

from ._app import create_app
from ._http import API_KEY_RE

ENV_KEYS = "AGENTSIGHT_COLLECTOR_API_KEYS"
DEFAULT_DB = "./agentsight-local.db"
HELP = "run the local AgentSight-compatible collector"
DESCRIPTION = (
    "Serve the AgentSight write routes (legacy REST and /api/ingest/), a JSON read "
    "API and a transcript web page, storing into a local SQLite file."
)


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to *subparsers* (an ``agentsight_async.commands`` entry point).

    The parser it returns has a ``func`` default that runs the server.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help=HELP, description=DESCRIPTION
    )
    _add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agentsight_collector``: parse *argv* and serve until interrupted.

    Returns:
        The exit status: 0 after a clean stop, 2 when the server cannot start.
    """
    parser = argparse.ArgumentParser(
        prog="python -m agentsight_collector",
        description=f"{DESCRIPTION} The same as agentsight-async serve.",
    )
    _add_arguments(parser)
    return serve_main(parser.parse_args(argv))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default: {DEFAULT_DB})")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key; repeat for several (also ${ENV_KEYS}, comma separated)",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="accept ANY well-formed key (ags_<32 hex>_<6 hex>) and open the pages without one",
    )
    parser.add_argument(
        "--ingest-rate",
        type=float,
        metavar="N",
        help="emulate AgentSight's ingest allowance: accept at most N ingest batches a minute "
        "per API key (shared by every process using it; bursts of up to ten seconds' worth) "
        "and answer the rest 429 with Retry-After. Off by default.",
    )
    parser.set_defaults(func=serve_main)


def collect_keys(cli_keys: list[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The accepted keys: *cli_keys*, then those in *environ*'s ``ENV_KEYS`` (comma separated)."""
    from_env = [k.strip() for k in environ.get(ENV_KEYS, "").split(",") if k.strip()]
    return [*cli_keys, *from_env]


def serve_main(args: argparse.Namespace) -> int:
    """Run the server with parsed *args*; 2 when no key is configured or the file is too new."""
    keys = collect_keys(list(args.api_keys), os.environ)
    if not keys and not args.dev:
        print(
            "agentsight-async serve: no API key configured. Pass --api-key KEY (repeatable), "
            f"set {ENV_KEYS}, or use --dev to accept any well-formed key.",
            file=sys.stderr,
        )
        return 2
    malformed = sum(1 for k in keys if not API_KEY_RE.match(k))
    if malformed:
        print(
            f"warning: {malformed} configured key(s) do not look like AgentSight keys "
            "(ags_<32 hex>_<6 hex>); the published clients refuse such keys locally.",
            file=sys.stderr,
        )
    try:
        app = create_app(args.db, keys, dev=args.dev, ingest_rate=args.ingest_rate, pause_gc=True)
    except SchemaVersionError as exc:
        print(f"agentsight-async serve: {exc}", file=sys.stderr)
        return 2
    base = f"http://{_url_host(args.host)}:{args.port}"
    if args.dev:
        print(
            "DEV MODE: any well-formed API key (ags_<32 hex>_<6 hex>) is accepted and the "
            "transcript pages need no key. Do not expose this server.",
            file=sys.stderr,
        )
        print(f"Transcript page: {base}/")
    else:
        print(f"Transcript page: {base}/?key=<your API key>  (sets a session cookie once)")
    print(f"Point clients at AGENTSIGHT_API_ENDPOINT={base}   database: {args.db}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}, reachable beyond this machine.", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
