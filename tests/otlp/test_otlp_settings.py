"""OTLP settings: names, defaults, validation, secrets; nothing OTel imported unless chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentsight_async import AsyncConversationTracker, ConfigurationError
from agentsight_async._config import load_settings, parse_otel_pairs
from agentsight_async._exporters._otlp import resource_attributes

SECRET = "s3cr3t-v4lue-9z"


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    s = load_settings(protocol="otlp", _env_file=None)
    assert (s.otlp_encoding, s.otlp_capture_content, s.otlp_headers) == ("protobuf", False, None)
    assert s.service_name == "unknown_service"
    assert s.otlp_agent_name is None
    # an OpenTelemetry Collector needs no AgentSight key: tracking is on without one
    assert s.tracking_disabled_reason is None
    remote = load_settings(
        protocol="otlp", api_endpoint="https://otel.example.test", _env_file=None
    )
    assert remote.tracking_disabled_reason is None
    ingest = load_settings(api_endpoint="https://otel.example.test", _env_file=None)
    assert ingest.tracking_disabled_reason is not None


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    assert load_settings(_env_file=None).service_name == "from-otel"
    monkeypatch.setenv("AGENTSIGHT_SERVICE_NAME", "from-agentsight")
    monkeypatch.setenv("AGENTSIGHT_PROTOCOL", "OTLP")
    monkeypatch.setenv("AGENTSIGHT_OTLP_ENCODING", " JSON ")
    monkeypatch.setenv("AGENTSIGHT_OTLP_CAPTURE_CONTENT", "true")
    monkeypatch.setenv("AGENTSIGHT_OTLP_AGENT_NAME", "Helper")
    monkeypatch.setenv("AGENTSIGHT_OTLP_HEADERS", "Authorization=Api-Key%20x,team=a%2Cb")
    s = load_settings(_env_file=None)
    assert (s.protocol, s.otlp_encoding, s.otlp_capture_content) == ("otlp", "json", True)
    assert (s.service_name, s.otlp_agent_name) == ("from-agentsight", "Helper")
    assert s.otlp_header_pairs == {"Authorization": "Api-Key x", "team": "a,b"}


def test_header_values_stay_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(protocol="otlp", otlp_headers=f"x-api-key={SECRET}", _env_file=None)
    assert SECRET not in repr(s)
    assert SECRET not in str(s.model_dump())
    tracker = AsyncConversationTracker(
        protocol="otlp", otlp_headers=f"x-api-key={SECRET}", _env_file=None
    )
    assert SECRET not in repr(tracker)
    with pytest.raises(ConfigurationError) as info:
        load_settings(protocol="otlp", otlp_headers=f"{SECRET}", _env_file=None)
    assert str(info.value).startswith("AGENTSIGHT_OTLP_HEADERS: entry 1 is not key=value")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("otlp_encoding", "xml", "AGENTSIGHT_OTLP_ENCODING"),
        ("service_name", "", "AGENTSIGHT_SERVICE_NAME"),
        ("otlp_headers", "=novalue", "AGENTSIGHT_OTLP_HEADERS"),
    ],
)
def test_invalid_values_name_the_variable(field: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        load_settings(protocol="otlp", _env_file=None, **{field: value})


def test_without_the_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentsight_async import _config

    monkeypatch.setattr(_config, "_has_module", lambda name: False)
    with pytest.raises(ConfigurationError, match=r"pip install 'agentsight-async\[otlp\]'"):
        load_settings(protocol="otlp", _env_file=None)


def test_pairs_parser() -> None:
    assert parse_otel_pairs(" a = 1 ,, b=x%3Dy ,c=") == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="entry 2"):
        parse_otel_pairs("a=1,oops")


def test_resource_attributes_follow_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-resource,team=ml")
    attrs = dict(resource_attributes(load_settings(_env_file=None), "abc"))
    assert attrs["service.name"] == "from-resource"
    assert attrs["team"] == "ml"
    assert attrs["service.instance.id"] == "abc"
    named = dict(resource_attributes(load_settings(service_name="mine", _env_file=None), "x"))
    assert named["service.name"] == "mine"


def test_nothing_opentelemetry_is_imported_unless_otlp_is_chosen() -> None:
    code = (
        "import sys, asyncio\n"
        "from agentsight_async import AsyncConversationTracker\n"
        "async def main():\n"
        "    async with AsyncConversationTracker(api_endpoint='memory://m') as t:\n"
        "        await t.track_human_message('hi', conversation_id='c')\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'google'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
