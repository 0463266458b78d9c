"""One captured model call, and watching a provider's stream without changing it.

:class:`ModelCall` is what the provider patches fill while a call runs: the
route (decided when the call started), the model asked for, the usage read
from the SDK's own objects.  :meth:`ModelCall.finish` records it exactly once
- however the call ends: returned, raised, stream exhausted, closed or dropped.

Streams are watched by replacing the stream object's own item iterator (the
``_iterator`` attribute both SDKs' ``Stream``/``AsyncStream`` read every item
through) with a generator that reads each item on its way to the caller.  The
caller keeps the very object the SDK returned - its type, ``.response``,
``close()`` and context manager - and receives the same items in the same
order, except a usage-only chunk that *we* asked for (OpenAI's
``stream_options``), which is hidden again.  Whether a release still reads
items through that attribute is checked once per class (:func:`hookable`);
when it does not, streams are left alone and report no usage (one warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

from . import _capture
from ._capture import Route
from ._patching import Patches, elapsed_ms, error_text, now_ns

#: The attribute of an SDK stream that yields its items.
ITERATOR = "_iterator"

#: Usage keys a provider reader fills (all optional, default 0).
USAGE_KEYS = (
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "embedding_tokens",
)


def field(source: Any, name: str) -> Any:
    """``source.name`` or ``source[name]`` (SDK objects and plain dicts alike), or None."""
    if source is None:
        return None
    if isinstance(source, dict):
        return source.get(name)
    # The SDKs' objects are pydantic models: a field is in __dict__, an undeclared key in
    # __pydantic_extra__.  Looking there first skips pydantic's __getattr__, which builds
    # and raises an AttributeError for every name a model lacks (~2 us each; usage
    # readers probe several names per call).
    values = getattr(source, "__dict__", None)
    if values is not None and name in values:
        return values[name]
    extra = getattr(source, "__pydantic_extra__", None)
    if isinstance(extra, dict) and not hasattr(type(source), name):
        return extra.get(name)
    return getattr(source, name, None)


def count(source: Any, name: str) -> int:
    """A token count from an SDK object or dict; 0 when absent or not an int."""
    value = field(source, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class ModelCall:
    """One model call on its way to a token-usage item.  Not thread-safe; records once."""

    __slots__ = (
        "done",
        "model",
        "operation",
        "provider",
        "requested_model",
        "start_ns",
        "streamed",
        "usage",
        "where",
    )

    def __init__(
        self, where: Route, provider: str, operation: str, requested_model: Any, streamed: bool
    ) -> None:
        self.where = where
        self.provider = provider
        self.operation = operation
        self.requested_model = requested_model if isinstance(requested_model, str) else None
        self.model: str | None = None
        self.streamed = streamed
        self.usage: dict[str, int] | None = None
        self.done = False
        self.start_ns = now_ns()

    def restart(self) -> None:
        """The request is sent now (a stream manager entered later than it was made)."""
        self.start_ns = now_ns()

    def set_usage(self, usage: dict[str, int] | None, model: Any = None) -> None:
        """The call's whole usage (a later report replaces an earlier one)."""
        if usage is not None:
            self.usage = usage
        if isinstance(model, str) and model:
            self.model = model

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call (once).  A consumer walking away from a stream is no error."""
        if self.done:
            return
        self.done = True
        usage = self.usage or {}
        failure = None
        if error is not None and not isinstance(error, (GeneratorExit, asyncio.CancelledError)):
            failure = error_text(error)
        _capture.record(
            self.where,
            provider=self.provider,
            model=self.model or self.requested_model,
            requested_model=self.requested_model,
            operation=self.operation,
            duration_ms=elapsed_ms(self.start_ns),
            streamed=self.streamed,
            error=failure,
            usage_reported=self.usage is not None or failure is not None,
            **{k: usage.get(k, 0) for k in USAGE_KEYS},
        )

    def finish_elsewhere(self) -> None:
        """Record from another thread: a stream dropped unread is finalised by the
        garbage collector, which may run while this thread holds a tracker lock."""
        if self.done:
            return
        try:
            threading.Thread(target=self.finish, name="agentsight-capture", daemon=True).start()
        except RuntimeError:  # interpreter shutting down: nothing can be sent anyway
            self.done = True


# --- streams -------------------------------------------------------------------------------

_HOOKABLE: dict[type, bool] = {}


def hookable(stream_cls: type, methods: tuple[str, ...]) -> bool:
    """Whether *stream_cls* reads every item through :data:`ITERATOR` (checked once).

    A method without Python code (reimplemented natively) is trusted; one whose
    code does not name the attribute means the internals changed.
    """
    known = _HOOKABLE.get(stream_cls)
    if known is None:
        known = True
        for name in methods:
            code = getattr(getattr(stream_cls, name, None), "__code__", None)
            if code is not None and ITERATOR not in code.co_names:
                known = False
        _HOOKABLE[stream_cls] = known
    return known


#: Reads one stream item into the call; True when the item must be hidden from the caller.
Reader = Callable[[Any], bool]


def watch(stream: Any, call: ModelCall, read: Reader) -> None:
    """Route a sync stream's items through *read*; record the call when it ends."""
    source: Iterator[Any] = getattr(stream, ITERATOR)

    def items() -> Iterator[Any]:
        with _finishing(call, on_close=call.finish_elsewhere):
            for item in source:
                if not _safe_read(read, item, call):
                    yield item

    setattr(stream, ITERATOR, items())
    _finish_on_close(stream, call)


def watch_async(stream: Any, call: ModelCall, read: Reader) -> None:
    """:func:`watch` for an ``AsyncStream``."""
    source: AsyncIterator[Any] = getattr(stream, ITERATOR)

    async def items() -> AsyncIterator[Any]:
        # an async stream is finalised by the event loop, not inside a lock: finish there
        with _finishing(call, on_close=call.finish):
            async for item in source:
                if not _safe_read(read, item, call):
                    yield item

    setattr(stream, ITERATOR, items())
    _finish_on_close(stream, call)


@contextlib.contextmanager
def _finishing(call: ModelCall, *, on_close: Callable[[], None]) -> Iterator[None]:
    """Record *call* when the stream it reads ends: read through, failed, or closed early."""
    try:
        yield
    except GeneratorExit:  # the caller stopped reading
        on_close()
        raise
    except BaseException as exc:
        call.finish(exc)
        raise
    call.finish()


def _safe_read(read: Reader, item: Any, call: ModelCall) -> bool:
    try:
        return read(item)
    except Exception as exc:
        _capture.failed(call.provider, exc)
        return False


def _finish_on_close(stream: Any, call: ModelCall) -> None:
    """Closing a half-read stream ends the call then, not when it is collected.

    An instance attribute shadows the class's ``close`` for this stream only;
    the stream is held weakly, so the hook adds no reference cycle.
    """
    original = getattr(type(stream), "close", None)
    if original is None:
        return
    ref = weakref.ref(stream)

    if inspect.iscoroutinefunction(original):

        async def aclose(*args: Any, **kwargs: Any) -> Any:
            _capture.safely(call.provider, call.finish)
            return await original(ref(), *args, **kwargs)

        vars(stream)["close"] = aclose
    else:

        def close(*args: Any, **kwargs: Any) -> Any:
            _capture.safely(call.provider, call.finish)
            return original(ref(), *args, **kwargs)

        vars(stream)["close"] = close


# --- patched provider methods ------------------------------------------------------------

#: Set by the Stainless SDKs' ``with_raw_response`` ("true"/"raw") and
#: ``with_streaming_response`` ("stream") before they call the patched method.
RAW_HEADER = "X-Stainless-Raw-Response"


class Endpoint(Protocol):
    """What a provider says about one patched method (see ``_openai``, ``_anthropic``)."""

    provider: str

    def begin(self, kwargs: dict[str, Any]) -> tuple[ModelCall | None, dict[str, Any], bool]:
        """Route the call; return it (None: not captured), the keyword arguments to
        call with, and whether a usage-only item we asked for must be hidden."""
        ...

    def end(self, call: ModelCall, body: Any, hide: bool) -> None:
        """Read the usage of a returned *body*, or watch it if it is a stream."""
        ...


def start_call(kwargs: dict[str, Any], provider: str, operation: str) -> ModelCall | None:
    """A model call about to be made with *kwargs*, or None when it is not to be recorded.

    Not recorded: a ``with_streaming_response`` call (its unread body is the
    caller's), or no tracker with a conversation where the call is made.
    """
    if raw_marker(kwargs) == "stream":
        return None
    where = _capture.route()
    if where is None:
        return None
    streamed = bool(kwargs.get("stream"))
    return ModelCall(where, provider, operation, kwargs.get("model"), streamed)


def raw_marker(kwargs: dict[str, Any]) -> Any:
    """The raw-response wrapper that made this call, if any ("true", "raw", "stream")."""
    headers = kwargs.get("extra_headers")
    return headers.get(RAW_HEADER) if isinstance(headers, dict) else None


def _body(result: Any, kwargs: dict[str, Any]) -> Any:
    if raw_marker(kwargs) in ("true", "raw"):
        return result.parse()  # memoised: the caller's own parse() returns this object
    return result


def _begin(
    endpoint: Endpoint, kwargs: dict[str, Any]
) -> tuple[ModelCall | None, dict[str, Any], bool]:
    """``endpoint.begin``, or no recording when the capture code itself fails."""
    try:
        return endpoint.begin(kwargs)
    except Exception as exc:
        _capture.failed(endpoint.provider, exc)
        return None, kwargs, False


def wrap_sync(original: Callable[..., Any], endpoint: Endpoint) -> Any:
    """A patched sync method: the same result, exception and items as *original*."""

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call, call_kwargs, hide = _begin(endpoint, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **call_kwargs)
        except BaseException as exc:
            _capture.safely(endpoint.provider, functools.partial(call.finish, exc))
            raise
        _capture.safely(
            endpoint.provider,
            lambda: endpoint.end(call, _body(result, call_kwargs), hide),
        )
        return result

    return method


def wrap_async(original: Callable[..., Any], endpoint: Endpoint) -> Any:
    """A patched async method - a coroutine function, so timing starts when awaited."""

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call, call_kwargs, hide = _begin(endpoint, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **call_kwargs)
        except BaseException as exc:
            _capture.safely(endpoint.provider, functools.partial(call.finish, exc))
            raise
        try:
            body = _body(result, call_kwargs)
            if inspect.isawaitable(body):  # an async raw response parses asynchronously
                body = await body
        except Exception as exc:
            _capture.failed(endpoint.provider, exc)
            call.finish()
            return result
        _capture.safely(endpoint.provider, lambda: endpoint.end(call, body, hide))
        return result

    return method


def patch_all(patches: Patches, targets: list[tuple[type, str, Any]]) -> None:
    """Patch each ``(class, method, endpoint)`` with the wrapper its kind needs.

    A method a release does not have (``parse`` before structured outputs) is
    skipped; any other failure undoes what was patched and raises.
    """
    try:
        for owner, name, endpoint in targets:
            original = vars(owner).get(name)
            if original is None:
                continue
            # Decorators such as ``required_args`` hide a coroutine function behind a
            # plain one; what it wraps says whether calling it gives a coroutine.
            is_async = inspect.iscoroutinefunction(inspect.unwrap(original))
            wrap = wrap_async if is_async else wrap_sync
            patches.patch(owner, name, functools.partial(_rebind, wrap, endpoint))
        if not patches.applied:
            raise AttributeError("none of the methods we patch is there")
    except BaseException:
        patches.undo()
        raise


def _rebind(wrap: Callable[..., Any], endpoint: Endpoint, original: Any) -> Any:
    return wrap(original, endpoint)
