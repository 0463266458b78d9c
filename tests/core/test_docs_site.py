"""The documentation site: the generated configuration reference, the API reference's
coverage of every public name, and the CI command the README shows."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from agentsight_async import Settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import mkdocs_hooks  # noqa: E402

#: The modules whose ``__all__`` is public API, and so must be in the reference.
PUBLIC_MODULES = (
    "agentsight_async",
    "agentsight_async.api",
    "agentsight_async.testing",
    "agentsight_async.privacy",
    "agentsight_async.helpers",
    "agentsight_async.integrations",
    "agentsight_collector",
)
DIRECTIVE = re.compile(r"^::: ([\w.]+)", re.M)


def _entries(text: str) -> dict[str, list[str]]:
    """The generated reference as ``{heading: [its non-empty lines]}``."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("#### "):
            current = entries.setdefault(line[5:].strip("`"), [])
        elif line.startswith("#"):
            current = []
        elif line.strip():
            current.append(line)
    return entries


def test_the_configuration_page_lists_every_setting() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert mkdocs_hooks.SETTINGS_MARKER in page
    entries = _entries(mkdocs_hooks.settings_reference())
    assert len(entries) == len(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        entry = entries.get(f"AGENTSIGHT_{name.upper()}")
        assert entry is not None, f"{name} is not in the configuration reference"
        facts, *description = entry
        assert facts.startswith(f"argument `{name}` · "), facts
        assert " · default `" in facts, f"{name}: no default"
        assert field.description, f"Settings.{name} has no description for the reference"
        assert description == [field.description.strip()], name


def test_the_generated_reference_knows_types_defaults_and_bounds() -> None:
    entries = _entries(mkdocs_hooks.settings_reference())
    assert entries["AGENTSIGHT_FLUSH_INTERVAL"][0] == (
        "argument `flush_interval` · float · default `1.0` · allowed > 0, <= 3600"
    )
    assert "default `67108864 (64 MiB)`" in entries["AGENTSIGHT_MAX_QUEUE_BYTES"][0]
    assert entries["AGENTSIGHT_API_KEY"][0] == (
        "argument `api_key` · str (secret) | None · default `unset`"
    )


def _documented() -> dict[str, Any]:
    """Every ``::: dotted.name`` of the reference pages, resolved to its object."""
    found = {}
    for page in sorted((ROOT / "docs" / "reference").glob("*.md")):
        for dotted in DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            module, _, name = dotted.rpartition(".")
            try:
                found[dotted] = importlib.import_module(dotted)  # a module
            except ImportError:
                found[dotted] = getattr(importlib.import_module(module), name)
    return found


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_in_the_reference(module_name: str) -> None:
    module = importlib.import_module(module_name)
    documented = _documented()
    helpers_page = (ROOT / "docs" / "reference" / "helpers.md").read_text(encoding="utf-8")
    capture_page = (ROOT / "docs" / "reference" / "capture.md").read_text(encoding="utf-8")
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        dotted = f"{module_name}.{name}"
        if dotted in documented:
            continue
        if any(
            obj is other and path.rpartition(".")[2] == name for path, other in documented.items()
        ):
            continue  # documented under another public path (agentsight_async.api.X)
        if module_name == "agentsight_async.helpers" and f"- {name}" in helpers_page:
            continue
        if module_name == "agentsight_async.integrations" and name in capture_page:
            continue
        missing.append(name)
    assert missing == []


def test_the_readme_shows_the_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```bash\n{command}\n```" in readme
    assert " docs" in command.split("nox -s", 1)[1]


def test_the_site_config_builds_offline_and_strict() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "strict: true" in config
    assert "font: false" in config  # no Google Fonts request, at build or read time
    assert "import:" not in config  # no inventories fetched at build time
    nav_pages = set(re.findall(r"([\w/.-]+\.md)", config.split("nav:", 1)[1]))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - nav_pages == set(), "pages left out of the navigation"
