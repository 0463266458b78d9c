"""The local AgentSight-compatible collector (``agentsight-async serve``).

A small but real server for development and tests: the write routes of both
AgentSight protocols, ``GET /api/me/``, the reading and managing routes of both
published clients (filters, rename, mark, update, soft delete, feedback
listing), web pages to work in (transcripts, search, a dashboard), API-key
auth and idempotent writes, into one SQLite file.  It is installed by
the ``agentsight-async[collector]`` extra and depends on the SDK
(``agentsight_async``), whose SQLite store it serves; the SDK never imports it.

Importing this package needs no starlette: :class:`Storage` reads and writes a
SQLite file - for example one the SDK's ``sqlite:///`` exporter recorded -
without a server.  The HTTP side (:func:`create_app`, :class:`LocalCollector`,
:func:`generate_api_key`) needs the ``[collector]`` extra and is imported on
first use.

Errors::

    StoreError
     ├── FieldValidationError   a write was refused (400, ``{"field": ["msg"]}``)
     ├── IngestValidationError  an ingest payload was refused (400, per block)
     ├── NotFoundError          a referenced row does not exist (404)
     └── SchemaVersionError     the file was written by a newer version
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentsight_async._store import (
    FieldValidationError,
    IngestValidationError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)

from ._storage import Storage

if TYPE_CHECKING:
    from ._app import create_app
    from ._server import LocalCollector, generate_api_key

__all__ = [
    "FieldValidationError",
    "IngestValidationError",
    "LocalCollector",
    "NotFoundError",
    "SchemaVersionError",
    "Storage",
    "StoreError",
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


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
