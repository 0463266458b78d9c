"""Capture for the ``openai`` SDK (1.x to 3.x): patches on the resource classes.

Patched, sync and async: ``chat.completions.create`` and ``.parse``,
``responses.create`` and ``.parse``, legacy ``completions.create`` and
``embeddings.create``.  A class patch covers every way to reach the method -
``client.chat``, ``client.beta.chat``, the module-level ``openai.chat`` proxy,
``AzureOpenAI``'s resources - once.  The ``.stream()`` helpers call the
patched ``create``; ``with_raw_response`` calls it too (the parsed body is
read through the response's own memoised ``parse()``, so the caller gets the
identical object); ``with_streaming_response`` hands the unread body to the
caller and is left alone.

A streamed chat completion reports usage only when asked
(``stream_options={"include_usage": true}``).  When the caller did not set
``include_usage``, we ask for it and hide that extra usage-only chunk again,
so the caller sees exactly the chunks they would have seen.  That needs the
stream's item iterator (see ``_calls``); on a release without it, we do not
ask, and streamed calls are recorded without tokens (one warning).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from . import _capture
from ._calls import (
    ModelCall,
    Reader,
    count,
    field,
    hookable,
    patch_all,
    start_call,
    watch,
    watch_async,
)
from ._patching import Patches

PROVIDER = "openai"

_patches = Patches()


def usage_counts(usage: Any) -> dict[str, int] | None:
    """Chat Completions and Responses usage (``prompt``/``input`` naming) as our counts."""
    if usage is None:
        return None
    prompt = count(usage, "prompt_tokens") or count(usage, "input_tokens")
    completion = count(usage, "completion_tokens") or count(usage, "output_tokens")
    prompt_details = field(usage, "prompt_tokens_details") or field(usage, "input_tokens_details")
    output_details = field(usage, "completion_tokens_details") or field(
        usage, "output_tokens_details"
    )
    # OpenAI counts cache reads and writes inside prompt_tokens, reasoning inside completion.
    cache_read = min(count(prompt_details, "cached_tokens"), prompt)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": min(count(prompt_details, "cache_write_tokens"), prompt - cache_read),
        "reasoning_tokens": min(count(output_details, "reasoning_tokens"), completion),
    }


def embedding_counts(usage: Any) -> dict[str, int] | None:
    return None if usage is None else {"embedding_tokens": count(usage, "prompt_tokens")}


def _chunk_reader(call: ModelCall, hide_usage: bool) -> Reader:
    """Chat/text completion chunks: usage on a chunk of its own (or on the last one)."""

    def read(chunk: Any) -> bool:
        usage = field(chunk, "usage")
        if usage is None:
            return False
        # Only a chunk with nothing else in it is ours to hide - decided before the
        # usage is read, so a failure reading it cannot leak the chunk we asked for.
        hidden = hide_usage and not field(chunk, "choices")
        _capture.safely(
            PROVIDER, lambda: call.set_usage(usage_counts(usage), field(chunk, "model"))
        )
        return hidden

    return read


def _event_reader(call: ModelCall, hide_usage: bool) -> Reader:
    """Responses events: the final ``response.completed|incomplete|failed`` carries usage."""

    def read(event: Any) -> bool:
        response = field(event, "response")
        usage = field(response, "usage")
        if usage is not None:
            call.set_usage(usage_counts(usage), field(response, "model"))
        return False

    return read


class _Streams(NamedTuple):
    sync: type
    async_: type

    def hookable(self) -> bool:
        return hookable(self.sync, ("__next__", "__iter__")) and hookable(
            self.async_, ("__anext__", "__aiter__")
        )


class Surface:
    """One patched endpoint: how its calls are begun, read and watched."""

    provider = PROVIDER

    def __init__(
        self,
        operation: str,
        counts: Callable[[Any], dict[str, int] | None],
        reader: Callable[[ModelCall, bool], Reader],
        asks_for_usage: bool,
        streams: _Streams,
    ) -> None:
        self.operation = operation
        self.counts = counts
        self.reader = reader
        #: Whether ``stream_options.include_usage`` exists there (Responses report anyway).
        self.asks_for_usage = asks_for_usage
        self.streams = streams

    def begin(self, kwargs: dict[str, Any]) -> tuple[ModelCall | None, dict[str, Any], bool]:
        """Route the call, and ask for stream usage if the caller did not say."""
        call = start_call(kwargs, PROVIDER, self.operation)
        if call is None:
            return None, kwargs, False
        hide = False
        if call.streamed and self.asks_for_usage:
            options = kwargs.get("stream_options")
            options = options if isinstance(options, dict) else {}
            if "include_usage" not in options:
                if self.streams.hookable():
                    kwargs = {**kwargs, "stream_options": {**options, "include_usage": True}}
                    hide = True
                else:
                    _capture.degraded(PROVIDER, _NOT_HOOKABLE)
        return call, kwargs, hide

    def end(self, call: ModelCall, body: Any, hide: bool) -> None:
        """Read the usage now, or watch the stream until it ends."""
        if isinstance(body, self.streams.sync):
            if hookable(type(body), ("__next__",)):
                watch(body, call, self.reader(call, hide))
                return
        elif isinstance(body, self.streams.async_):
            if hookable(type(body), ("__anext__",)):
                watch_async(body, call, self.reader(call, hide))
                return
        else:
            call.set_usage(self.counts(field(body, "usage")), field(body, "model"))
            call.finish()
            return
        _capture.degraded(PROVIDER, _NOT_HOOKABLE)
        call.finish()


_NOT_HOOKABLE = "its streams do not read items where we look"


def install() -> None:
    """Patch the openai resource classes.  Raises ImportError without ``openai``."""
    import openai
    from openai.resources import completions, embeddings
    from openai.resources.chat.completions import AsyncCompletions, Completions

    streams = _Streams(openai.Stream, openai.AsyncStream)
    chat = Surface("chat", usage_counts, _chunk_reader, True, streams)
    text = Surface("text_completion", usage_counts, _chunk_reader, True, streams)
    embed = Surface("embeddings", embedding_counts, _chunk_reader, False, streams)
    targets: list[tuple[type, str, Surface]] = [
        (Completions, "create", chat),
        (AsyncCompletions, "create", chat),
        (Completions, "parse", chat),
        (AsyncCompletions, "parse", chat),
        (completions.Completions, "create", text),
        (completions.AsyncCompletions, "create", text),
        (embeddings.Embeddings, "create", embed),
        (embeddings.AsyncEmbeddings, "create", embed),
    ]
    try:
        from openai.resources.responses import AsyncResponses, Responses
    except ImportError:  # pragma: no cover - releases before the Responses API
        pass
    else:
        responses = Surface("chat", usage_counts, _event_reader, False, streams)
        targets += [
            (Responses, "create", responses),
            (AsyncResponses, "create", responses),
            (Responses, "parse", responses),
            (AsyncResponses, "parse", responses),
        ]
    patch_all(_patches, targets)


def uninstall() -> None:
    """Restore the original methods."""
    _patches.undo()
