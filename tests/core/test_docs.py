"""Every Python block in README.md and docs/ runs, so the documentation cannot rot."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentsight_async import conversation_tracker, uninstrument

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
#: The integration pages and the package their examples need (skipped without it).
NEEDS = {
    "openai.md": "openai",
    "anthropic.md": "anthropic",
    "langchain.md": "langchain_openai",
    "llama_index.md": "llama_index.llms.openai",
}


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        name = doc.relative_to(ROOT / "docs").as_posix() if doc.parent != ROOT else doc.name
        for i, code in enumerate(BLOCK.findall(doc.read_text(encoding="utf-8"))):
            found.append((f"{name}#{i}", code))
    return found


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


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_documentation_block_runs(
    where: str, code: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Blocks that send somewhere go to memory:// instead of the internet.
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", f"memory://docs/{where}")
    conversation_tracker.close()
    try:
        with model_server(where, monkeypatch):
            exec(compile(code, where, "exec"), {"__name__": "__docs__"})
    finally:
        conversation_tracker.close(timeout=5)
    assert "Traceback" not in capsys.readouterr().err


def test_readme_quick_start_reports_the_documented_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync_block = next(code for where, code in blocks() if "send_tracked_data" in code)
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
