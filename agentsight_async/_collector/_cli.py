"""``agentsight-async serve``: run the collector from the command line.

Importing this module imports uvicorn on purpose: ``__main__`` catches the
ImportError and tells the user to install the ``[collector]`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import uvicorn

from ._app import create_app
from ._errors import SchemaVersionError
from ._http import API_KEY_RE

ENV_KEYS = "AGENTSIGHT_COLLECTOR_API_KEYS"
DEFAULT_DB = "./agentsight-local.db"


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``agentsight-async`` sub-command parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the local AgentSight-compatible collector",
        description=(
            "Serve the AgentSight write routes (legacy REST and /api/ingest/), a JSON read "
            "API and a transcript web page, storing into a local SQLite file."
        ),
    )
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
    parser.set_defaults(func=serve_main)
    return parser


def collect_keys(cli_keys: list[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    from_env = [k.strip() for k in environ.get(ENV_KEYS, "").split(",") if k.strip()]
    return [*cli_keys, *from_env]


def serve_main(args: argparse.Namespace) -> int:
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
        app = create_app(args.db, keys, dev=args.dev)
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
