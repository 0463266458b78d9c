"""Finding the documentation's code blocks, and running the ones that need more than ``exec``.

A block is a fenced ```` ```python ```` block of README.md or a page under docs/.
``title="name.py"`` in its info string (what the site shows above it) names the
file the page asks the reader to create; recipes run those files for real - in
a server on loopback, a worker, a Jupyter kernel - from ``tests/core/test_docs.py``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
#: Every fence that opens a Python block, whatever its info string.
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)
PYTHON_LANGS = ("python", "py", "python3")
TITLE = re.compile(r'title="(?P<title>[^"]+)"')


@dataclass(frozen=True)
class Block:
    """One Python block: where it is (``page#index``), its title (a file name) and code."""

    page: str
    index: int
    title: str | None
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}#{self.index}"


def pages() -> list[tuple[str, Path]]:
    """README.md and every page of docs/, as (name relative to docs/, path)."""
    found = [("README.md", ROOT / "README.md")]
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        found.append((doc.relative_to(ROOT / "docs").as_posix(), doc))
    return found


def fences(text: str) -> list[tuple[str, str, str]]:
    """Every fenced block of *text* as (language, info string, code)."""
    return [(m["lang"], m["info"], m["code"]) for m in FENCE.finditer(text)]


def blocks() -> list[Block]:
    """Every Python block of the documentation, in page order."""
    found = []
    for name, path in pages():
        python = [f for f in fences(path.read_text(encoding="utf-8")) if f[0] in PYTHON_LANGS]
        for i, (_, info, code) in enumerate(python):
            title = TITLE.search(info)
            found.append(Block(name, i, title["title"] if title else None, code))
    return found


def page_blocks(page: str) -> list[Block]:
    return [b for b in blocks() if b.page == page]


def write_files(page: str, where: Path) -> dict[str, Path]:
    """Write every titled block of *page* into *where*; return ``{title: path}``."""
    written = {}
    for block in page_blocks(page):
        if block.title:
            path = where / block.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code, encoding="utf-8")
            written[block.title] = path
    return written


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def bin_path(name: str) -> str:
    """A console script of the running interpreter's environment (``gunicorn``, ``celery``)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no AGENTSIGHT_* of the machine, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTSIGHT_")}
    env.pop("PYTHONASYNCIODEBUG", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def running(
    argv: list[str], cwd: Path, env: Mapping[str, str], *, ready_url: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A child process (a server or a worker), stopped with SIGTERM - gracefully - at the end.

    With *ready_url*, waits until it answers.  The child's output is kept in
    ``cwd/<argv[0]>.log`` and printed when it fails to start.
    """
    log = cwd / f"{Path(argv[0]).name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, text=True
        )
    try:
        if ready_url is not None:
            wait_until_up(ready_url, proc, log)
        yield proc
    finally:
        stop(proc)


def wait_until_up(url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up:\n{log.read_text()}")


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> int:
    """SIGTERM, wait (servers and workers shut down gracefully), SIGKILL if they hang."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def transcripts(storage: Any) -> dict[str, list[tuple[str, Any]]]:
    """Every conversation of a collector's storage as ``{conversation_id: [(type, what)]}``.

    Messages are ``("user"|"agent", text)``, actions ``("action", name)``, token
    usage ``("tokens", total)``.
    """
    out: dict[str, list[tuple[str, Any]]] = {}
    listing = storage.list_conversations(page_size=1000)
    for row in listing["results"]:
        conversation = storage.get_conversation(row["id"])
        items: list[tuple[str, Any]] = []
        for item in conversation["transcript"]:
            if item["type"] == "message":
                sender = "user" if item["sender"] == "end_user" else "agent"
                items.append((sender, item["content"]))
            elif item["type"] == "action":
                items.append(("action", item["action_name"]))
            elif item["type"] == "token_usage":
                items.append(("tokens", item.get("total_tokens")))
            else:
                items.append((item["type"], None))
        out[row["conversation_id"]] = items
    return out


def wait_for(predicate: Any, timeout: float = 20, interval: float = 0.1) -> Any:
    """Poll *predicate* until it returns something truthy; return that (or fail)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, "timed out waiting"
    return value
