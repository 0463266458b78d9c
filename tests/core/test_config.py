"""Settings: environment, .env, overrides, and one clear error naming the variable."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from agentsight_async import (
    AsyncConversationTracker,
    ConfigurationError,
    ConversationTracker,
    NoApiKeyException,
    Settings,
)
from agentsight_async._config import load_settings
from agentsight_async.testing import DUMMY_API_KEY as TEST_KEY


def test_defaults() -> None:
    s = load_settings()
    assert s.api_endpoint == "https://api.agentsight.io"
    assert s.protocol == "ingest"
    assert s.flush_interval == 1.0
    assert s.batch_size == 500
    assert s.batch_bytes == 1 << 20
    assert s.max_queue_events == 100_000
    assert s.max_queue_bytes == 64 << 20
    assert s.retry_budget == 60.0
    assert s.shutdown_timeout == 5.0
    assert s.verify_tls is True
    assert s.tracking_disabled_reason is not None  # no key, not local


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f'AGENTSIGHT_API_KEY="{TEST_KEY}"\nAGENTSIGHT_PROTOCOL=rest\nAGENTSIGHT_BATCH_SIZE=7\n'
    )
    monkeypatch.setenv("AGENTSIGHT_BATCH_SIZE", "9")  # the environment wins over .env
    s = load_settings()
    assert s.api_key is not None
    assert s.api_key.get_secret_value() == TEST_KEY
    assert s.protocol == "rest"
    assert s.batch_size == 9
    assert load_settings(batch_size=3).batch_size == 3  # arguments win over both


def test_key_is_case_insensitive_and_trimmed() -> None:
    s = load_settings(api_key="  " + TEST_KEY.upper().replace("AGS_", "ags_") + " ")
    assert s.api_key is not None


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("AGENTSIGHT_API_KEY", "not-a-key", "AGENTSIGHT_API_KEY: the key is malformed"),
        ("AGENTSIGHT_API_KEY", "ags_" + "g" * 32 + "_abc123", "AGENTSIGHT_API_KEY"),
        ("AGENTSIGHT_API_ENDPOINT", "ftp://example.com", "AGENTSIGHT_API_ENDPOINT"),
        ("AGENTSIGHT_API_ENDPOINT", "https://", "AGENTSIGHT_API_ENDPOINT"),
        ("AGENTSIGHT_API_ENDPOINT", "sqlite://", "AGENTSIGHT_API_ENDPOINT"),
        ("AGENTSIGHT_PROTOCOL", "grpc", "AGENTSIGHT_PROTOCOL"),
        ("AGENTSIGHT_LOG_LEVEL", "LOUD", "AGENTSIGHT_LOG_LEVEL"),
        ("AGENTSIGHT_FLUSH_INTERVAL", "-1", "AGENTSIGHT_FLUSH_INTERVAL"),
        ("AGENTSIGHT_FLUSH_INTERVAL", "soon", "AGENTSIGHT_FLUSH_INTERVAL"),
        ("AGENTSIGHT_BATCH_SIZE", "0", "AGENTSIGHT_BATCH_SIZE"),
        ("AGENTSIGHT_ENABLED", "maybe", "AGENTSIGHT_ENABLED"),
        ("AGENTSIGHT_MAX_QUEUE_BYTES", "10", "AGENTSIGHT_MAX_QUEUE_BYTES"),
        ("AGENTSIGHT_RETRY_BUDGET", "0", "AGENTSIGHT_RETRY_BUDGET"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert needle in str(info.value)
    assert value not in str(info.value) or env != "AGENTSIGHT_API_KEY"


def test_key_never_in_errors_or_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "ags_" + "z" * 32 + "_abc123"
    monkeypatch.setenv("AGENTSIGHT_API_KEY", bad)
    with pytest.raises(ConfigurationError) as info:
        AsyncConversationTracker()
    assert bad not in str(info.value)
    assert bad not in repr(info.value)
    good = load_settings(api_key=TEST_KEY)
    assert TEST_KEY not in repr(good)
    assert TEST_KEY not in str(good.model_dump())
    tracker = AsyncConversationTracker(api_key=TEST_KEY, api_endpoint="memory://k")
    assert TEST_KEY not in repr(tracker)
    assert TEST_KEY not in str(tracker.stats())


def test_explicit_facade_raises_but_the_singleton_disables_itself(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENTSIGHT_FLUSH_INTERVAL", "never")
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_FLUSH_INTERVAL"):
        ConversationTracker()
    lazy = ConversationTracker(lazy=True)
    with caplog.at_level(logging.ERROR, logger="agentsight_async"):
        lazy.track_human_message("still safe", conversation_id="c")
    assert "AGENTSIGHT_FLUSH_INTERVAL" in caplog.text
    assert lazy.stats()["enabled"] is False
    assert lazy.stats()["dropped"]["disabled"] == 1
    lazy.close()


def test_import_without_key_never_raises_and_opens_nothing() -> None:
    code = (
        "import threading, agentsight_async\n"
        "from agentsight_async import conversation_tracker\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "print(repr(conversation_tracker))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "not started" in out.stdout


def test_no_key_and_remote_endpoint_disables_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentsight_async"):
        tracker = ConversationTracker()
        for _ in range(3):
            tracker.track_human_message("dropped quietly", conversation_id="c")
    warnings = [r for r in caplog.records if "tracking is disabled" in r.getMessage()]
    assert len(warnings) == 1
    assert "AGENTSIGHT_API_KEY" in warnings[0].getMessage()
    assert tracker.stats()["enabled"] is False
    assert tracker.stats()["dropped"]["disabled"] == 3
    # explicit delivery calls do not pretend: they raise what disabled tracking
    with pytest.raises(NoApiKeyException, match="AGENTSIGHT_API_KEY"):
        tracker.send_tracked_data(conversation_id="c", timeout=1)
    with pytest.raises(NoApiKeyException):
        tracker.flush(timeout=1)
    tracker.close()


def test_settings_object_is_frozen() -> None:
    s = Settings()
    with pytest.raises(Exception):  # noqa: B017,PT011 - pydantic's frozen-instance error
        s.batch_size = 3  # type: ignore[misc]
