"""The sync facade: the original blocking ``ConversationTracker`` API over the async core.

Design, after anyio's blocking portal:

* The core runs on a private event loop in a named daemon thread, started on
  first use - importing this module opens nothing and never raises.
* Fire-and-forget calls (``track_*``, ``get_or_create_conversation``) run the
  core's synchronous hot path in the caller's thread: validate, stamp, append.
  They never cross threads per call; the flusher is woken at most once per batch.
* Blocking calls (``send_tracked_data``, ``initialize_conversation``,
  ``flush``, ``close``) submit a coroutine to the private loop and wait on a
  ``concurrent.futures.Future`` with a deadline.  That works from plain threads
  and from inside a running event loop (Jupyter, a FastAPI handler) because
  the loop that does the work is never the caller's.  Called from the private
  loop's own thread - a callback of ours - they raise ``RuntimeError`` instead
  of deadlocking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx

from ._config import Settings
from ._exceptions import ConfigurationError, FlushTimeoutError
from ._stats import ErrorCallback
from ._tracker import AsyncConversationTracker, _current, _fields

logger = logging.getLogger("agentsight_async")
T = TypeVar("T")


class ConversationTracker:
    """The documented blocking tracker; every original call works unchanged.

    ``conversation_tracker`` (module level) is the ready-made instance the
    original documentation uses.  Create your own to pass settings
    explicitly: ``ConversationTracker(api_key=..., endpoint=...)``; invalid
    settings raise :class:`ConfigurationError` there.  The module-level
    instance reads the environment on first use instead and, if that fails,
    logs the error once and disables itself - importing and tracking never
    raise because of configuration.

    :attr:`aio` is the :class:`AsyncConversationTracker` underneath, for
    ``await`` calls that share this tracker's queues.
    """

    def __init__(
        self,
        api_key: str | None = None,
        conversation_id: str | None = None,
        endpoint: str | None = None,
        log_level: str | None = None,
        *,
        on_error: ErrorCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        lazy: bool = False,
        **overrides: Any,
    ) -> None:
        self._options: dict[str, Any] = dict(
            api_key=api_key,
            conversation_id=conversation_id,
            endpoint=endpoint,
            log_level=log_level,
            on_error=on_error,
            transport=transport,
            **overrides,
        )
        self._lazy = lazy
        self._core: AsyncConversationTracker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        _facades.add(self)
        if not lazy:
            self._ensure_core()

    # --- the core and its loop --------------------------------------------------------------
    def _ensure_core(self) -> AsyncConversationTracker:
        core = self._core
        if core is not None and self._thread is not None:
            return core
        with self._start_lock:
            if self._core is None:
                self._core = self._build_core()
            if self._thread is None:
                self._start_loop(self._core)
            return self._core

    def _build_core(self) -> AsyncConversationTracker:
        opts = dict(self._options)
        if opts.get("log_level") is None:
            opts.pop("log_level")
        try:
            return AsyncConversationTracker(**opts)
        except ConfigurationError as exc:
            if not self._lazy:
                raise
            logger.error("agentsight_async: tracking disabled, invalid configuration: %s", exc)
            core = AsyncConversationTracker(settings=Settings.model_construct(enabled=False))
            core.stats_counters.record_error(str(exc))
            return core

    def _start_loop(self, core: AsyncConversationTracker) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="agentsight-async-loop", daemon=True)
        thread.start()
        ready.wait()
        core._loop = loop
        core._owned_loop = True

        async def start() -> None:
            core._start_flusher(asyncio.get_running_loop())

        asyncio.run_coroutine_threadsafe(start(), loop).result()
        self._loop = loop
        self._thread = thread

    def _call(self, fn: Callable[[], Awaitable[T]], timeout: float | None) -> T:
        """Run a coroutine on the private loop and wait for it, with a deadline."""
        self._ensure_core()  # starts the loop thread on first use
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "agentsight_async: a blocking ConversationTracker call was made from the "
                "tracker's own event-loop thread; use the async API (tracker.aio) there"
            )
        loop = self._loop
        if loop is None:  # closed concurrently by another thread
            raise RuntimeError("agentsight_async: the tracker was closed during the call")

        async def run() -> T:
            return await fn()

        fut = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            return fut.result(None if timeout is None else timeout + 1.0)
        except concurrent.futures.TimeoutError:  # not the builtin one before 3.11
            fut.cancel()
            raise FlushTimeoutError(
                f"agentsight_async: the call did not finish within {timeout} s"
            ) from None

    @property
    def aio(self) -> AsyncConversationTracker:
        """The async core behind this tracker (``await tracker.aio.flush()``)."""
        return self._ensure_core()

    @property
    def settings(self) -> Settings:
        return self._ensure_core().settings

    # --- documented API ----------------------------------------------------------------
    def get_or_create_conversation(
        self,
        conversation_id: str,
        customer_id: str | None = None,
        customer_ip_address: str | None = None,
        device: str | None = None,
        source: str | None = None,
        language: str | None = None,
        name: str | None = None,
        environment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record the conversation and make it current for this thread (or task)."""
        self._ensure_core()._set_conversation(conversation_id, _fields(locals()))

    def initialize_conversation(
        self,
        conversation_id: str,
        customer_id: str | None = None,
        customer_ip_address: str | None = None,
        device: str | None = None,
        source: str | None = None,
        language: str | None = None,
        name: str | None = None,
        environment: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Create the conversation on the backend now (not marked used); blocks for the answer."""
        core = self._ensure_core()
        ev = core._initialize(conversation_id, _fields(locals()))
        if ev is not None:
            limit = core._default_timeout() if timeout is None else timeout
            self._call(lambda: core._await_event(ev, limit), limit)

    def track_human_message(
        self,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
        attachment_mode: str = "base64",
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a message from the end user; returns at once."""
        self._ensure_core()._message(
            "question", message, attachments, attachment_mode, metadata, conversation_id
        )

    def track_agent_message(
        self,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
        attachment_mode: str = "base64",
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a message from the agent; returns at once."""
        self._ensure_core()._message(
            "answer", message, attachments, attachment_mode, metadata, conversation_id
        )

    def track_action(
        self,
        action_name: str,
        started_at: str | None = None,
        ended_at: str | None = None,
        duration_ms: float | None = None,
        tools_used: dict[str, Any] | None = None,
        response: str | None = None,
        error_msg: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track an action or tool call; returns at once."""
        self._ensure_core()._action(
            conversation_id,
            action_name,
            started_at,
            ended_at,
            duration_ms,
            tools_used,
            response,
            error_msg,
            metadata,
        )

    def track_button(
        self,
        button_event: str,
        label: str,
        value: str,
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a button click; returns at once."""
        self._ensure_core()._button(conversation_id, button_event, label, value, metadata)

    def track_attachments(
        self,
        attachments: list[dict[str, Any]],
        sender: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: str = "base64",
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track files (``mode`` ``base64`` or ``form_data``); returns at once."""
        self._ensure_core()._attachments(conversation_id, attachments, sender, metadata, mode)

    def track_token_usage(
        self,
        prompt_tokens: int | None = 0,
        completion_tokens: int | None = 0,
        total_tokens: int | None = 0,
        embedding_tokens: int | None = 0,
        *,
        model: str | None = None,
        system: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """Add one LLM call's token counts to the current conversation."""
        self._ensure_core()._token_usage(
            conversation_id,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            embedding_tokens,
            model,
            system,
        )

    def get_token_usage(self, *, conversation_id: str | None = None) -> dict[str, int]:
        """The conversation's token counters, or ``{}``."""
        return self._ensure_core()._get_token_usage(conversation_id)

    def get_tracked_data_summary(self, *, conversation_id: str | None = None) -> dict[str, Any]:
        """What was tracked for the conversation since the last ``send_tracked_data()``."""
        return self._ensure_core()._summary(conversation_id)

    def send_tracked_data(
        self, *, conversation_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Flush the current conversation and return the documented items/summary structure."""
        core = self._ensure_core()
        cid = core._conversation_id(conversation_id)  # resolved in the caller's context
        limit = core._default_timeout() if timeout is None else timeout
        result: dict[str, Any] = self._call(
            lambda: core.send_tracked_data(conversation_id=cid, timeout=limit), limit
        )
        return result

    def configure(
        self,
        api_key: str | None = None,
        conversation_id: str | None = None,
        endpoint: str | None = None,
        log_level: str | None = None,
        **overrides: Any,
    ) -> None:
        """Change settings; invalid values raise :class:`ConfigurationError` here."""
        core = self._ensure_core()
        core._configured_settings(api_key, conversation_id, endpoint, log_level, dict(overrides))
        self._call(
            lambda: core.configure(api_key, conversation_id, endpoint, log_level, **overrides),
            core.settings.shutdown_timeout + 5,
        )
        if conversation_id is not None:
            _current.set(conversation_id)

    @contextlib.contextmanager
    def conversation(self, conversation_id: str, **fields: Any) -> Iterator[ConversationTracker]:
        """Make *conversation_id* current for a ``with`` block in this thread or task."""
        core = self._ensure_core()
        data, size = core._conversation_data(conversation_id, fields)
        token = _current.set(data["conversation_id"])
        try:
            core._record("conversation", data["conversation_id"], data, size, fields=data)
            yield self
        finally:
            _current.reset(token)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything tracked so far is delivered (or dropped); False on timeout."""
        core = self._ensure_core()
        limit = core._default_timeout() if timeout is None else timeout
        return self._call(lambda: core.flush(limit), limit)

    def close(self, timeout: float | None = None) -> None:
        """Flush within *timeout* (default ``shutdown_timeout``) and stop the loop thread."""
        core = self._core
        if core is None or self._loop is None:
            return
        limit = core.settings.shutdown_timeout if timeout is None else timeout
        self._call(lambda: core.aclose(limit), limit + 5)
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        self._thread = None
        self._loop = None
        self._core = None

    def stats(self) -> dict[str, Any]:
        """Delivery counters (see :meth:`AsyncConversationTracker.stats`)."""
        return self._ensure_core().stats()

    @property
    def current_conversation_id(self) -> str | None:
        return self._ensure_core().current_conversation_id

    def __enter__(self) -> ConversationTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        core = self._core
        return f"<ConversationTracker {core!r}>" if core else "<ConversationTracker (not started)>"

    def _after_fork_in_child(self) -> None:
        self._thread = None
        self._loop = None
        self._start_lock = threading.Lock()


_facades: weakref.WeakSet[ConversationTracker] = weakref.WeakSet()


def _reset_facades_in_child() -> None:
    for facade in list(_facades):
        facade._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_facades_in_child)

#: The module-level tracker of the original documentation.
conversation_tracker = ConversationTracker(lazy=True)
