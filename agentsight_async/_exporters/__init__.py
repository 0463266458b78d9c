"""Exporters: one interface (:class:`Exporter`), several wire formats.

:func:`create_exporter` picks one from the registry in :mod:`.._config`: an
``http(s)://`` endpoint gets the exporter of ``settings.protocol`` (``ingest``
batches or legacy ``rest`` items), ``sqlite:///`` an embedded local store and
``memory://`` an in-process recorder.  Only the chosen module is imported, so
a ``memory://`` user never pays for building HTTP machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

import httpx

from .._config import HTTP_PROTOCOLS, LOCAL_SCHEMES, Settings
from .._events import DELIVERED, Batch, ConversationBatch, Outcome
from .._exceptions import ConfigurationError
from .._stats import Stats
from ._base import Exporter

if TYPE_CHECKING:
    from ._http import HttpExporter


def _load(target: str, variable: str) -> type[Exporter]:
    """The class named by a registry entry ``"module:Class"``, imported now.

    Raises:
        ConfigurationError: naming *variable*, when this build lacks the module.
    """
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigurationError(
            f"{variable}: this build of agentsight-async does not include {module_name}"
        ) from None
    cls: type[Exporter] = getattr(module, class_name)
    return cls


def create_exporter(
    settings: Settings,
    stats: Stats,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Exporter:
    """The exporter *settings* select.

    Args:
        settings: ``api_endpoint`` picks the family, ``protocol`` the HTTP format.
        stats: the counters the exporter keeps.
        transport: handed to httpx by HTTP exporters (tests, proxies).

    Raises:
        ConfigurationError: for an endpoint scheme or protocol without an exporter.
    """
    scheme = settings.scheme
    if scheme == "http":
        target = HTTP_PROTOCOLS.get(settings.protocol)
        if target is None:
            raise ConfigurationError(
                f"AGENTSIGHT_PROTOCOL: must be one of {', '.join(map(repr, HTTP_PROTOCOLS))}"
            )
        http_exporter = cast("type[HttpExporter]", _load(target, "AGENTSIGHT_PROTOCOL"))
        return http_exporter(settings, stats, transport=transport)
    target = LOCAL_SCHEMES.get(scheme)
    if target is None:
        raise ConfigurationError(f"AGENTSIGHT_API_ENDPOINT: no exporter for {scheme!r} URLs")
    return _load(target, "AGENTSIGHT_API_ENDPOINT")(settings, stats)


__all__ = [
    "DELIVERED",
    "Batch",
    "ConversationBatch",
    "Exporter",
    "Outcome",
    "create_exporter",
]
