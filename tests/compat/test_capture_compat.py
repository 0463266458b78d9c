"""Captured token totals: ours and the published 0.1.4 client, from the same calls.

Each client makes the calls of ``clients/capture_calls.py`` against its own fresh
fake model server (identical answers, so identical usage) into its own
collector; the per-conversation totals must equal what the server reported, and
each other.  0.1.4 runs in its own virtualenv with openai and anthropic added.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from compat_support import CLIENTS_DIR, KEY, SUBPROCESS_TIMEOUT, client_env, venv_root

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fake server
pytest.importorskip("openai")
pytest.importorskip("anthropic")

import capture_calls
from fake_model_server import FakeModelServer

from agentsight_async import ConversationTracker, instrument, uninstrument
from agentsight_collector import LocalCollector

SPEC = ["agentsight==0.1.4", "openai", "anthropic"]
#: Cache writes the fake server reports for the scenario's two Anthropic calls (2 each).
ANTHROPIC_CACHE_WRITES = 4
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "total_tokens",
)


def capture_venv() -> Path:
    """agentsight 0.1.4 plus the provider SDKs, in a virtualenv of its own (cached)."""
    venv = venv_root() / "agentsight-0.1.4-capture"
    python = venv / "bin" / "python"
    probe = (
        "import agentsight, openai, anthropic; from importlib.metadata import version; "
        "print(version('agentsight'))"
    )
    if python.exists():
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, env=client_env()
        )
        if done.stdout.strip() == "0.1.4":
            return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    for step in (
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *SPEC],
    ):
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, env=client_env())
        if done.returncode != 0:
            raise RuntimeError(f"{step} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return python


def totals(collector: LocalCollector) -> dict[str, int]:
    record = collector.storage.lookup(capture_calls.CONVERSATION_ID)
    assert record is not None
    detail = collector.storage.get_conversation(record)
    assert detail is not None
    return {k: int(detail["token_usage"][k]) for k in TOKEN_KEYS}


def expected(server: FakeModelServer) -> dict[str, int]:
    reported = server.reported
    return {
        "input_tokens": sum(r.prompt - r.cache_read - r.cache_write for r in reported),
        "output_tokens": sum(r.completion for r in reported),
        "cache_read_tokens": sum(r.cache_read for r in reported),
        "cache_write_tokens": sum(r.cache_write for r in reported),
        "total_tokens": sum(r.total for r in reported),
    }


def run_v014(python: Path) -> tuple[dict[str, int], dict[str, int], Any]:
    with FakeModelServer() as models, LocalCollector(api_keys=[KEY]) as collector:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            done = subprocess.run(
                [
                    str(python),
                    str(CLIENTS_DIR / "v014_capture_scenario.py"),
                    collector.url,
                    KEY,
                    models.openai_url,
                    models.anthropic_url,
                    str(out),
                ],
                capture_output=True,
                text=True,
                timeout=SUBPROCESS_TIMEOUT,
                env=client_env(),
                cwd=tmp,
            )
            assert done.returncode == 0, done.stderr[-4000:]
        return totals(collector), expected(models), len(models.reported)


def run_ours() -> tuple[dict[str, int], dict[str, int], Any]:
    with FakeModelServer() as models, LocalCollector(api_keys=[KEY]) as collector:
        tracker = ConversationTracker(api_key=KEY, endpoint=collector.url, protocol="ingest")
        try:
            instrument("openai", "anthropic", tracker=tracker)
            with tracker.conversation(capture_calls.CONVERSATION_ID):
                capture_calls.run(models.openai_url, models.anthropic_url)
            assert tracker.flush(timeout=10)
        finally:
            uninstrument()
            tracker.close(timeout=5)
        return totals(collector), expected(models), len(models.reported)


def test_token_totals_match_the_published_client_and_the_server() -> None:
    theirs, theirs_reported, their_calls = run_v014(capture_venv())
    ours, ours_reported, our_calls = run_ours()
    # the same calls against identical servers: identical usage reported
    assert ours_reported == theirs_reported
    assert our_calls == their_calls == capture_calls.CALLS
    assert ours == ours_reported
    # 0.1.4 predates OpenAI's cache-write count (prompt_tokens_details.cache_write_tokens)
    # and files those tokens as plain input: the same total, split differently.
    openai_writes = ours_reported["cache_write_tokens"] - ANTHROPIC_CACHE_WRITES
    assert theirs == {
        **theirs_reported,
        "input_tokens": theirs_reported["input_tokens"] + openai_writes,
        "cache_write_tokens": theirs_reported["cache_write_tokens"] - openai_writes,
    }
    for key in ("total_tokens", "output_tokens", "cache_read_tokens"):
        assert ours[key] == theirs[key], key
    assert (
        ours["input_tokens"] + ours["cache_write_tokens"]
        == theirs["input_tokens"] + theirs["cache_write_tokens"]
    )
