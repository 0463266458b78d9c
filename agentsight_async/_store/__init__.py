"""The SQLite store that ``sqlite:///`` and the local collector share.

One SQLite file holds what AgentSight would: conversations, their transcript
items, token usage, attachments, feedback, the raw ingest spans and the
idempotency keys.  :class:`Store` takes both wire protocols' writes - the
legacy per-item REST routes and ``POST /api/ingest/`` - validated and
answered exactly as the AgentSight backend answers them.  The SDK's
``sqlite:///path`` exporter writes through it in-process; the collector
(``agentsight_collector``, which depends on the SDK, never the other way)
serves it over HTTP and adds the read queries.

Modules, one job each::

    _store.py     Store: connections, transactions, idempotency, the write methods
    _schema.py    the schema and its append-only migrations
    _validate.py  request bodies -> normalised dicts, or DRF-shaped errors
    _writes.py    the REST writes, one transaction per item
    _manage.py    rename, mark, update, soft delete and restore of a conversation
    _ingest.py    the ingest projection: spans -> transcript rows
    _rows.py      row helpers the two write paths share
    _timeutil.py  ``(timestamp as sent, UTC microseconds)`` pairs
    _errors.py    the error tree

Standard library only, plus ``pydantic_core`` and ``orjson`` (SDK dependencies) for fast JSON.
"""

from __future__ import annotations

from ._errors import (
    FieldValidationError,
    IngestValidationError,
    NotFoundError,
    SchemaVersionError,
    StoreError,
)
from ._rows import DEFAULT_AGENT_ID, loads
from ._store import Files, Store
from ._timeutil import us_from_iso
from ._validate import (
    ENVIRONMENTS,
    FEEDBACK_SOURCES,
    SENTIMENTS,
    UPDATABLE_FIELDS,
    to_bool,
)

__all__ = [
    "DEFAULT_AGENT_ID",
    "ENVIRONMENTS",
    "FEEDBACK_SOURCES",
    "SENTIMENTS",
    "UPDATABLE_FIELDS",
    "FieldValidationError",
    "Files",
    "IngestValidationError",
    "NotFoundError",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "loads",
    "to_bool",
    "us_from_iso",
]
