"""Shared fixtures: a clean environment and a fresh singleton for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from agentsight_async import conversation_tracker
from agentsight_async.testing import clear_recorded


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AGENTSIGHT_* variable and no .env leaks into a test from the machine."""
    for name in list(os.environ):
        if name.startswith("AGENTSIGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def memory_singleton(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The module-level ``conversation_tracker`` pointed at a fresh ``memory://`` store."""
    url = "memory://singleton"
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", url)
    conversation_tracker.close()
    clear_recorded()
    try:
        yield url
    finally:
        conversation_tracker.close(timeout=5)
        clear_recorded()
