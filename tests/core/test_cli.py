"""``agentsight-async``: sub-commands come from entry points, a missing extra is explained."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from agentsight_async.__main__ import COMMANDS_GROUP, main

# Runs the command line where the collector's libraries cannot be imported,
# as after a plain ``pip install agentsight-async``.
WITHOUT_EXTRA = """
import sys
for name in ("starlette", "uvicorn", "jinja2", "multipart", "python_multipart"):
    sys.modules[name] = None
if sys.argv[1] == "-m":  # python -m agentsight_collector ...
    import runpy
    sys.argv[1:] = sys.argv[3:]
    runpy.run_module("agentsight_collector", run_name="__main__", alter_sys=True)
from agentsight_async.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_serve_and_demo_are_registered_in_the_entry_point_group() -> None:
    found = {ep.name: ep.value for ep in entry_points(group=COMMANDS_GROUP)}
    assert found.keys() >= {"serve", "demo"}
    assert found["serve"].startswith("agentsight_collector.")
    assert found["demo"].startswith("agentsight_collector.")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_help_of_each_command_is_plain_text(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("starlette")
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: agentsight-async {command}" in out
    for markup in ("``", ":class:", ":func:", ":data:"):
        assert markup not in out


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out
    assert "demo" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "--dev", "--port", "1"],
        ["demo"],
        ["-m", "agentsight_collector", "--dev"],
    ],
)
def test_without_the_collector_extra_the_command_says_what_to_install(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'agentsight-async[collector]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    from agentsight_async import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"agentsight-async {__version__}"


def test_every_option_of_every_command_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    """Plain help: each option has words after it, and no reStructuredText leaks through."""
    for command in ("serve", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        lines = capsys.readouterr().out.splitlines()
        assert not [line for line in lines if "``" in line or ":class:" in line]
        options = [i for i, line in enumerate(lines) if line.startswith("  -")]
        assert options, command
        for i in options:
            # argparse puts the help after the option on the same line (two or more
            # spaces apart), or alone on the next line when the option is long
            spec, _, same_line = lines[i].strip().partition("  ")
            next_line = lines[i + 1] if i + 1 < len(lines) else ""
            explained = same_line.strip() or (next_line.startswith(" " * 10) and next_line.strip())
            assert explained, f"{command}: {spec!r} has no help"
