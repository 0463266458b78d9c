"""Errors the store raises; the collector's HTTP app turns them into responses.

::

    StoreError
     ├── FieldValidationError   -> 400, DRF-style ``{"field": ["msg"]}``
     ├── IngestValidationError  -> 400, the per-block ingest body (protocol §3.5)
     ├── NotFoundError          -> 404, ``{"detail": "..."}``
     └── SchemaVersionError     -> the database was written by a newer version
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base class of everything the store raises on purpose.

    ``except StoreError`` catches a refused write, a missing row and a database
    file this version cannot read.
    """


class FieldValidationError(StoreError):
    """A REST write was refused; ``errors`` maps field names to string messages.

    Messages are always strings: the legacy client's error formatter crashes on
    anything else in those lists.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = {str(k): [str(m) for m in v] for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in self.errors.items()))

    @property
    def body(self) -> dict[str, list[str]]:
        """The 400 response body: ``{field: [message, ...]}``."""
        return self.errors


class IngestValidationError(StoreError):
    """An ingest payload was refused as a whole; ``body`` is the 400 response body.

    ``{"detail", "conversations": [{"index", "conversation_id", "errors"}],
    "truncated"}``: one bad block refuses the whole batch.
    """

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        super().__init__(str(body.get("detail", "invalid ingest payload")))


class NotFoundError(StoreError):
    """A referenced row does not exist (or does not belong where it was put).

    The collector answers it as a 404 with ``{"detail": detail}``.
    """

    def __init__(self, detail: str = "Not found.") -> None:
        self.detail = detail
        super().__init__(detail)


class SchemaVersionError(StoreError):
    """The database file has a schema newer than this code knows how to read.

    Refused rather than misread: upgrade ``agentsight-async`` to open it.
    """
