"""The local AgentSight-compatible collector (``agentsight-async serve``).

Importing this package needs only the standard library: :class:`Storage` is
what the SDK's ``sqlite:///`` exporter uses in-process.  The HTTP side
(``create_app``, ``LocalCollector``) needs the ``[collector]`` extra and is
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    CollectorError,
    FieldValidationError,
    IngestValidationError,
    NotFoundError,
    SchemaVersionError,
)
from ._storage import Storage

if TYPE_CHECKING:
    from ._app import create_app
    from ._server import LocalCollector, generate_api_key

__all__ = [
    "CollectorError",
    "FieldValidationError",
    "IngestValidationError",
    "LocalCollector",
    "NotFoundError",
    "SchemaVersionError",
    "Storage",
    "create_app",
    "generate_api_key",
]

_LAZY = {
    "create_app": "._app",
    "LocalCollector": "._server",
    "generate_api_key": "._server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
