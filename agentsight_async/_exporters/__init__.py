"""Exporters: one interface (:class:`Exporter`), several wire formats.

:func:`create_exporter` picks one from the endpoint URL: ``memory://`` records
in-process, ``http(s)://`` talks to AgentSight with ``settings.protocol``
(``ingest`` batches or legacy ``rest`` items), ``sqlite:///`` writes to an
embedded local store.  Exporter modules are imported only when chosen, so
a ``memory://`` user never pays for building HTTP machinery.
"""

from __future__ import annotations

import importlib

import httpx

from .._config import Settings
from .._events import DELIVERED, Batch, ConversationBatch, Outcome
from .._exceptions import ConfigurationError
from .._stats import ErrorCallback, Stats
from ._base import Exporter


def create_exporter(
    settings: Settings,
    stats: Stats,
    on_error: ErrorCallback | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Exporter:
    """The exporter *settings* select; *transport* is handed to httpx (tests, proxies)."""
    scheme = settings.scheme
    if scheme == "memory":
        from ._memory import MemoryExporter

        return MemoryExporter(settings, stats, on_error)
    if scheme == "http":
        if settings.protocol == "rest":
            from ._rest import RestExporter

            return RestExporter(settings, stats, on_error, transport=transport)
        from ._ingest import IngestExporter

        return IngestExporter(settings, stats, on_error, transport=transport)
    if scheme == "sqlite":
        try:
            module = importlib.import_module(f"{__name__}._sqlite")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}._sqlite":
                raise
            raise ConfigurationError(
                "AGENTSIGHT_API_ENDPOINT: sqlite:/// endpoints need the local store, which "
                "this build of agentsight-async does not include"
            ) from None
        exporter: Exporter = module.SqliteExporter(settings, stats, on_error)
        return exporter
    raise ConfigurationError(f"AGENTSIGHT_API_ENDPOINT: no exporter for {scheme!r} URLs")


__all__ = [
    "DELIVERED",
    "Batch",
    "ConversationBatch",
    "Exporter",
    "Outcome",
    "create_exporter",
]
