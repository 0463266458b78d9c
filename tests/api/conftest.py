"""Fixtures for the reading and managing clients: scripted transports, a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from api_support import BASE, KEY, FakeTime, Script

from agentsight_async import AsyncAgentSightAPI, AsyncConversationManager


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_api(fake_time: FakeTime) -> Callable[..., AsyncAgentSightAPI]:
    """An :class:`AsyncAgentSightAPI` on a :class:`Script`, with the fake clock."""

    def make(script: Script, **options: Any) -> AsyncAgentSightAPI:
        return AsyncAgentSightAPI(
            KEY,
            BASE,
            transport=script.transport,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            **options,
        )

    return make


@pytest.fixture
def make_manager(fake_time: FakeTime) -> Callable[..., AsyncConversationManager]:
    """An :class:`AsyncConversationManager` on a :class:`Script`, with the fake clock."""

    def make(script: Script, **options: Any) -> AsyncConversationManager:
        return AsyncConversationManager(
            KEY,
            BASE,
            transport=script.transport,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            **options,
        )

    return make
