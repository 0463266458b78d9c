"""Every public name has a docstring the API reference can be built from.

Walks ``__all__`` of each public module: a public class or function needs a
docstring of more than one line (what it does, then the details), in Google style
- an ``Args:`` section naming every parameter, a ``Returns:`` (or ``Yields:``)
section when it returns something.  The same holds for the public methods of
public classes; a property needs a docstring; a module-level object (the ready-made
``conversation_tracker``, a constant) needs the string literal after its assignment
that the reference shows.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PUBLIC_MODULES = (
    "agentsight_async",
    "agentsight_async.api",
    "agentsight_async.testing",
    "agentsight_async.privacy",
    "agentsight_async.helpers",
    "agentsight_async.integrations",
    "agentsight_async.pytest_plugin",
    "agentsight_collector",
)
SECTION = re.compile(r"^\s*(Args|Arguments|Returns|Yields|Raises|Attributes|Examples?):\s*$", re.M)


def _ours(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module.split(".")[0] in ("agentsight_async", "agentsight_collector")


def _public_items() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            where = f"{module_name}.{name}"
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield where, obj
            if isinstance(obj, type) and _ours(obj):
                for member_name, member in vars_with_bases(obj):
                    yield f"{where}.{member_name}", member


def vars_with_bases(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties of *cls*, its own and inherited from our classes."""
    done = set()
    for klass in cls.__mro__:
        if not _ours(klass):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in done:
                continue
            done.add(name)
            yield name, member


def _function(obj: Any) -> Callable[..., Any] | None:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if inspect.isfunction(obj):
        return obj
    fixture = getattr(obj, "_get_wrapped_function", None)  # a pytest fixture definition
    if fixture is not None:
        return fixture()  # type: ignore[no-any-return]
    wrapped = getattr(obj, "__wrapped__", None)
    if inspect.isfunction(wrapped):
        return wrapped
    return None


def _is_fixture(obj: Any) -> bool:
    """A pytest fixture: its parameters are other fixtures, its docstring says what it gives."""
    return hasattr(obj, "_get_wrapped_function") or hasattr(obj, "_pytestfixturefunction")


def problems(where: str, obj: Any) -> list[str]:
    if isinstance(obj, property):
        return [] if (obj.__doc__ or "").strip() else [f"{where}: property without a docstring"]
    function = _function(obj)
    if function is None and not isinstance(obj, type):
        return []  # an instance or a constant: checked by test_module_level_objects
    target: Any = function if function is not None else obj
    doc = inspect.cleandoc(target.__doc__ or "")
    lines = [line for line in doc.splitlines() if line.strip()]
    if not doc:
        return [f"{where}: no docstring"]
    if len(lines) < 2:
        return [f"{where}: a one-line docstring"]
    if function is None or _is_fixture(obj):
        return []  # a class (its methods are checked one by one), or a pytest fixture
    found = []
    signature = inspect.signature(function)
    params = [
        p
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") and not (where.endswith(".__init__"))
    ]
    if params and not re.search(r"^\s*(Args|Arguments):\s*$", doc, re.M):
        found.append(f"{where}: no Args section")
    for p in params:
        label = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if not re.search(rf"^\s+\**{re.escape(p.name)}( \([^)]*\))?:", doc, re.M):
            found.append(f"{where}: parameter {label} is not described")
    returns = signature.return_annotation
    returns_nothing = returns in (None, "None", inspect.Signature.empty) or (
        inspect.isclass(obj) and where.endswith("__init__")
    )
    if not returns_nothing and not re.search(r"^\s*(Returns|Yields):\s*$", doc, re.M):
        found.append(f"{where}: no Returns section")
    return found


def test_every_public_callable_has_a_full_docstring() -> None:
    found = [p for where, obj in _public_items() for p in problems(where, obj)]
    assert found == [], f"{len(found)} problem(s):\n" + "\n".join(found)


def _attribute_docstrings(module: Any) -> dict[str, str]:
    """``name = ...`` followed by a string literal, in a module's source."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    docs = {}
    body = tree.body
    for node, after in zip(body, [*body[1:], None], strict=True):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if (
            targets
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs.update(dict.fromkeys(targets, after.value.value))
    return docs


def test_module_level_objects_have_a_docstring() -> None:
    """Instances and constants: the string after the assignment (what mkdocstrings shows)."""
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) or _function(obj) is not None or inspect.ismodule(obj):
                continue
            if name == "__version__":
                continue
            defining = sys.modules.get(getattr(type(obj), "__module__", ""), module)
            candidates = [module, *(m for m in sys.modules.values() if _defines(m, name, obj))]
            if not any(_attribute_docstrings(m).get(name) for m in candidates if _source(m)):
                missing.append(f"{module_name}.{name}")
            del defining
    assert missing == []


def _defines(module: Any, name: str, obj: Any) -> bool:
    mod_name = getattr(module, "__name__", "") or ""
    return mod_name.split(".")[0] in ("agentsight_async", "agentsight_collector") and (
        getattr(module, name, None) is obj
    )


def _source(module: Any) -> bool:
    return bool(getattr(module, "__file__", None))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ('"""One line."""', ["f: a one-line docstring"]),
        (
            '"""Does it.\n\n    More.\n    """',
            ["f: no Args section", "f: parameter x is not described", "f: no Returns section"],
        ),
        (
            '"""Does it.\n\n    Args:\n        x: the thing.\n    """',
            ["f: no Returns section"],
        ),
        (
            '"""Does it.\n\n    Args:\n        x: the thing.\n\n    Returns:\n        It.\n    """',
            [],
        ),
    ],
)
def test_the_check_is_not_vacuous(doc: str, expected: list[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(f"def f(x: int) -> int:\n    {doc}\n    return x\n", namespace)
    assert problems("f", namespace["f"]) == expected
