"""Fixtures for the OTLP tests: settings, stats, events and a real OTLP receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from otlp_support import API_KEY, EventFactory, OtlpReceiver, serve_receiver

from agentsight_async._config import Settings
from agentsight_async._stats import Stats


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_endpoint": "http://otel-collector.test:4318",
            "protocol": "otlp",
            "_env_file": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def stats() -> Stats:
    return Stats()


@pytest.fixture
def events() -> EventFactory:
    return EventFactory()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    yield from serve_receiver()


@pytest.fixture
def api_key() -> str:
    return API_KEY
