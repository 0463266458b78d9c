"""The README's main job: ``agentsight-async demo`` verifies the whole pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agentsight_async.__main__ import main


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_demo_runs_end_to_end_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    db = tmp_path / "demo.db"
    code = main(
        ["demo", "--conversations", "6", "--turns", "2", "--protocol", protocol, "--db", str(db)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verification      OK" in out
    assert "events tracked    66" in out  # 6 x (1 conversation + 2 x 4 + button + file)
    assert "events delivered  66" in out
    assert db.exists()


def test_demo_console_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentsight_async",
            "demo",
            "--conversations",
            "3",
            "--turns",
            "1",
            "--db",
            str(tmp_path / "d.db"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "verification      OK" in out.stdout


def test_demo_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--conversations", "0"]) == 2
    assert "--conversations" in capsys.readouterr().err
