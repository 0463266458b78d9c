"""Automatic capture: model calls of OpenAI, Anthropic, LangChain and LlamaIndex.

``instrument()`` installs the provider patches and framework handlers; each
captured model call becomes one token-usage item in the conversation of the
task or thread that made it (see :mod:`._capture` for how a call finds its
tracker).  Off by default: users of the documented API call
``track_token_usage()`` themselves, and capturing as well would double their
counts.

Importing this package imports none of the libraries it instruments: each
target's module (the registry is ``_config.INSTRUMENT_TARGETS``) is imported
when that target is instrumented, and it imports its library then.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Protocol, cast

from .._config import INSTRUMENT_TARGETS, TARGET_ALIASES
from . import _capture

if TYPE_CHECKING:
    from .._tracker import BaseTracker

logger = logging.getLogger("agentsight_async")

#: Targets that patch a provider SDK (their calls are counted there, not by frameworks).
PROVIDER_TARGETS = ("openai", "anthropic")
"""The targets that patch a provider SDK; a framework leaves the model calls they cover to them."""


class _Integration(Protocol):
    def install(self) -> None: ...

    def uninstall(self) -> None: ...


def _module(target: str) -> _Integration:
    return cast(_Integration, importlib.import_module(INSTRUMENT_TARGETS[target]))


def _resolve(targets: tuple[str, ...]) -> list[str]:
    names = []
    for raw in targets:
        name = TARGET_ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in INSTRUMENT_TARGETS:
            valid = ", ".join(INSTRUMENT_TARGETS)
            raise ValueError(f"instrument(): unknown target {raw!r}; expected one of {valid}")
        if name not in names:
            names.append(name)
    return names


def instrument(*targets: str, tracker: BaseTracker | None = None) -> list[str]:
    """Install automatic capture of model calls.

    Each captured model call becomes one token-usage item in the conversation of
    the task or thread that made it.

    Args:
        *targets: any of ``"openai"``, ``"anthropic"``, ``"langchain"``,
            ``"llama_index"``; none given means every one whose package is
            installed.
        tracker: send every capture to this tracker (its current conversation
            in the calling task or thread). Without it a call goes to the one
            live tracker that has a current conversation there, and is not
            recorded when there is none or more than one.

    Idempotent: installing twice never stacks a second patch. A target whose
    package is missing is skipped (logged at DEBUG); one whose internals are
    not what we know is skipped with a warning. Never raises for either.

    Returns:
        The targets installed (by this call or before), in registry order.

    Raises:
        ValueError: for a target name that does not exist.
    """
    names = _resolve(targets) if targets else list(INSTRUMENT_TARGETS)
    if tracker is not None:
        _capture.bind(tracker)
    done = []
    for name in names:
        if _capture.is_installed(name):
            done.append(name)
            continue
        try:
            _module(name).install()
        except ImportError as exc:
            logger.debug("agentsight_async: not instrumenting %s: %s", name, exc)
            continue
        except Exception as exc:
            _capture.degraded(name, f"could not be instrumented ({type(exc).__name__})")
            continue
        _capture.mark_installed(name, True)
        done.append(name)
    return [name for name in INSTRUMENT_TARGETS if name in done]


def uninstrument(*targets: str) -> None:
    """Remove capture (every target when none is given) and forget ``tracker=``.

    The original methods are restored; calls made from now on are not captured.

    Args:
        *targets: the targets to remove; none given means all of them.

    Raises:
        ValueError: for a target name that does not exist.
    """
    names = _resolve(targets) if targets else list(INSTRUMENT_TARGETS)
    for name in names:
        if _capture.is_installed(name):
            _module(name).uninstall()
            _capture.mark_installed(name, False)
    if not targets:
        _capture.bind(None)


def instrumented() -> list[str]:
    """The targets whose capture is installed now.

    Returns:
        Target names (``"openai"`` ...), in registry order.
    """
    installed = _capture.installed()
    return [name for name in INSTRUMENT_TARGETS if name in installed]


__all__ = ["PROVIDER_TARGETS", "instrument", "instrumented", "uninstrument"]
