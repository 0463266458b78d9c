"""Every Python block in README.md and docs/ runs, so the documentation cannot rot.

A block runs with ``exec`` in this process, its events sent to a ``memory://``
endpoint instead of the internet - unless its page is a recipe with a runner in
``docs_recipes.RUNNERS``: then the runner runs it the way the page says, for
real (the framework's test client or a server on loopback, a Celery worker, a
Jupyter kernel, a subprocess) and checks what arrived.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_recipes import RUNNERS, Context
from docs_support import PYTHON_LANGS, Block, blocks, fences, pages

from agentsight_async import conversation_tracker, uninstrument

ROOT = Path(__file__).resolve().parents[2]
#: The integration pages and the package their examples need (skipped without it).
NEEDS = {
    "openai.md": "openai",
    "anthropic.md": "anthropic",
    "langchain.md": "langchain_openai",
    "llama_index.md": "llama_index.llms.openai",
}
ALL = blocks()


@contextlib.contextmanager
def model_server(where: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For an integration page: its package, and the SDKs pointed at a loopback fake."""
    if not where.startswith("integrations/"):
        yield
        return
    needed = NEEDS.get(where.split("/")[1].split("#")[0])
    if needed is not None and importlib.util.find_spec(needed.split(".")[0]) is None:
        pytest.skip(f"{needed} is not installed")
    if needed is not None:
        pytest.importorskip(needed)
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_model_server import FakeModelServer

    try:
        with FakeModelServer() as server:
            for key, value in server.env().items():
                monkeypatch.setenv(key, value)
            yield
    finally:
        uninstrument()


@pytest.mark.parametrize("block", ALL, ids=[b.where for b in ALL])
def test_documentation_block_runs(
    block: Block,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # Blocks that send somewhere go to memory:// instead of the internet.
    endpoint = f"memory://docs/{block.where}"
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", endpoint)
    conversation_tracker.close()
    runner = RUNNERS.get((block.page, block.title)) or RUNNERS.get((block.page, block.index))
    try:
        with model_server(block.where, monkeypatch):
            if runner is not None:
                runner(block, Context(endpoint, tmp_path, monkeypatch, request))
            else:
                exec(compile(block.code, block.where, "exec"), {"__name__": "__docs__"})
    finally:
        conversation_tracker.close(timeout=5)
    assert "Traceback" not in capsys.readouterr().err


def test_every_python_block_is_found() -> None:
    """A fence the runner would miss (```py3, ```pycon ...) fails here instead of rotting."""
    missed = []
    for name, path in pages():
        for lang, _, code in fences(path.read_text(encoding="utf-8")):
            if lang not in PYTHON_LANGS and lang.startswith("py"):
                missed.append(f"{name}: ```{lang} {code[:40]!r}")
    assert missed == []
    assert len(ALL) >= 60  # README.md and docs/ held 62 when this was written


def test_every_recipe_runner_has_its_block() -> None:
    """A runner whose block was renamed or moved would silently never run."""
    keys = {(b.page, b.title) for b in ALL} | {(b.page, b.index) for b in ALL}
    assert sorted(map(str, set(RUNNERS) - keys)) == []


def test_readme_quick_start_reports_the_documented_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_block = next(b.code for b in ALL if "send_tracked_data" in b.code)
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", "memory://docs/quick")
    conversation_tracker.close()
    try:
        exec(compile(sync_block, "README", "exec"), {})
    finally:
        conversation_tracker.close(timeout=5)
    out = capsys.readouterr().out
    assert "'questions': 1" in out
    assert "'answers': 1" in out
    assert "'errors': 0" in out
