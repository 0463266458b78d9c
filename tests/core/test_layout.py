"""Dependencies point one way: the collector uses the SDK, the SDK never the collector."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import agentsight_async

SDK = Path(agentsight_async.__file__).parent
COLLECTOR = "agentsight_collector"
#: What only the collector may import: the server's libraries.
SERVER_LIBRARIES = ("starlette", "uvicorn", "jinja2", "multipart", "python_multipart")

# Every module of the SDK, imported in a fresh interpreter where the collector
# cannot be imported; a finder notes every attempt, so a guarded
# ``try: import agentsight_collector`` would be caught too.
IMPORT_ALL = f"""
import importlib, pkgutil, sys

attempts = []

class NoCollector:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {(COLLECTOR, *SERVER_LIBRARIES)!r}:
            attempts.append(name)
            raise ImportError(f"{{name}} is blocked by test_layout", name=name)
        return None

sys.meta_path.insert(0, NoCollector())
import agentsight_async
names = ["agentsight_async"] + [
    m.name for m in pkgutil.walk_packages(agentsight_async.__path__, "agentsight_async.")
]
for name in names:
    importlib.import_module(name)
assert "agentsight_async._store" in names and "agentsight_async._store._store" in names, names
assert not attempts, attempts
assert not [m for m in sys.modules if m.split(".")[0] == {COLLECTOR!r}]
print(len(names))
"""


def test_every_sdk_module_imports_without_the_collector_or_server_libraries() -> None:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20  # the walk found the package, not nothing


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an import statement names, and every string a call is given
    (``importlib.import_module("x")``, ``__import__("x")``, ``find_spec("x")``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call):
            found += [
                (node.lineno, arg.value)
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
            ]
    return found


def test_no_sdk_file_imports_the_collector_or_a_server_library() -> None:
    files = sorted(SDK.rglob("*.py"))
    assert SDK / "_store" / "_store.py" in files
    offenders = [
        f"{path.relative_to(SDK.parent)}:{line}: {name}"
        for path in files
        for line, name in _imported_names(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in (COLLECTOR, *SERVER_LIBRARIES)
    ]
    assert offenders == []


def test_the_ast_check_sees_every_kind_of_import() -> None:
    """The check above would fail on any of these (it is not vacuous)."""
    for code in (
        "import agentsight_collector",
        "from agentsight_collector._cli import main",
        "def f():\n    from agentsight_collector import Storage",
        "importlib.import_module('agentsight_collector._app')",
        "import starlette.applications",
    ):
        names = [name for _, name in _imported_names(ast.parse(code))]
        assert any(n.split(".")[0] in (COLLECTOR, *SERVER_LIBRARIES) for n in names), code


#: The libraries automatic capture instruments: imported only by ``instrument()``.
INSTRUMENTED = ("openai", "anthropic", "langchain_core", "langchain", "llama_index")


def _import_time_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Import statements that run when the module is imported (not inside a function)."""
    found: list[tuple[int, str]] = []
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_no_sdk_module_imports_an_instrumented_library_at_import_time() -> None:
    """Only inside functions of ``agentsight_async.integrations`` (run by ``instrument()``)."""
    offenders = [
        f"{path.relative_to(SDK.parent)}:{line}: {name}"
        for path in sorted(SDK.rglob("*.py"))
        for line, name in _import_time_imports(ast.parse(path.read_text(encoding="utf-8")))
        if name.split(".")[0] in INSTRUMENTED
    ]
    assert offenders == []
    # the check is not vacuous: a module-level import is seen, a lazy one is not
    assert _import_time_imports(ast.parse("import openai")) == [(1, "openai")]
    assert _import_time_imports(ast.parse("def f():\n    import openai")) == []
