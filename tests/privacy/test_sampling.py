"""Sampling: whole conversations, the same ones in every process, about the rate asked for."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from agentsight_async._config import load_settings
from agentsight_async._exceptions import ConfigurationError
from agentsight_async._sampling import MAX_RESCUED, Sampler, sample_point

IDS = 4000
RATE = 0.25

# Each process: its own interpreter and its own PYTHONHASHSEED (so Python's salted
# hash() would disagree between them), the ids a fleet would see, the kept ones out.
CHILD = f"""
import json, sys, uuid
from agentsight_async._sampling import Sampler
s = Sampler({RATE})
ids = [f"conv-{{i}}" for i in range({IDS} // 2)]
ids += [str(uuid.UUID(int=i * 0x9E3779B97F4A7C15 % 2**128)) for i in range({IDS} // 2)]
json.dump(sorted(i for i in ids if s.keep(i)), sys.stdout)
"""


def test_four_processes_keep_the_same_quarter_of_the_conversations() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        )
        for seed in (1, 2, 3, 4)
    ]
    kept = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        kept.append(json.loads(out))
    assert kept[0] == kept[1] == kept[2] == kept[3]
    # Binomial(n=4000, p=0.25): mean 1000, sd = sqrt(n p (1-p)) = 27.4.  Five sd (137)
    # would fail a fair hash once in ~1.7 million runs; the ids are fixed, so the run
    # is deterministic anyway - the bound says the hash is not biased.
    mean = IDS * RATE
    sd = math.sqrt(IDS * RATE * (1 - RATE))
    assert abs(len(kept[0]) - mean) <= 5 * sd, len(kept[0])


def test_the_decision_is_the_documented_sha256_rule() -> None:
    import hashlib

    s = Sampler(0.5)
    for cid in ("a", "chat-123", "ünïcode", ""):
        point = int.from_bytes(hashlib.sha256(cid.encode()).digest()[:8], "big")
        assert sample_point(cid) == point
        assert s.keep(cid) == (point < 2**63)


@pytest.mark.parametrize(("rate", "kept"), [(0.0, 0), (1.0, 500)])
def test_rate_zero_keeps_none_and_one_keeps_all(rate: float, kept: int) -> None:
    s = Sampler(rate)
    assert sum(s.keep(f"c{i}") for i in range(500)) == kept


def test_nested_rates_keep_nested_sets() -> None:
    """A conversation kept at 10% is kept at 50% too: raising the rate only adds."""
    small = {f"c{i}" for i in range(2000) if Sampler(0.1).keep(f"c{i}")}
    large = {f"c{i}" for i in range(2000) if Sampler(0.5).keep(f"c{i}")}
    assert small < large


def test_keep_errors_keeps_a_dropped_conversation_from_its_first_error_on() -> None:
    s = Sampler(0.0, keep_errors=True)
    cid = "dropped"
    question = {"content": "hi", "sender": "end_user", "metadata": {}}
    ok_action = {"action_name": "a", "metadata": {}, "error_msg": ""}
    error = {"action_name": "a", "metadata": {}, "error_msg": "boom"}
    assert not s.keep_event(cid, "question", question)
    assert not s.keep_event(cid, "action", ok_action)  # an empty error_msg is no error
    assert s.keep_event(cid, "action", error)  # the error itself is kept
    assert s.keep_event(cid, "question", question)  # and everything after it
    assert s.rescued(cid)
    assert not s.keep_event("other", "question", question)


def test_without_keep_errors_an_error_changes_nothing() -> None:
    s = Sampler(0.0)
    assert not s.keep_event("c", "action", {"action_name": "a", "error_msg": "boom"})
    s.mark("c")
    assert not s.keep_event("c", "question", {})


def test_mark_is_for_negative_feedback_and_bounded() -> None:
    s = Sampler(0.0, keep_errors=True)
    s.mark("c")
    assert s.keep_event("c", "question", {})
    for i in range(MAX_RESCUED + 1):
        s.mark(f"x{i}")
    assert not s.rescued("c")  # the oldest rescue is forgotten past the bound


def test_from_settings() -> None:
    assert Sampler.from_settings(load_settings()) is None
    s = Sampler.from_settings(load_settings(sample_rate=0.3, sample_keep_errors=True))
    assert s is not None
    assert (s.rate, s.keep_errors) == (0.3, True)


@pytest.mark.parametrize("rate", [-0.1, 1.5, "x", True])
def test_bad_rates_are_refused(rate: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        Sampler(rate)  # type: ignore[arg-type]


def test_sample_rate_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTSIGHT_SAMPLE_RATE", "1.5")
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_SAMPLE_RATE"):
        load_settings()
