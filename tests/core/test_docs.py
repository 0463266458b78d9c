"""Every Python block in README.md and docs/ runs, so the documentation cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentsight_async import conversation_tracker

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, code in enumerate(BLOCK.findall(doc.read_text(encoding="utf-8"))):
            found.append((f"{doc.name}#{i}", code))
    return found


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_documentation_block_runs(
    where: str, code: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Blocks that send somewhere go to memory:// instead of the internet.
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", f"memory://docs/{where}")
    conversation_tracker.close()
    try:
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
