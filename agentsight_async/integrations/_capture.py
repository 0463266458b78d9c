"""Where a captured call goes, and what capture counts.

Every integration (provider patch, framework handler, ``@tool``) asks
:func:`route` *when the call starts*, in the caller's task or thread, which
tracker and conversation the call belongs to:

1. the tracker given to ``instrument(tracker=...)`` (or to ``@tracker.tool``):
   its current conversation here - none means the call is not recorded;
2. otherwise every live tracker (not closed) whose ``current_conversation_id``
   is set here: exactly one is the answer; none means the call is not
   recorded (``unattributed``); several means it is not recorded either
   (``ambiguous``, warned once) - capture never guesses.

A tracker's current conversation is the one ``track_*`` would use without
``conversation_id=``: the task's or thread's own, else the configured default,
else the script default.  A conversation is never generated for a capture.

Nothing here raises into the caller: a failure in capture code is counted
under ``failed``, logged once per integration at WARNING (the exception type
only - a message could hold user content) and the call goes on untouched.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .._config import Settings
    from .._tracker import BaseTracker

logger = logging.getLogger("agentsight_async")

#: ``AGENTSIGHT_TOKEN_HANDLER_TYPE`` (the original SDK's) -> the target it installs.
_HANDLER_TARGETS = {"llamaindex": "llama_index", "langchain": "langchain"}

_COUNTERS = ("recorded", "unattributed", "ambiguous", "failed", "degraded")


class Route(NamedTuple):
    """The tracker and conversation a captured call goes to."""

    tracker: BaseTracker
    conversation_id: str


class _State:
    """Process-wide capture state (one per process, reset by :func:`reset`)."""

    def __init__(self) -> None:
        self.trackers: weakref.WeakSet[BaseTracker] = weakref.WeakSet()
        self.bound: weakref.ref[BaseTracker] | None = None
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.said: set[str] = set()
        #: Targets whose patch or handler is installed (see ``integrations.instrument``).
        self.installed: set[str] = set()
        #: The ``AGENTSIGHT_INSTRUMENT`` values already applied.
        self.applied: set[tuple[str, ...]] = set()
        self.lock = threading.Lock()


_state = _State()


def register(tracker: BaseTracker) -> None:
    """A new tracker: captures may route to it while it lives."""
    _state.trackers.add(tracker)


def forget(tracker: BaseTracker) -> None:
    """A view of another tracker (the facade's ``.aio``): captures route to its owner."""
    _state.trackers.discard(tracker)


def bind(tracker: BaseTracker | None) -> None:
    """Route every capture to *tracker* (``instrument(tracker=...)``); None unbinds."""
    _state.bound = None if tracker is None else weakref.ref(tracker)


def bound() -> BaseTracker | None:
    """The tracker given to ``instrument(tracker=...)``, if it is still alive."""
    ref = _state.bound
    return None if ref is None else ref()


def route(tracker: BaseTracker | None = None) -> Route | None:
    """The tracker and conversation a call starting here goes to, or None (counted).

    *tracker* (a decorator's own) wins over the bound one, which wins over the
    live trackers.  Never raises.
    """
    try:
        chosen = tracker or bound()
        if chosen is not None:
            cid = None if chosen.is_closed else chosen.current_conversation_id
            if cid is None:
                count("unattributed")
                return None
            return Route(chosen, cid)
        found: Route | None = None
        for candidate in list(_state.trackers):
            if candidate.is_closed:
                continue
            cid = candidate.current_conversation_id
            if cid is None:
                continue
            if found is not None:
                count("ambiguous")
                say_once(
                    "ambiguous",
                    "agentsight_async: a captured call could go to more than one tracker "
                    "(several have a current conversation here), so it was not recorded; "
                    "pass the one to use with instrument(tracker=...)",
                )
                return None
            found = Route(candidate, cid)
        if found is None:
            count("unattributed")
        return found
    except Exception as exc:
        failed("route", exc)
        return None


def record(where: Route, **call: Any) -> None:
    """``record_model_call`` on the routed tracker; never raises (failures are counted)."""
    try:
        where.tracker.record_model_call(conversation_id=where.conversation_id, **call)
    except Exception as exc:
        failed(str(call.get("provider") or "capture"), exc)
    else:
        count("recorded")


def record_tool(
    where: Route,
    name: str,
    started_ns: int,
    *,
    arguments: dict[str, Any] | None = None,
    response: str | None = None,
    error: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """``record_tool_call`` (ending now) on the routed tracker; never raises."""
    try:
        where.tracker.record_tool_call(
            name,
            started_ns=started_ns,
            ended_ns=time.time_ns(),
            arguments=arguments,
            response=response,
            error=error,
            metadata=metadata,
            conversation_id=where.conversation_id,
        )
    except Exception as exc:
        failed("tool calls", exc)


def count(name: str, n: int = 1) -> None:
    with _state.lock:
        _state.counts[name] += n


def counters() -> dict[str, int]:
    """A snapshot of the process-wide capture counters (``stats()["capture"]``)."""
    with _state.lock:
        return dict(_state.counts)


def say_once(key: str, message: str, *args: Any) -> None:
    """Log *message* at WARNING the first time *key* is said in this process."""
    with _state.lock:
        if key in _state.said:
            return
        _state.said.add(key)
    logger.warning(message, *args)


def failed(where: str, exc: BaseException) -> None:
    """Capture code failed: count it, say so once per integration, carry on."""
    count("failed")
    say_once(
        f"failed:{where}",
        "agentsight_async: capture in %s failed (%s); the call itself is unaffected, and "
        "further failures there are only counted (stats()['capture']['failed'])",
        where,
        type(exc).__name__,
    )
    logger.debug("agentsight_async: capture failure in %s", where, exc_info=exc)


def degraded(target: str, what: str) -> None:
    """A library's internals are not what the integration knows: no tokens there, one warning."""
    count("degraded")
    say_once(
        f"degraded:{target}:{what}",
        "agentsight_async: %s: %s; those calls are recorded without token counts. "
        "Upgrading agentsight-async may fix it.",
        target,
        what,
    )


def safely(where: str, fn: Callable[[], Any]) -> None:
    """Run capture code that must never raise."""
    try:
        fn()
    except Exception as exc:
        failed(where, exc)


def is_installed(target: str) -> bool:
    """Whether *target*'s patch or handler is installed in this process."""
    return target in _state.installed


def mark_installed(target: str, on: bool) -> None:
    if on:
        _state.installed.add(target)
    else:
        _state.installed.discard(target)


def installed() -> frozenset[str]:
    return frozenset(_state.installed)


def apply_settings(settings: Settings) -> None:
    """``AGENTSIGHT_INSTRUMENT`` / ``AGENTSIGHT_TOKEN_HANDLER_TYPE``, on a tracker's first use.

    Each distinct request is applied once per process (``instrument`` is
    idempotent anyway); nothing happens when neither is set.  Never raises.
    """
    if settings.instrument is None and settings.token_handler_type is None:
        return
    from .._config import instrument_targets

    try:
        targets = set(instrument_targets(settings.instrument))
        if settings.token_handler_type is not None:
            targets.add(_HANDLER_TARGETS[settings.token_handler_type])
        key = tuple(sorted(targets))
        if not key or key in _state.applied:
            return
        _state.applied.add(key)
        from . import instrument

        instrument(*key)
    except Exception as exc:
        failed("AGENTSIGHT_INSTRUMENT", exc)


def reset() -> None:
    """Forget counters, warnings said and applied settings (tests)."""
    with _state.lock:
        _state.counts = dict.fromkeys(_COUNTERS, 0)
        _state.said.clear()
        _state.applied.clear()
