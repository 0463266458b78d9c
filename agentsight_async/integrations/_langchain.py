"""Capture for LangChain (``langchain-core`` 0.3 and 1.x): one global callback handler.

The handler is added to every callback manager LangChain configures, through
its public ``register_configure_hook`` (a context variable whose default is
our handler), so every chat model, LLM and tool run reports to it without the
application passing ``callbacks=``.  It runs inline (``run_inline``), in the
task or thread that made the call, so routing sees the caller's conversation.

* **Model calls**: one token-usage item per run, from the message's
  ``usage_metadata`` (``input_tokens`` including cache, with
  ``input_token_details`` and ``output_token_details``) or the
  ``llm_output["token_usage"]`` of older integrations.  A run whose provider
  a provider patch already covers (``ls_provider`` ``openai``/``azure`` with
  the OpenAI patch, ``anthropic`` with the Anthropic patch) is left to the
  patch, which reads the SDK's own usage: nothing is counted twice.
* **Tool calls**: one action per tool run, with its start, end, input
  arguments, output or error.

LangChain offers no way to remove a configure hook, so ``uninstrument()``
switches the handler off; instrumenting again switches it back on.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any
from uuid import UUID

from . import _capture
from ._calls import count, field
from ._patching import error_text

#: LangChain ``ls_provider`` -> the provider patch that reads those calls itself.
COVERED_BY = {"openai": "openai", "azure": "openai", "azure_openai": "openai"}
COVERED_BY["anthropic"] = "anthropic"
#: Runs remembered between start and end (a run that never ends is forgotten past this).
MAX_OPEN_RUNS = 10_000

_state: dict[str, Any] = {"handler": None}


def usage_counts(usage: Any) -> dict[str, int] | None:
    """``usage_metadata`` (or an OpenAI-style ``token_usage`` dict) as our counts."""
    if not usage:
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        prompt, completion = count(usage, "input_tokens"), count(usage, "output_tokens")
        inputs = field(usage, "input_token_details") or {}
        outputs = field(usage, "output_token_details") or {}
        cache_read = min(count(inputs, "cache_read"), prompt)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": min(count(inputs, "cache_creation"), prompt - cache_read),
            "reasoning_tokens": min(count(outputs, "reasoning"), completion),
        }
    from ._openai import usage_counts as openai_counts

    return openai_counts(usage)


def _run_usage(response: Any) -> dict[str, int] | None:
    """The usage of an ``LLMResult``: summed over its prompts' first generations."""
    total: dict[str, int] | None = None
    for generations in field(response, "generations") or []:
        if not generations:
            continue
        message = field(generations[0], "message")
        counts = usage_counts(field(message, "usage_metadata"))
        if counts is None:
            continue
        total = total or {}
        for key, n in counts.items():
            total[key] = total.get(key, 0) + n
    if total is None:
        llm_output = field(response, "llm_output") or {}
        total = usage_counts(llm_output.get("token_usage") or llm_output.get("usage"))
    return total


class _Run:
    __slots__ = (
        "arguments",
        "kind",
        "model",
        "name",
        "provider",
        "started",
        "started_ns",
        "streamed",
        "where",
    )

    def __init__(self, where: _capture.Route, kind: str) -> None:
        self.where = where
        self.kind = kind
        self.started = time.perf_counter_ns()
        self.started_ns = time.time_ns()
        self.streamed = False
        self.provider = "langchain"
        self.model: str | None = None
        self.name = ""
        self.arguments: Any = None


def _handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class AgentSightCallbackHandler(BaseCallbackHandler):  # type: ignore[misc,unused-ignore]
        """Model usage and tool calls of every LangChain run, into the caller's conversation."""

        run_inline = True
        raise_error = False

        def __init__(self) -> None:
            super().__init__()
            self.enabled = True
            self.runs: OrderedDict[UUID, _Run] = OrderedDict()

        # -- bookkeeping ------------------------------------------------------------------
        def _open(self, run_id: UUID, kind: str) -> _Run | None:
            if not self.enabled:
                return None
            where = _capture.route()
            if where is None:
                return None
            run = self.runs[run_id] = _Run(where, kind)
            if len(self.runs) > MAX_OPEN_RUNS:
                self.runs.popitem(last=False)
            return run

        def _model_start(self, run_id: UUID, kwargs: dict[str, Any]) -> None:
            metadata = kwargs.get("metadata") or {}
            provider = str(metadata.get("ls_provider") or "langchain")
            patch = COVERED_BY.get(provider)
            if patch is not None and _capture.is_installed(patch):
                return  # the provider patch records this call from the SDK's own usage
            run = self._open(run_id, "model")
            if run is None:
                return
            params = kwargs.get("invocation_params") or {}
            model = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
            run.provider = provider
            run.model = model if isinstance(model, str) else None

        def _model_end(self, run_id: UUID, response: Any, error: BaseException | None) -> None:
            run = self.runs.pop(run_id, None)
            if run is None:
                return
            usage = None if response is None else _run_usage(response)
            _capture.record(
                run.where,
                provider=run.provider,
                model=run.model,
                operation="chat",
                duration_ms=round((time.perf_counter_ns() - run.started) / 1e6, 3),
                streamed=run.streamed,
                error=None if error is None else error_text(error),
                usage_reported=usage is not None or error is not None,
                **(usage or {}),
            )

        # -- LangChain's callbacks ---------------------------------------------------------------
        def on_chat_model_start(
            self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any
        ) -> None:
            _capture.safely("langchain", lambda: self._model_start(run_id, kwargs))

        def on_llm_start(
            self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any
        ) -> None:
            _capture.safely("langchain", lambda: self._model_start(run_id, kwargs))

        def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
            run = self.runs.get(run_id)
            if run is not None:
                run.streamed = True

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            _capture.safely("langchain", lambda: self._model_end(run_id, response, None))

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _capture.safely("langchain", lambda: self._model_end(run_id, None, error))

        def on_tool_start(
            self, serialized: Any, input_str: str, *, run_id: UUID, **kwargs: Any
        ) -> None:
            def start() -> None:
                run = self._open(run_id, "tool")
                if run is None:
                    return
                run.name = str(field(serialized, "name") or kwargs.get("name") or "tool")
                inputs = kwargs.get("inputs")
                run.arguments = inputs if isinstance(inputs, dict) else {"input": input_str}

            _capture.safely("langchain", start)

        def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
            _capture.safely("langchain", lambda: self._tool_end(run_id, output, None))

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            _capture.safely("langchain", lambda: self._tool_end(run_id, None, error))

        def _tool_end(self, run_id: UUID, output: Any, error: BaseException | None) -> None:
            run = self.runs.pop(run_id, None)
            if run is None:
                return
            from .._decorators import jsonable, response_text

            content = field(output, "content") if hasattr(output, "content") else output
            _capture.record_tool(
                run.where,
                run.name,
                run.started_ns,
                arguments=None if run.arguments is None else jsonable(run.arguments),
                response=None if error is not None or content is None else response_text(content),
                error=None if error is None else f"{type(error).__name__}: {error}",
            )

    return AgentSightCallbackHandler


def install() -> None:
    """Register the handler (once per process) and switch it on.  ImportError without LangChain."""
    from contextvars import ContextVar

    from langchain_core.tracers.context import register_configure_hook

    handler = _state["handler"]
    if handler is None:
        handler = _handler_class()()
        var: ContextVar[Any] = ContextVar("agentsight_langchain_handler", default=handler)
        register_configure_hook(var, True)
        _state["handler"] = handler
    handler.enabled = True


def uninstall() -> None:
    """Switch the handler off (LangChain cannot unregister it)."""
    handler = _state["handler"]
    if handler is not None:
        handler.enabled = False
        handler.runs.clear()


def handler() -> Any:
    """The installed handler (to pass as ``callbacks=[...]`` where hooks are not honoured)."""
    return _state["handler"]
