"""Fixtures for the reliability suite.

Sizes: the suite runs shortened by default (CI's ``tests`` session, well under
90 s on two cores) and in full with ``AGENTSIGHT_RELIABILITY_FULL=1``
(``nox -s reliability``).  Every server, proxy, loop and process a fixture
starts is stopped in its finalizer, even when the test fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from reliability_support import (
    FULL,
    AllRecords,
    CollectorProcess,
    FaultProxy,
    LoopThread,
    Policy,
)

from agentsight_collector import LocalCollector


def pytest_report_header() -> str:
    return f"reliability suite: {'FULL' if FULL else 'shortened (CI)'} sizes"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[LocalCollector]:
    """The real collector, in-process on a free loopback port, accepting any well-formed key."""
    running = LocalCollector(tmp_path / "collector.db", dev=True)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fault_proxy(collector: LocalCollector) -> Iterator[Callable[[Policy], FaultProxy]]:
    """``fault_proxy(policy)``: a started :class:`FaultProxy` in front of ``collector``."""
    started: list[FaultProxy] = []

    def make(policy: Policy) -> FaultProxy:
        proxy = FaultProxy(collector.port, policy).start()
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def collector_process(tmp_path: Path) -> Iterator[Callable[[], CollectorProcess]]:
    """``collector_process()``: ``agentsight-async serve --dev`` as a child process."""
    started: list[CollectorProcess] = []

    def make() -> CollectorProcess:
        n = len(started)
        proc = CollectorProcess(tmp_path / f"proc{n}.db", tmp_path / f"proc{n}.log").start()
        started.append(proc)
        return proc

    try:
        yield make
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.stop()


@pytest.fixture
def all_logs() -> Iterator[AllRecords]:
    """Capture everything at DEBUG: the SDK's, the collector's, httpx's and httpcore's loggers."""
    handler = AllRecords()
    root = logging.getLogger()
    names = ("agentsight_async", "agentsight_collector", "httpx", "httpcore")
    saved = {n: logging.getLogger(n).level for n in names}
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
