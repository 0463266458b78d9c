"""Capture for the ``anthropic`` SDK (0.40 to 2.x): patches on the resource classes.

Patched, sync and async, on ``messages`` and ``beta.messages`` (a different
class of the same name): ``create`` (streamed or not), ``parse`` and
``stream()``.  ``stream()`` does not go through ``create``: it builds the
request its context manager sends on ``__enter__``, so the patch wraps that
request on the manager it returns.  Every platform client (Bedrock, Vertex
...) builds the same resource classes, so one patch covers them all.

Anthropic's ``input_tokens`` excludes the cache: the call's prompt tokens are
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``;
reasoning tokens come from ``output_tokens_details.thinking_tokens`` where the
release reports them.  A
stream reports usage in ``message_start`` (input and cache counts) and in
``message_delta`` (cumulative totals, so each replaces the last).
"""

from __future__ import annotations

import functools
from typing import Any

from . import _capture
from ._calls import ModelCall, Reader, count, field, patch_all, start_call, watch, watch_async
from ._patching import Patches

PROVIDER = "anthropic"

_patches = Patches()
_NOT_HOOKABLE = "its message streams are not built where we look"


def usage_counts(usage: Any) -> dict[str, int] | None:
    """A ``Usage`` (or ``MessageDeltaUsage``) as our counts."""
    if usage is None:
        return None
    cache_read = count(usage, "cache_read_input_tokens")
    cache_write = count(usage, "cache_creation_input_tokens")
    output = count(usage, "output_tokens")
    thinking = count(field(usage, "output_tokens_details"), "thinking_tokens")
    return {
        "prompt_tokens": count(usage, "input_tokens") + cache_read + cache_write,
        "completion_tokens": output,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": min(thinking, output),
    }


def _reader(call: ModelCall) -> Reader:
    """Stream events: ``message_start`` then cumulative ``message_delta`` usage."""
    latest: dict[str, Any] = {}

    def read(event: Any) -> bool:
        kind = field(event, "type")
        if kind == "message_start":
            message = field(event, "message")
            latest.update(_raw(field(message, "usage")))
            call.set_usage(usage_counts(latest), field(message, "model"))
        elif kind == "message_delta":
            # Fields present on the delta are totals so far; absent ones keep their value.
            latest.update(_raw(field(event, "usage")))
            call.set_usage(usage_counts(latest))
        return False

    return read


_RAW_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _raw(usage: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {n: v for n in _RAW_COUNTS if isinstance(v := field(usage, n), int)}
    details = field(usage, "output_tokens_details")
    if details is not None:
        raw["output_tokens_details"] = details
    return raw


class Endpoint:
    """``create``/``parse`` of a messages class (streamed or not)."""

    provider = PROVIDER

    def __init__(self, streams: tuple[type, type]) -> None:
        self.streams = streams

    def begin(self, kwargs: dict[str, Any]) -> tuple[ModelCall | None, dict[str, Any], bool]:
        return start_call(kwargs, PROVIDER, "chat"), kwargs, False

    def end(self, call: ModelCall, body: Any, hide: bool) -> None:
        sync_stream, async_stream = self.streams
        if isinstance(body, sync_stream):
            watch(body, call, _reader(call))
        elif isinstance(body, async_stream):
            watch_async(body, call, _reader(call))
        else:
            call.set_usage(usage_counts(field(body, "usage")), field(body, "model"))
            call.finish()


class StreamHelper:
    """``stream()``: the returned manager's request is wrapped (it fires on enter)."""

    provider = PROVIDER

    def begin(self, kwargs: dict[str, Any]) -> tuple[ModelCall | None, dict[str, Any], bool]:
        where = _capture.route()
        if where is None:
            return None, kwargs, False
        return ModelCall(where, PROVIDER, "chat", kwargs.get("model"), True), kwargs, False

    def end(self, call: ModelCall, manager: Any, hide: bool) -> None:
        names = [n for n in vars(manager) if n.endswith("__api_request")]
        if len(names) != 1:
            _capture.degraded(PROVIDER, _NOT_HOOKABLE)
            call.done = True  # nothing to record: the request is not ours to see
            return
        name = names[0]
        request = vars(manager)[name]
        if callable(request):

            def timed() -> Any:
                call.restart()
                try:
                    stream = request()
                except BaseException as exc:
                    _capture.safely(PROVIDER, functools.partial(call.finish, exc))
                    raise
                _capture.safely(PROVIDER, lambda: watch(stream, call, _reader(call)))
                return stream

            vars(manager)[name] = timed
        else:  # the async manager holds the request's coroutine

            async def timed_async() -> Any:
                call.restart()
                try:
                    stream = await request
                except BaseException as exc:
                    _capture.safely(PROVIDER, functools.partial(call.finish, exc))
                    raise
                _capture.safely(PROVIDER, lambda: watch_async(stream, call, _reader(call)))
                return stream

            vars(manager)[name] = timed_async()


def install() -> None:
    """Patch the anthropic messages classes.  Raises ImportError without ``anthropic``."""
    import anthropic
    from anthropic.resources.messages import AsyncMessages, Messages

    endpoint = Endpoint((anthropic.Stream, anthropic.AsyncStream))
    helper = StreamHelper()
    classes: list[type] = [Messages, AsyncMessages]
    try:
        from anthropic.resources.beta.messages import AsyncMessages as BetaAsync
        from anthropic.resources.beta.messages import Messages as BetaMessages
    except ImportError:  # pragma: no cover - releases without the beta namespace
        pass
    else:
        classes += [BetaMessages, BetaAsync]
    targets: list[tuple[type, str, Any]] = []
    for cls in classes:
        targets += [(cls, "create", endpoint), (cls, "parse", endpoint), (cls, "stream", helper)]
    patch_all(_patches, targets)


def uninstall() -> None:
    """Restore the original methods."""
    _patches.undo()
