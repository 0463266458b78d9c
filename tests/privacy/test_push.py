"""push: a recording (or a spool) uploaded with either protocol into the real collector.

Everything is real: recordings written by the SDK's ``sqlite:///`` exporter,
the collector serving HTTP on loopback, the CLI in a subprocess, a SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from privacy_support import FULL, PII, counts, dump, record_messages, record_mixed, rows

import agentsight_async
from agentsight_async import PushResult, push
from agentsight_async._events import Event
from agentsight_async._exceptions import ConfigurationError, NoApiKeyException
from agentsight_async._push import default_state_path, parse_since, summary
from agentsight_async._recording import RecordingError, open_source
from agentsight_async._spool import Spool
from agentsight_async._stats import Stats


def transcript(db_path: str | Path) -> dict[str, list[tuple[str, str]]]:
    """Each conversation's messages (sender, content), in transcript order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for cid, sender, content in rows(
        db_path,
        "SELECT c.conversation_id, m.sender, m.content FROM messages m "
        "JOIN conversations c ON c.id = m.conversation ORDER BY c.conversation_id, m.ts_us, m.id",
    ):
        out.setdefault(cid, []).append((sender, content))
    return out


def go(recording: Path, collector: Any, **kwargs: Any) -> PushResult:
    kwargs.setdefault("api_endpoint", collector.url)
    kwargs.setdefault("api_key", collector.api_key)
    return push(recording, **kwargs)


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_a_recording_arrives_whole_and_a_second_push_sends_nothing(
    tmp_path: Path, collector: Any, protocol: str
) -> None:
    rec = record_mixed(tmp_path / "rec.db")
    first = go(rec, collector, protocol=protocol)
    assert first
    assert (first.read, first.sent, first.unsupported, first.failed) == (40, 40, 0, 0)
    got = counts(collector.db_path)
    want = counts(rec)
    if protocol == "rest":  # a token_usage action is also an action row over REST
        want["actions"] += want["token_usage"]
    assert got == want
    assert transcript(collector.db_path) == transcript(rec)
    assert rows(collector.db_path, "SELECT data FROM attachment_files ORDER BY id") == rows(
        rec, "SELECT data FROM attachment_files ORDER BY id"
    )
    if protocol == "ingest":  # the recording's own ids, so the server's dedupe holds too
        assert sorted(rows(collector.db_path, "SELECT span_id FROM spans")) == sorted(
            rows(rec, "SELECT span_id FROM spans")
        )

    second = go(rec, collector, protocol=protocol)
    assert (second.sent, second.already_sent, second.read) == (0, 40, 40)
    assert counts(collector.db_path) == got
    assert "40 sent before" in summary(second)


def test_progress_is_per_destination(tmp_path: Path, collector: Any, second_collector: Any) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    assert go(rec, collector).sent == 16
    assert go(rec, second_collector).sent == 16  # another endpoint starts from zero
    assert go(rec, collector).sent == 0
    restarted = go(rec, collector, restart=True)  # forgotten: sent again, deduped by the server
    assert restarted.sent == 16
    assert counts(collector.db_path) == counts(second_collector.db_path)


def test_default_redaction_set_removes_all_generated_pii_from_both_protocols(
    tmp_path: Path, collector: Any, second_collector: Any
) -> None:
    rec = record_mixed(tmp_path / "rec.db")
    assert any(v in dump(rec) for v in PII.values())  # the recording itself holds it
    for protocol, target in (("ingest", collector), ("rest", second_collector)):
        result = go(rec, target, protocol=protocol, redact="all")
        assert result.sent == 40
        assert set(result.redactions) == set(PII)
        stored = dump(target.db_path)
        for kind, value in PII.items():
            assert value not in stored, (protocol, kind)
        assert "[email]" in stored
        assert "10.1.2.3" not in stored  # customer_ip_address is removed with "ip"


def test_before_send_drops_a_kind_and_an_exception_drops_the_event(
    tmp_path: Path, collector: Any
) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    seen: list[dict[str, Any]] = []

    def before_send(event: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(event)
        if event["kind"] == "button":
            return None
        if event["kind"] == "token_usage":
            raise RuntimeError("boom")
        if event["kind"] == "answer":
            return {**event, "data": {**event["data"], "content": "rewritten"}}
        return event

    result = go(rec, collector, before_send=before_send, redact="email")
    assert (result.sent, result.dropped) == (12, 4)
    assert set(seen[0]) == {"kind", "conversation_id", "timestamp", "data"}
    assert "[email]" in seen[0]["data"]["name"]  # redaction ran first
    c = counts(collector.db_path)
    assert (c["buttons"], c["token_usage"]) == (0, 0)
    assert {
        m for (m,) in rows(collector.db_path, "SELECT content FROM messages WHERE sender = 'agent'")
    } == {"rewritten"}
    # dropped events are not remembered as sent: a push without the hook sends them
    assert go(rec, collector).sent == 4


def test_dry_run_sends_and_writes_nothing(tmp_path: Path, collector: Any) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    result = go(rec, collector, dry_run=True, redact="all")
    assert (result.would_send, result.sent, result.dry_run) == (16, 0, True)
    assert result.redactions
    assert not default_state_path(rec).exists()
    assert counts(collector.db_path)["messages"] == 0
    assert "dry run: 16 event(s) would be sent" in summary(result)


def test_since_skips_older_events_and_a_later_push_sends_them(
    tmp_path: Path, collector: Any
) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    future = go(rec, collector, since="2999-01-01")
    assert (future.sent, future.skipped_since) == (0, 16)
    recent = go(rec, collector, since="1h")
    assert recent.sent == 16
    assert go(rec, collector).already_sent == 16


def test_parse_since() -> None:
    from datetime import datetime, timezone

    now = datetime(2024, 5, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2h", now) == parse_since("2024-05-02T10:00:00Z")
    assert parse_since("1d", now) == parse_since(datetime(2024, 5, 1, 12, 0))
    assert parse_since(None) is None
    with pytest.raises(ConfigurationError, match="since"):
        parse_since("yesterday")


def test_an_unreachable_endpoint_fails_the_push_and_the_next_one_resumes(
    tmp_path: Path, collector: Any
) -> None:
    import socket

    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    failed = push(rec, api_endpoint=dead, retry_budget=0.5, batch_size=4, protocol="rest")
    assert not failed
    assert failed.failed > 0
    assert failed.sent == 0
    assert failed.last_error
    assert "not delivered (push again)" in summary(failed)
    result = go(rec, collector, state=default_state_path(rec))
    assert result.sent == 16


def test_errors_are_clear(tmp_path: Path, collector: Any) -> None:
    with pytest.raises(RecordingError, match="no such recording"):
        push(tmp_path / "missing.db", api_endpoint=collector.url)
    (tmp_path / "not.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(RecordingError, match="not a SQLite recording"):
        push(tmp_path / "not.db", api_endpoint=collector.url)
    rec = record_mixed(tmp_path / "rec.db", conversations=1)
    with pytest.raises(NoApiKeyException):
        push(rec, api_endpoint="https://api.agentsight.example")
    with pytest.raises(ConfigurationError, match="the recording itself"):
        push(rec, api_endpoint=f"sqlite:///{rec}")
    from agentsight_async._config import load_settings

    with pytest.raises(TypeError, match="not both"):
        push(rec, settings=load_settings(), api_endpoint=collector.url)


def test_push_runs_from_inside_an_event_loop(tmp_path: Path, collector: Any) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=1)

    async def main() -> PushResult:
        return await agentsight_async.apush(rec, api_endpoint=collector.url)

    assert asyncio.run(main()).sent == 8


def test_progress_callback_reaches_the_total(tmp_path: Path, collector: Any) -> None:
    rec = record_messages(tmp_path / "rec.db", 1200, conversations=3)
    calls: list[tuple[int, int]] = []
    result = go(rec, collector, batch_size=500, progress=lambda d, t: calls.append((d, t)))
    assert result.sent == 1200
    assert calls[0] == (0, 1200)
    assert calls[-1] == (1200, 1200)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# --- spool directories ------------------------------------------------------------------------


def _spool_events(directory: Path, n: int, *, keep_open: bool = False) -> Spool | None:
    async def write() -> Spool:
        spool = Spool(directory, Stats())
        await spool.open()
        items = [
            (
                Event(
                    "question",
                    f"s{i % 2}",
                    1_700_000_000_000_000_000 + i * 1000,
                    10_000 + i,
                    {
                        "content": f"spooled {i} {PII['email']}",
                        "sender": "end_user",
                        "metadata": {},
                    },
                    100,
                ),
                {"name": "spooled"},
            )
            for i in range(n)
        ]
        await spool.write(items)
        if not keep_open:
            await spool.close()
        return spool

    spool = asyncio.run(write())
    return spool if keep_open else None


def test_a_spool_directory_of_a_dead_process_is_pushed(tmp_path: Path, collector: Any) -> None:
    spool_dir = tmp_path / "spool"
    _spool_events(spool_dir, 6)
    result = go(spool_dir, collector, redact="email")
    assert (result.sent, result.redactions) == (6, {"email": 6})
    assert transcript(collector.db_path)["s0"][0] == ("end_user", "spooled 0 [email]")
    assert (spool_dir / "push-progress.db").exists()
    assert list(spool_dir.glob("spool-*.db"))  # push never deletes its input
    assert go(spool_dir, collector).already_sent == 6


def test_a_live_process_spool_file_is_skipped(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    _spool_events(spool_dir, 3)
    source = open_source(spool_dir)
    assert source.total() == 3
    assert sum(len(p.records) for p in source.pages(100, 1 << 20)) == 3
    source.close()
    # a process that holds its lock is alive: its file is not read
    import fcntl

    lock = next(spool_dir.glob("spool-*.lock"))
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        source = open_source(spool_dir)
        assert sum(len(p.records) for p in source.pages(100, 1 << 20)) == 0
        assert source.live_files == 1  # type: ignore[union-attr]
        source.close()
    finally:
        os.close(fd)


# --- the command ------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentsight_async", "push", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_the_command(tmp_path: Path, collector: Any) -> None:
    rec = record_mixed(tmp_path / "rec.db", conversations=2)
    env = {"AGENTSIGHT_API_KEY": collector.api_key, "AGENTSIGHT_REDACT": "all"}
    dry = _cli(str(rec), "--endpoint", collector.url, "--dry-run", "--no-progress", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 16 event(s) would be sent" in dry.stdout
    first = _cli(str(rec), "--endpoint", collector.url, "--protocol", "rest", env=env)
    assert first.returncode == 0, first.stderr
    assert "pushed 16 event(s) to rest http://127.0.0.1" in first.stdout
    assert "redacted" in first.stdout
    assert PII["email"] not in first.stdout + first.stderr  # nothing redacted is printed
    again = _cli(
        str(rec), "--endpoint", collector.url, "--protocol", "rest", "--no-progress", env=env
    )
    assert "pushed 0 event(s)" in again.stdout
    assert "16 sent before" in again.stdout
    missing = _cli(str(tmp_path / "nope.db"), "--endpoint", collector.url, env=env)
    assert missing.returncode == 2
    assert "no such recording" in missing.stderr


def test_the_command_shows_a_rich_progress_bar(tmp_path: Path, collector: Any) -> None:
    pytest.importorskip("rich")
    rec = record_messages(tmp_path / "rec.db", 50, conversations=1)
    # rich draws for a terminal only; force one through its environment variable
    env = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "COLUMNS": "120"}
    run = _cli(str(rec), "--endpoint", collector.url, env=env)
    assert run.returncode == 0, run.stderr
    assert "push" in run.stderr
    assert "50/50" in run.stderr


# --- killed halfway, resumed, run a third time --------------------------------------------------


def _pushed(state: Path) -> int:
    try:
        return int(rows(state, "SELECT count(*) FROM pushed")[0][0])
    except sqlite3.Error:
        return 0


@pytest.mark.timeout(900)
def test_a_push_killed_halfway_resumes_and_stores_every_event_exactly_once(
    tmp_path: Path, collector: Any
) -> None:
    n = 100_000 if FULL else 20_000
    rec = record_messages(tmp_path / "rec.db", n)
    state = default_state_path(rec)
    env = {"AGENTSIGHT_API_KEY": collector.api_key, "AGENTSIGHT_API_ENDPOINT": collector.url}
    cmd = [sys.executable, "-m", "agentsight_async", "push", str(rec), "--no-progress"]

    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while _pushed(state) < n // 2:
        assert proc.poll() is None, "the push ended before it was killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    stored_at_kill = rows(collector.db_path, "SELECT count(*) FROM messages")[0][0]
    assert n // 2 <= stored_at_kill < n

    resumed = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    already = int(resumed.stdout.split("; ")[1].split(" sent before")[0].replace(",", ""))
    sent = int(resumed.stdout.split("pushed ")[1].split(" event")[0].replace(",", ""))
    assert already + sent == n
    assert sent <= n - n // 2  # it resumed; at most the batch in flight is sent again

    third = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )
    assert third.returncode == 0, third.stderr
    assert third.stdout.startswith("pushed 0 event(s)")
    assert f"{n:,} sent before" in third.stdout

    # every event stored exactly once, each conversation in order
    assert rows(collector.db_path, "SELECT count(*) FROM messages")[0][0] == n
    assert rows(collector.db_path, "SELECT count(DISTINCT span_id) FROM messages")[0][0] == n
    got = transcript(collector.db_path)
    assert got == transcript(rec)
    for cid, messages in got.items():
        c = cid[1:]
        assert [m for _, m in messages] == [f"m{c}-{k}" for k in range(len(messages))]
