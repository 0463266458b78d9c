"""Capture tests: the real SDKs against a loopback fake model server; nothing leaks out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fake server

from fake_model_server import FakeModelServer

from agentsight_async import uninstrument
from agentsight_async.integrations import _capture


@pytest.fixture(autouse=True)
def _no_capture_left() -> Iterator[None]:
    """Every test starts and ends with nothing instrumented and fresh counters."""
    uninstrument()
    _capture.reset()
    try:
        yield
    finally:
        uninstrument()
        _capture.reset()


@pytest.fixture
def model_server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server
