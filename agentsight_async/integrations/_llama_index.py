"""Capture for LlamaIndex (``llama-index-core`` 0.12 to 0.14): instrumentation events + tools.

* **Model calls**: an event handler on the root instrumentation dispatcher
  pairs ``LLMChatStartEvent``/``LLMChatEndEvent`` (and the completion
  events) by span and records one token-usage item per call, from the
  response's ``raw`` provider object (its ``usage``) or the token counts the
  LLM integration put in ``additional_kwargs``.  Calls of a provider a patch
  already covers (the OpenAI or Anthropic LLM with that patch installed) are
  left to the patch, which reads the SDK's own usage: nothing counts twice.
* **Tool calls**: ``FunctionTool.call``/``acall`` (every tool made from a
  function, ``to_tool_list()`` included) are patched on the class and each
  call is recorded as an action - without editing the tools, whose
  signatures and docstrings the model sees.

``AGENTSIGHT_TOKEN_HANDLER_TYPE=llamaindex`` (the original SDK's switch, which
replaced ``Settings.callback_manager`` with a token counter) installs this:
LlamaIndex's model usage then feeds ``get_token_usage()``, per conversation.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from typing import Any

from . import _capture
from ._calls import field
from ._patching import Patches, error_text

MAX_OPEN_CALLS = 10_000
_START = ("LLMChatStartEvent", "LLMCompletionStartEvent")
_END = ("LLMChatEndEvent", "LLMCompletionEndEvent")
_PROGRESS = ("LLMChatInProgressEvent", "LLMCompletionInProgressEvent")

_patches = Patches()
_state: dict[str, Any] = {"handler": None, "dispatcher": None}


class _Call:
    __slots__ = ("model", "provider", "started", "streamed", "where")

    def __init__(self, where: _capture.Route, provider: str, model: Any) -> None:
        self.where = where
        self.provider = provider
        self.model = model if isinstance(model, str) else None
        self.started = time.perf_counter_ns()
        self.streamed = False


def provider_of(model_dict: dict[str, Any]) -> str:
    """``openai``/``anthropic`` from an LLM's ``class_name`` (``openai_llm`` ...), else it."""
    name = str(model_dict.get("class_name") or "llama_index").lower()
    for provider in ("anthropic", "openai"):
        if provider in name:
            return provider
    return name


def usage_of(response: Any, provider: str) -> dict[str, int] | None:
    """The usage a ``ChatResponse``/``CompletionResponse`` carries, in our counts."""
    from . import _anthropic, _openai

    raw_usage = field(field(response, "raw"), "usage")
    if raw_usage is not None:
        if provider == "anthropic":
            return _anthropic.usage_counts(raw_usage)
        return _openai.usage_counts(raw_usage)
    extra = field(response, "additional_kwargs") or {}
    if "prompt_tokens" in extra or "completion_tokens" in extra:
        return _openai.usage_counts(extra)
    return None


class _Events:
    """What the event handler does (kept apart from LlamaIndex's pydantic class)."""

    def __init__(self) -> None:
        self.enabled = True
        self.calls: OrderedDict[Any, _Call] = OrderedDict()

    def handle(self, event: Any) -> None:
        if not self.enabled:
            return
        kind = type(event).__name__
        key = field(event, "span_id")
        if kind in _START:
            self._start(key, field(event, "model_dict") or {})
        elif kind in _PROGRESS:
            call = self.calls.get(key)
            if call is not None:
                call.streamed = True
        elif kind in _END:
            self._end(key, field(event, "response"))

    def _start(self, key: Any, model_dict: dict[str, Any]) -> None:
        provider = provider_of(model_dict)
        if provider in ("openai", "anthropic") and _capture.is_installed(provider):
            return  # the provider patch records this call from the SDK's own usage
        where = _capture.route()
        if where is None:
            return
        self.calls[key] = _Call(where, provider, model_dict.get("model"))
        if len(self.calls) > MAX_OPEN_CALLS:
            self.calls.popitem(last=False)

    def _end(self, key: Any, response: Any) -> None:
        call = self.calls.pop(key, None)
        if call is None:
            return
        usage = usage_of(response, call.provider)
        _capture.record(
            call.where,
            provider=call.provider,
            model=field(field(response, "raw"), "model") or call.model,
            requested_model=call.model,
            operation="chat",
            duration_ms=round((time.perf_counter_ns() - call.started) / 1e6, 3),
            streamed=call.streamed,
            usage_reported=usage is not None,
            **(usage or {}),
        )


def _handler(events: _Events) -> Any:
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler

    class AgentSightEventHandler(BaseEventHandler):  # type: ignore[misc,unused-ignore]
        """Model usage of every LlamaIndex LLM call, into the caller's conversation."""

        @classmethod
        def class_name(cls) -> str:
            return "AgentSightEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            _capture.safely("llama_index", lambda: events.handle(event))

    return AgentSightEventHandler()


def _tool_text(output: Any) -> str | None:
    from .._decorators import response_text

    content = field(output, "content")
    return None if content is None else response_text(content)


def _tool_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    from .._decorators import jsonable

    return {"args": jsonable(list(args)), **jsonable(kwargs)} if args else jsonable(kwargs)


def _record_tool(
    where: _capture.Route,
    tool: Any,
    started: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    output: Any,
    error: BaseException | None,
) -> None:
    name = str(field(field(tool, "metadata"), "name") or "tool")
    failure = None if error is None else error_text(error)
    if error is None and field(output, "is_error"):
        failure = "tool error"
    _capture.record_tool(
        where,
        name,
        started,
        arguments=_tool_args(args, kwargs),
        response=None if failure else _tool_text(output),
        error=failure,
    )


def _wrap_call(original: Any) -> Any:
    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _ToolRun(self, args, kwargs) as run:
            run.output = original(self, *args, **kwargs)
        return run.output

    return call


def _wrap_acall(original: Any) -> Any:
    @functools.wraps(original)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _ToolRun(self, args, kwargs) as run:
            run.output = await original(self, *args, **kwargs)
        return run.output

    return acall


class _ToolRun:
    """Times one tool call and records it on the way out; the call's own outcome is untouched.

    Not recorded when no tracker has a conversation here.  An exception of the
    tool is recorded and goes on unchanged (``__exit__`` never swallows it).
    """

    __slots__ = ("args", "kwargs", "output", "started", "tool", "where")

    def __init__(self, tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.tool, self.args, self.kwargs = tool, args, kwargs
        self.output: Any = None
        self.where = _capture.route()
        self.started = time.time_ns()

    def __enter__(self) -> _ToolRun:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        where = self.where
        if where is not None:
            _capture.safely(
                "llama_index",
                functools.partial(
                    _record_tool,
                    where,
                    self.tool,
                    self.started,
                    self.args,
                    self.kwargs,
                    None if exc is not None else self.output,
                    exc,
                ),
            )


def install() -> None:
    """Add the event handler and patch the function tools.  ImportError without LlamaIndex."""
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined,unused-ignore]
    from llama_index.core.tools import FunctionTool

    dispatcher = get_dispatcher()
    events = _Events()
    handler = _handler(events)
    try:
        _patches.patch(FunctionTool, "call", _wrap_call)
        _patches.patch(FunctionTool, "acall", _wrap_acall)
    except BaseException:
        _patches.undo()
        raise
    dispatcher.add_event_handler(handler)
    _state.update(handler=handler, dispatcher=dispatcher, events=events)


def uninstall() -> None:
    """Remove the event handler and restore the tools."""
    _patches.undo()
    dispatcher, handler = _state.get("dispatcher"), _state.get("handler")
    if dispatcher is not None and handler in dispatcher.event_handlers:
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not handler]
    _state.update(handler=None, dispatcher=None, events=None)
