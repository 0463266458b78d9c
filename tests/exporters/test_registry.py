"""The exporter registry: protocol validation and ``create_exporter`` read one table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agentsight_async import AsyncConversationTracker, ConfigurationError
from agentsight_async._config import HTTP_PROTOCOLS, LOCAL_SCHEMES, load_settings
from agentsight_async._exporters import create_exporter
from agentsight_async._exporters._ingest import IngestExporter
from agentsight_async._exporters._memory import MemoryExporter
from agentsight_async._exporters._rest import RestExporter
from agentsight_async._exporters._sqlite import SqliteExporter


def test_create_exporter_by_scheme_and_protocol(make_settings, stats) -> None:
    assert isinstance(
        create_exporter(make_settings(api_endpoint="memory://t"), stats), MemoryExporter
    )
    assert isinstance(create_exporter(make_settings(), stats), IngestExporter)
    assert isinstance(create_exporter(make_settings(protocol="rest"), stats), RestExporter)
    assert isinstance(create_exporter(make_settings(protocol=" REST "), stats), RestExporter)
    settings = make_settings(api_endpoint="sqlite:///x.db")
    assert isinstance(create_exporter(settings, stats), SqliteExporter)


def test_every_registered_class_is_where_the_table_says() -> None:
    import importlib

    for target in (*HTTP_PROTOCOLS.values(), *LOCAL_SCHEMES.values()):
        module, _, name = target.partition(":")
        assert isinstance(getattr(importlib.import_module(module), name), type), target


@pytest.mark.parametrize("bad", ["grpc", "", "INGESTX", 3])
def test_unknown_protocol_is_a_configuration_error_naming_the_variable(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(protocol=bad, _env_file=None)
    message = str(info.value)
    assert message.startswith("AGENTSIGHT_PROTOCOL: must be one of 'ingest', 'rest'")
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_PROTOCOL"):
        AsyncConversationTracker(protocol=bad, api_endpoint="memory://x", _env_file=None)


def test_environment_variable_is_validated_too(monkeypatch) -> None:
    monkeypatch.setenv("AGENTSIGHT_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="AGENTSIGHT_PROTOCOL: must be one of"):
        load_settings(_env_file=None)


def test_only_the_chosen_exporter_module_is_imported() -> None:
    code = (
        "import sys, asyncio\n"
        "from agentsight_async import AsyncConversationTracker\n"
        "async def main():\n"
        "    async with AsyncConversationTracker(api_endpoint='memory://m') as t:\n"
        "        await t.track_human_message('hi', conversation_id='c')\n"
        "asyncio.run(main())\n"
        "import json\n"
        "mods = [m for m in sys.modules if m.startswith('agentsight_async._exporters')]\n"
        "print(json.dumps(sorted(mods)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "agentsight_async._exporters._memory" in loaded
    for other in (
        "_ingest",
        "_rest",
        "_otlp",
        "_otlp_wire",
        "_sqlite",
        "_spans",
        "_http",
        "_client",
    ):
        assert f"agentsight_async._exporters.{other}" not in loaded, loaded
