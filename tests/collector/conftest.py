"""Fixtures for the collector tests: a real server on loopback, real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from collector_support import AUTH, KEY

from agentsight_collector import LocalCollector, Storage


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LocalCollector]:
    with LocalCollector(tmp_path / "collector.db", api_keys=[KEY]) as running:
        yield running


@pytest.fixture
def client(collector: LocalCollector) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=collector.url, headers=AUTH, timeout=10) as c:
        yield c


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    with Storage(tmp_path / "storage.db") as s:
        yield s
