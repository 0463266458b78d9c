"""No silent surprises: a truthful flush, configuration errors that explicit calls raise,
a warning when the blocking API holds a running event loop.

Each of these behaved otherwise before: flush() answered True with nothing
delivered; a malformed key left the singleton answering a summary of zeros; a
loopback collector without a key was "not local"; the blocking API inside a
coroutine blocked its loop without a word.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from agentsight_async import (
    AsyncConversationTracker,
    ConversationTracker,
    FlushResult,
    InvalidApiKeyException,
    conversation_tracker,
)
from agentsight_async import _pipeline as pipeline_module
from agentsight_async.testing import DUMMY_API_KEY
from agentsight_collector import LocalCollector, generate_api_key

MALFORMED_KEY = "ags_not-a-real-key"


def test_flush_result_truth_and_counts() -> None:
    assert FlushResult()  # nothing was queued: nothing is missing
    assert FlushResult(delivered=3)
    assert not FlushResult(delivered=2, pending=1)
    failed = FlushResult(delivered=1, dropped={"rejected": 2})
    assert not failed
    assert failed.dropped_total == 2


async def test_flush_is_true_only_when_everything_was_delivered() -> None:
    async with AsyncConversationTracker(api_endpoint="memory://truth-ok") as tracker:
        for i in range(5):
            await tracker.track_human_message(f"m{i}", conversation_id="c")
        result = await tracker.flush(timeout=10)
    assert result
    assert (result.delivered, result.dropped, result.pending) == (5, {}, 0)


async def test_flush_is_false_when_the_host_is_unreachable() -> None:
    tracker = AsyncConversationTracker(
        api_key=DUMMY_API_KEY,
        endpoint="http://127.0.0.1:9",
        retry_budget=0.3,
        request_timeout=0.2,
        _env_file=None,
    )
    async with tracker:
        await tracker.track_human_message("lost", conversation_id="c")
        result = await tracker.flush(timeout=10)
    assert not result
    assert result.dropped == {"retries_exhausted": 1}
    assert result.pending == 0


def test_flush_is_false_when_the_key_is_refused() -> None:
    with LocalCollector(api_keys=[generate_api_key()]) as collector:
        tracker = ConversationTracker(api_key=DUMMY_API_KEY, endpoint=collector.url)
        try:
            tracker.track_human_message("refused", conversation_id="c")
            result = tracker.flush(timeout=10)
        finally:
            tracker.close()
    assert not result
    assert result.dropped == {"rejected": 1}


async def test_flush_counts_what_is_still_pending_at_the_deadline() -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/me/"):
            return httpx.Response(200, json={})
        await release.wait()
        return httpx.Response(201, json={})

    tracker = AsyncConversationTracker(
        api_key=DUMMY_API_KEY,
        endpoint="https://agentsight.test",
        transport=httpx.MockTransport(slow),
        _env_file=None,
    )
    async with tracker:
        for i in range(3):
            await tracker.track_human_message(f"m{i}", conversation_id="c")
        early = await tracker.flush(timeout=0.2)
        assert not early
        assert (early.delivered, early.pending) == (0, 3)  # not lost: still queued
        release.set()
        late = await tracker.flush(timeout=10)
    assert late
    assert late.delivered == 3


def test_close_and_aclose_report_what_became_of_the_queue() -> None:
    tracker = ConversationTracker(endpoint="memory://truth-close")
    tracker.track_human_message("bye", conversation_id="c")
    result = tracker.close(timeout=5)
    assert result
    assert result.delivered == 1
    assert tracker.close() == FlushResult()  # closing again: nothing was queued

    async def main() -> FlushResult:
        a = AsyncConversationTracker(api_endpoint="memory://truth-aclose")
        await a.track_human_message("bye", conversation_id="c")
        return await a.aclose()

    assert asyncio.run(main()).delivered == 1


def test_a_malformed_key_in_the_environment_makes_explicit_calls_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENTSIGHT_API_KEY", MALFORMED_KEY)
    conversation_tracker.close()
    try:
        with caplog.at_level(logging.WARNING, logger="agentsight_async"):
            conversation_tracker.get_or_create_conversation("c")  # never raises
            conversation_tracker.track_human_message("safe no-op")
        with pytest.raises(InvalidApiKeyException, match="AGENTSIGHT_API_KEY") as raised:
            conversation_tracker.send_tracked_data(timeout=1)
        with pytest.raises(InvalidApiKeyException):
            conversation_tracker.flush(timeout=1)
        with pytest.raises(InvalidApiKeyException):
            conversation_tracker.initialize_conversation("other", timeout=1)
        assert conversation_tracker.stats()["enabled"] is False
    finally:
        conversation_tracker.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "malformed" in logged
    assert "malformed" in str(raised.value)
    assert MALFORMED_KEY not in logged
    assert MALFORMED_KEY not in str(raised.value)


def test_an_explicit_tracker_with_a_malformed_key_raises_at_once() -> None:
    with pytest.raises(InvalidApiKeyException, match="AGENTSIGHT_API_KEY"):
        ConversationTracker(api_key=MALFORMED_KEY)


def test_a_collector_on_this_machine_needs_no_key(caplog: pytest.LogCaptureFixture) -> None:
    with LocalCollector(dev=True) as collector:
        with caplog.at_level(logging.WARNING, logger="agentsight_async"):
            tracker = ConversationTracker(endpoint=collector.url)
        try:
            tracker.track_human_message("no key needed", conversation_id="c")
            result = tracker.flush(timeout=10)
        finally:
            tracker.close()
    assert result
    assert result.delivered == 1
    assert not [r for r in caplog.records if "disabled" in r.getMessage()]


def test_tracking_switched_off_on_purpose_stays_a_quiet_no_op() -> None:
    tracker = ConversationTracker(endpoint="memory://off", enabled=False)
    try:
        tracker.track_human_message("ignored", conversation_id="c")
        assert tracker.flush(timeout=1) == FlushResult()
        assert tracker.send_tracked_data(conversation_id="c", timeout=1)["items"] == []
    finally:
        tracker.close()


@pytest.mark.allow_blocking
def test_the_blocking_api_inside_a_running_loop_warns_once(
    memory_singleton: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline_module, "_blocked_warned", False)

    async def handler() -> None:
        conversation_tracker.get_or_create_conversation("in-loop")
        for _ in range(3):
            conversation_tracker.track_human_message("from a coroutine")
            conversation_tracker.send_tracked_data(timeout=10)

    with caplog.at_level(logging.WARNING, logger="agentsight_async"):
        asyncio.run(handler())
    warnings = [r.getMessage() for r in caplog.records if "blocked a running" in r.getMessage()]
    assert len(warnings) == 1  # once per process, not per call
    assert "send_tracked_data()" in warnings[0]
    assert " ms" in warnings[0]
    assert "conversation_tracker.aio.send_tracked_data()" in warnings[0]


def test_the_blocking_api_outside_a_loop_does_not_warn(
    memory_singleton: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pipeline_module, "_blocked_warned", False)
    with caplog.at_level(logging.WARNING, logger="agentsight_async"):
        conversation_tracker.get_or_create_conversation("plain")
        conversation_tracker.track_human_message("from a script")
        conversation_tracker.send_tracked_data(timeout=10)
    assert not [r for r in caplog.records if "blocked a running" in r.getMessage()]


# --- outages visible while they last; on_error once per lost batch, on every protocol ---------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_an_outage_is_visible_while_it_lasts(caplog: pytest.LogCaptureFixture) -> None:
    import time

    port = _free_port()  # nothing listens there yet: the collector is "down"
    with caplog.at_level(logging.INFO, logger="agentsight_async"):
        tracker = ConversationTracker(
            api_key=DUMMY_API_KEY,
            endpoint=f"http://127.0.0.1:{port}",
            flush_interval=0.05,
            request_timeout=1,
            retry_budget=120,
        )
        try:
            tracker.track_human_message("during the outage", conversation_id="o")
            deadline = time.monotonic() + 15
            while tracker.stats()["last_error"] is None:  # set by the first failed attempt
                assert time.monotonic() < deadline, "no error recorded during the outage"
                time.sleep(0.02)
            during = tracker.stats()
            failing = [r for r in caplog.records if "delivery is failing" in r.getMessage()]
            with LocalCollector(port=port, api_keys=[DUMMY_API_KEY]):
                result = tracker.flush(timeout=60)
                after = tracker.stats()
        finally:
            tracker.close()
    assert during["delivered"] == 0
    assert during["failing_since"] is not None
    assert "ConnectError" in during["last_error"]
    assert len(failing) == 1  # one warning when it starts, not one per attempt
    assert failing[0].levelno == logging.WARNING
    assert "1 event(s) queued" in failing[0].getMessage()
    assert result.delivered == 1
    assert after["failing_since"] is None
    recovered = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1
    assert recovered[0].levelno == logging.INFO


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_on_error_is_called_once_per_lost_batch_whatever_the_protocol(protocol: str) -> None:
    calls: list[tuple[BaseException, dict[str, object]]] = []
    with LocalCollector(api_keys=[generate_api_key()]) as collector:  # refuses our key
        tracker = ConversationTracker(
            api_key=DUMMY_API_KEY,
            endpoint=collector.url,
            protocol=protocol,
            on_error=lambda exc, ctx: calls.append((exc, ctx)),
        )
        try:
            tracker.track_human_message("one", conversation_id="k")
            tracker.track_agent_message("two", conversation_id="k")
            result = tracker.flush(timeout=10)
        finally:
            tracker.close()
    assert result.dropped == {"rejected": 2}
    assert len(calls) == 1  # not once per item (REST) nor per request
    exc, context = calls[0]
    assert context["reason"] == "rejected"
    assert context["events"] == 2
    assert context["conversation_ids"] == ["k"]
    assert context["exporter"] == protocol
    assert getattr(exc, "status_code", None) in (401, 403)
    assert DUMMY_API_KEY not in str(exc)
