"""The privacy settings: AGENTSIGHT_REDACT, AGENTSIGHT_REDACT_PATTERNS and their errors."""

from __future__ import annotations

import pytest

from agentsight_async._config import Settings, load_settings
from agentsight_async._exceptions import ConfigurationError
from agentsight_async._privacy import KINDS


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("email,phone", ("email", "phone")),
        (" Card , IP ", ("card", "ip")),
        ("all", KINDS),
        ('["secret", "email"]', ("secret", "email")),
        ("", ()),
    ],
)
def test_redact_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("AGENTSIGHT_REDACT", env)
    assert load_settings().redact == expected


def test_redact_in_code_and_defaults() -> None:
    assert load_settings().redact == ()
    assert load_settings(redact=["ip", "email"]).redact == ("email", "ip")
    s = Settings()
    assert (s.redact_patterns, s.sample_rate, s.sample_keep_errors) == ((), 1.0, False)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (r"EMP-\d{6}", (r"EMP-\d{6}",)),
        (r"[A-Z]{3}-\d+", (r"[A-Z]{3}-\d+",)),  # a character class, not a JSON list
        (r'["EMP-\\d{6}", "(?P<ticket>TKT-\\d+)"]', (r"EMP-\d{6}", r"(?P<ticket>TKT-\d+)")),
    ],
)
def test_redact_patterns_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("AGENTSIGHT_REDACT_PATTERNS", env)
    assert load_settings().redact_patterns == expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AGENTSIGHT_REDACT", "mail", "AGENTSIGHT_REDACT: unknown kind 'mail'"),
        ("AGENTSIGHT_REDACT_PATTERNS", "(", "AGENTSIGHT_REDACT_PATTERNS: pattern 0"),
        ("AGENTSIGHT_REDACT_PATTERNS", '["ok", "x*"]', "pattern 1: 'x\\*' matches the empty"),
        ("AGENTSIGHT_SAMPLE_RATE", "-1", "AGENTSIGHT_SAMPLE_RATE"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_every_new_setting_is_described() -> None:
    for name in ("redact", "redact_patterns", "sample_rate", "sample_keep_errors"):
        assert Settings.model_fields[name].description
