"""``@tool`` and ``@task``: time a function's calls and record each as an action.

Each call of a decorated function (sync or async) becomes one action in the
conversation of the calling task or thread (routed like every capture, see
``integrations._capture``): its real start, end and duration, its bound
arguments as ``tools_used`` (``self``/``cls`` left out), its return value as
``response``, or the exception as ``error_msg`` - re-raised unchanged.  The
function's result, exceptions and signature are untouched, and a failure of
the recording itself never reaches the caller.

``capture_args=False`` / ``capture_result=False`` keep the arguments / the
return value (and an exception's message: only its type is recorded) out of
the action, for privacy.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .integrations import _capture

if TYPE_CHECKING:
    from ._tracker import BaseTracker

F = TypeVar("F", bound=Callable[..., Any])

#: Longest ``response`` text a decorator records (the backend keeps 16,384 characters).
MAX_RESPONSE_CHARS = 100_000
_MAX_REPR = 1_000


def jsonable(value: Any, depth: int = 0) -> Any:
    """*value* as JSON data: containers kept (to a depth), anything else as its ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if depth < 8 and isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if depth < 8 and isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + "..."


def response_text(result: Any) -> str:
    """A return value as ``response`` text: a string as is, anything else as JSON."""
    text = result if isinstance(result, str) else json.dumps(jsonable(result), ensure_ascii=False)
    return text[:MAX_RESPONSE_CHARS]


class _Recorder:
    """What a decorated function records, decided once at decoration."""

    def __init__(
        self,
        fn: Callable[..., Any],
        kind: str,
        name: str | None,
        capture_args: bool,
        capture_result: bool,
        tracker: BaseTracker | None,
    ) -> None:
        self.name = name or getattr(fn, "__name__", None) or kind
        self.capture_args = capture_args
        self.capture_result = capture_result
        self.tracker = tracker
        self.metadata = {"kind": kind} if kind != "tool" else None
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none
            self.signature = None

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        if not self.capture_args:
            return None
        if self.signature is None:
            return {"args": jsonable(list(args)), "kwargs": jsonable(kwargs)}
        bound = self.signature.bind_partial(*args, **kwargs)
        values = dict(bound.arguments)
        first = next(iter(self.signature.parameters), None)
        if first in ("self", "cls"):
            values.pop(first, None)
        return {k: jsonable(v) for k, v in values.items()}

    def record(
        self,
        where: _capture.Route,
        started_ns: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        try:
            message = None
            if error is not None:
                message = type(error).__name__
                if self.capture_result and str(error):
                    message = f"{message}: {error}"[:MAX_RESPONSE_CHARS]
            response = None
            if error is None and self.capture_result and result is not None:
                response = response_text(result)
            arguments = self.arguments(args, kwargs)
        except Exception as exc:
            _capture.failed("@" + (self.metadata or {}).get("kind", "tool"), exc)
            return
        _capture.record_tool(
            where,
            self.name,
            started_ns,
            arguments=arguments,
            response=response,
            error=message,
            metadata=self.metadata,
        )


def decorate(
    fn: Any,
    kind: str,
    *,
    name: str | None = None,
    capture_args: bool = True,
    capture_result: bool = True,
    tracker: BaseTracker | None = None,
) -> Any:
    """The decorator (``fn`` None: called with options) for :func:`tool` and :func:`task`."""
    if fn is None:
        return functools.partial(
            decorate,
            kind=kind,
            name=name,
            capture_args=capture_args,
            capture_result=capture_result,
            tracker=tracker,
        )
    if not callable(fn):
        raise TypeError(f"@{kind} decorates a function, got {type(fn).__name__}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"@{kind} cannot time a generator function ({fn.__name__})")
    recorder = _Recorder(fn, kind, name, capture_args, capture_result, tracker)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            where = _capture.route(recorder.tracker)
            if where is None:
                return await fn(*args, **kwargs)
            started = time.time_ns()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                recorder.record(where, started, args, kwargs, error=exc)
                raise
            recorder.record(where, started, args, kwargs, result)
            return result

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        where = _capture.route(recorder.tracker)
        if where is None:
            return fn(*args, **kwargs)
        started = time.time_ns()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            recorder.record(where, started, args, kwargs, error=exc)
            raise
        recorder.record(where, started, args, kwargs, result)
        return result

    return timed


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    capture_args: bool = True,
    capture_result: bool = True,
    tracker: BaseTracker | None = None,
) -> Any:
    """Decorate a tool function: each call is recorded as an action (sync or async).

    ``@tool``, ``@tool(name="search")``, ``@tool(capture_args=False)``.

    Args:
        fn: the function (when used without parentheses).
        name: the action name; default the function's ``__name__``.
        capture_args: record the bound arguments as ``tools_used``.
        capture_result: record the return value as ``response`` (and an
            exception's message; its type is always recorded).
        tracker: the tracker to record into; default the one a capture finds
            (``instrument(tracker=...)``, else the one live tracker with a
            current conversation in the calling task or thread).  A call with
            nowhere to go runs unrecorded (``stats()["capture"]["unattributed"]``).

    Returns:
        The wrapped function (or a decorator, when called with options only).

    Raises:
        TypeError: for something that is not a plain or async function.
    """
    return decorate(
        fn,
        "tool",
        name=name,
        capture_args=capture_args,
        capture_result=capture_result,
        tracker=tracker,
    )


def task(fn: F | None = None, /, **options: Any) -> Any:
    """Like :func:`tool` (same options), for a step of the agent's own work.

    Its actions carry the metadata ``{"kind": "task"}``.

    Args:
        fn: the function (when used without parentheses).
        **options: ``name=``, ``capture_args=``, ``capture_result=`` and
            ``tracker=``, as for :func:`tool`.

    Returns:
        The wrapped function (or a decorator, when called with options only).

    Raises:
        TypeError: for something that is not a plain or async function.
    """
    return decorate(fn, "task", **options)


__all__ = ["task", "tool"]
