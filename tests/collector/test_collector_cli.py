"""``agentsight-async serve``: argument handling, key checks, a real start."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from collector_support import KEY

from agentsight_collector._cli import ENV_KEYS, add_serve_parser, collect_keys


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


def test_defaults_bind_loopback() -> None:
    args = _parse()
    assert (args.host, args.port, args.db, args.api_keys, args.dev) == (
        "127.0.0.1",
        8765,
        "./agentsight-local.db",
        [],
        False,
    )


def test_keys_from_flags_and_environment() -> None:
    args = _parse("--api-key", "a", "--api-key", "b")
    assert collect_keys(args.api_keys, {ENV_KEYS: " c, ,d "}) == ["a", "b", "c", "d"]


def test_refuses_to_start_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--db", "unused.db")
    assert args.func(args) == 2
    assert "no API key" in capsys.readouterr().err
    assert not Path("unused.db").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("dev", "command"),
    [
        (True, ["-m", "agentsight_async", "serve"]),  # the SDK's CLI, through the entry point
        (False, ["-m", "agentsight_collector"]),
    ],
)
def test_serve_runs_and_stops(tmp_path: Path, dev: bool, command: list[str]) -> None:
    port = _free_port()
    argv = ["--port", str(port), "--db", str(tmp_path / "cli.db")]
    env = {**os.environ}
    env.pop(ENV_KEYS, None)
    if dev:
        argv.append("--dev")
    else:
        env[ENV_KEYS] = KEY
    proc = subprocess.Popen(
        [sys.executable, *command, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.05)
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/me/",
            timeout=5,
            headers={"Authorization": f"Api-Key {KEY}"},
        )
        assert me.status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{port}/" in out
    assert KEY not in out + err
    assert ("DEV MODE" in err) is dev
