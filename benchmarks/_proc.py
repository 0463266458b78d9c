"""Run one workload script in a fresh interpreter and parse its ``RESULT`` line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
PEERS_DIR = ROOT / "peers"
REPO = ROOT.parent


class WorkerError(RuntimeError):
    pass


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def command(python: str | Path, script: str, cfg: dict[str, Any]) -> list[str]:
    return [str(python), str(PEERS_DIR / script), json.dumps(cfg)]


def parse(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return result
    raise WorkerError("no RESULT line")


def run(
    python: str | Path,
    script: str,
    cfg: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> dict[str, Any]:
    """Run *script* with *cfg*; return its result or raise :class:`WorkerError`."""
    try:
        proc = subprocess.run(
            command(python, script, cfg),
            capture_output=True,
            text=True,
            env=_env(env),
            cwd=REPO,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise WorkerError(
            f"{script} {cfg.get('bench')}: no result within {timeout:.0f} s"
        ) from None
    try:
        return parse(proc.stdout)
    except Exception:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        raise WorkerError(
            f"{script} {cfg.get('bench')} exited {proc.returncode}: " + " | ".join(tail)
        ) from None


def ours_python() -> str:
    """The project's interpreter (the one running the orchestrator: nox's or .venv's)."""
    return sys.executable
