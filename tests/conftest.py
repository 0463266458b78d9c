"""Shared fixtures: a clean environment and a fresh singleton for every test."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator

import pytest

# asyncio debug mode for every loop the tests create - theirs and the SDK's own
# (read when a loop is created): never-awaited coroutines, non-threadsafe calls
# and callbacks that hold a loop too long are reported.
os.environ["PYTHONASYNCIODEBUG"] = "1"

from agentsight_async import conversation_tracker
from agentsight_async.testing import clear_recorded

#: pytester runs our pytest plugin (and the docs' example test files) in inner sessions.
pytest_plugins = ["pytester"]


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


#: A callback holding the test's event loop this long is a blocking call, and fails its test.
#: asyncio logs from 0.1 s on, but on a loaded 2-core machine (a collector subprocess
#: starting beside the test) a step can take over a second only because the OS ran
#: something else; two seconds is a wait, not noise.  (Event-loop
#: lag itself is measured by the benchmarks, with a probe, not asserted here.)
BLOCKING_SECONDS = 2.0
_SLOW = re.compile(r"took (\d+(?:\.\d+)?) seconds")


class _SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Only the test's own loop (pytest-asyncio runs it in the main thread) is the
        # user's loop; a loop thread of ours or a collector's can look slow only
        # because another thread held the GIL meanwhile.
        if record.thread != threading.main_thread().ident:
            return
        message = record.getMessage()
        match = _SLOW.search(message)
        if match and float(match.group(1)) >= BLOCKING_SECONDS:
            self.records.append(message)


@pytest.fixture(autouse=True)
def _no_blocking_in_event_loops(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which any event loop was blocked (asyncio debug mode reports it).

    A test that blocks a loop on purpose (the sync API called inside a coroutine)
    is marked ``allow_blocking``.
    """
    handler = _SlowCallbacks()
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.addHandler(handler)
    try:
        yield
    finally:
        asyncio_logger.removeHandler(handler)
    if handler.records and request.node.get_closest_marker("allow_blocking") is None:
        pytest.fail("an event loop was blocked:\n" + "\n".join(handler.records[:5]))
