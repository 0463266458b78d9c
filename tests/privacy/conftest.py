"""Fixtures for the privacy suite: a real collector on loopback (two for two destinations)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _collector(path: Path) -> Any:
    pytest.importorskip("starlette")
    from agentsight_collector import LocalCollector

    return LocalCollector(path, dev=True)


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Any]:
    """The real collector, in-process on a free loopback port (any well-formed key)."""
    with _collector(tmp_path / "collector.db") as running:
        yield running


@pytest.fixture
def second_collector(tmp_path: Path) -> Iterator[Any]:
    """Another one: a second destination."""
    with _collector(tmp_path / "collector2.db") as running:
        yield running
