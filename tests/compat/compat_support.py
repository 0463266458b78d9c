"""Machinery for the compatibility tests: client virtualenvs, runs, read-back.

Each run gets its own :class:`LocalCollector` (its own SQLite file) and an
explicit API key; everything the tests compare is read back over the
collector's JSON read API and file downloads - HTTP, as any user would - into
a :class:`Snapshot`.  The judgement (what is compared, what is normalised and
why) lives in ``test_published_clients.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentsight_async import AsyncConversationTracker, ConversationTracker
from agentsight_async.testing import DUMMY_API_KEY
from agentsight_collector import LocalCollector

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLIENTS_DIR = HERE / "clients"
if str(CLIENTS_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENTS_DIR))

import compat_scenario as scenario  # noqa: E402  (needs CLIENTS_DIR on sys.path)

KEY = DUMMY_API_KEY
AUTH = {"Authorization": f"Api-Key {KEY}"}
CLIENT_SPECS = {"0.0.44": "agentsight==0.0.44", "0.1.4": "agentsight==0.1.4"}
CONVERSATION_IDS = (scenario.VISIT_ID, scenario.CHAT_ID)
SUBPROCESS_TIMEOUT = 120

#: The stores compared: the two published clients, and our SDK's runs of the
#: seed scenario (name -> (protocol, API)).
LEGACY = "agentsight-0.0.44"
V014 = "agentsight-0.1.4"
OURS = {
    "ours-rest-sync": ("rest", "sync"),
    "ours-rest-async": ("rest", "async"),
    "ours-ingest-sync": ("ingest", "sync"),
    "ours-ingest-async": ("ingest", "async"),
}


# -- the published clients' virtualenvs ---------------------------------------------------


def venv_root() -> Path:
    """Where the client virtualenvs are cached: ``$AGENTSIGHT_COMPAT_VENVS`` or ``.nox/``."""
    configured = os.environ.get("AGENTSIGHT_COMPAT_VENVS")
    return Path(configured).resolve() if configured else ROOT / ".nox" / "compat-clients"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_version(python: Path) -> str | None:
    probe = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('agentsight'))"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=client_env(),
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_client_venv(version: str) -> Path:
    """A virtualenv holding ``agentsight==version`` (and nothing of ours); its python.

    Reused when it already holds that version; otherwise (re)built with
    ``python -m venv`` and ``pip install``.  Never touches the running
    interpreter's environment.
    """
    venv = venv_root() / f"agentsight-{version}"
    python = _venv_python(venv)
    if python.exists() and _installed_version(python) == version:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            CLIENT_SPECS[version],
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=300, env=client_env())
        if done.returncode != 0:
            raise RuntimeError(
                f"building the agentsight {version} virtualenv failed: {step}\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
    installed = _installed_version(python)
    if installed != version:
        raise RuntimeError(f"{venv} holds agentsight {installed!r}, expected {version}")
    return python


def client_env(**extra: str) -> dict[str, str]:
    """The environment for a client process: ours minus anything that could leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTSIGHT_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run_client_script(
    python: Path, script: str, args: list[str], env: dict[str, str]
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """Run ``clients/<script>`` in a client's venv; return the JSON it wrote and the process."""
    with tempfile.TemporaryDirectory(prefix="agentsight-compat-") as tmp:
        out = Path(tmp) / "result.json"
        done = subprocess.run(
            [str(python), str(CLIENTS_DIR / script), *args, str(out)],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            env=env,
            cwd=tmp,  # no .env or package of ours on the path
        )
        if done.returncode != 0 or not out.exists():
            raise AssertionError(
                f"{script} failed (exit {done.returncode})\n"
                f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        return json.loads(out.read_text(encoding="utf-8")), done


# -- our SDK -----------------------------------------------------------------------------


def run_ours(url: str, protocol: str, api: str) -> list[dict[str, Any]]:
    """The seed scenario through our SDK (sync facade or async core) into *url*."""
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        for name in list(os.environ):
            if name.startswith("AGENTSIGHT_"):
                mp.delenv(name)
        mp.chdir(tmp)  # no stray .env
        if api == "sync":
            tracker = ConversationTracker(api_key=KEY, endpoint=url, protocol=protocol)
            try:
                return scenario.run_seed_steps(tracker)
            finally:
                tracker.close(timeout=10)

        async def main() -> list[dict[str, Any]]:
            async with AsyncConversationTracker(
                api_key=KEY, api_endpoint=url, protocol=protocol
            ) as tracker:
                return await scenario.run_seed_steps_async(tracker)

        return asyncio.run(main())


# -- reading back ------------------------------------------------------------------------


@dataclass
class Snapshot:
    """What one client stored, as read back over HTTP."""

    name: str
    kind: str  # "legacy" (0.0.44), "v014" (0.1.4), "rest" or "ingest" (ours)
    conversations: dict[str, dict[str, Any]]  # conversation_id -> GET /api/conversations/{pk}/
    files: dict[int, bytes]  # attachment file id -> downloaded bytes
    result: Any = None  # what the client returned (send_tracked_data results, ...)
    process: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)

    @property
    def chat(self) -> dict[str, Any]:
        return self.conversations[scenario.CHAT_ID]

    @property
    def visit(self) -> dict[str, Any]:
        return self.conversations[scenario.VISIT_ID]


def read_back(url: str) -> tuple[dict[str, dict[str, Any]], dict[int, bytes]]:
    conversations: dict[str, dict[str, Any]] = {}
    files: dict[int, bytes] = {}
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as http:
        for cid in CONVERSATION_IDS:
            page = http.get("/api/conversations/", params={"conversation_id": cid})
            assert page.status_code == 200, page.text
            results = page.json()["results"]
            assert len(results) == 1, f"{cid}: {results}"
            detail = http.get(f"/api/conversations/{results[0]['id']}/")
            assert detail.status_code == 200, detail.text
            conversations[cid] = detail.json()
            for item in conversations[cid]["transcript"]:
                for f in item.get("files", ()):
                    if f["downloadable"]:
                        got = http.get(f["download_url"])
                        assert got.status_code == 200, (f, got.status_code)
                        files[f["id"]] = got.content
    return conversations, files


def snapshot(name: str, kind: str, run: Callable[[str], Any]) -> Snapshot:
    """Start a fresh collector, let *run* send to it, read everything back, stop it."""
    with LocalCollector(api_keys=(KEY,)) as collector:
        outcome = run(collector.url)
        conversations, files = read_back(collector.url)
    result, process = outcome if isinstance(outcome, tuple) else (outcome, None)
    return Snapshot(name, kind, conversations, files, result, process)
