"""The sync facade: the original blocking ``ConversationTracker`` API over the async core.

Design, after httpx's ``Client``/``AsyncClient`` and anyio's blocking portal:

* :class:`ConversationTracker` and :class:`AsyncConversationTracker` share
  :class:`~agentsight_async._tracker.BaseTracker` (validation, the current
  conversation, the hot path, the reports); this class adds only blocking I/O.
* The pipeline runs its flusher on a private event loop in a named daemon
  thread, started on first use - importing this module opens nothing and never
  raises.
* Fire-and-forget calls (``track_*``, ``get_or_create_conversation``) run the
  hot path in the caller's thread: validate, stamp, queue.  They never cross
  threads per call; the flusher is woken at most once per batch.
* Blocking calls (``send_tracked_data``, ``initialize_conversation``,
  ``flush``, ``close``) submit a coroutine to the private loop and wait with a
  deadline (:meth:`Pipeline.call`).  That works from plain threads and from
  inside a running event loop (Jupyter, a FastAPI handler) because the loop
  that does the work is never the caller's.  Called from the private loop's
  own thread - a callback of ours - they raise ``RuntimeError`` instead of
  deadlocking.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from ._config import Settings
from ._context import ConversationContext
from ._events import CONVERSATION, FlushResult
from ._exceptions import ConfigurationError
from ._pipeline import Pipeline
from ._processing import BeforeSend
from ._stats import ErrorCallback
from ._tracker import (
    AsyncConversationTracker,
    BaseTracker,
    build_pipeline,
    conversation_args,
    sharing,
)

logger = logging.getLogger("agentsight_async")


class ConversationTracker(BaseTracker):
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
        before_send: BeforeSend | None = None,
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
            before_send=before_send,
            **overrides,
        )
        self._lazy = lazy
        self._start_lock = threading.Lock()
        self._aio: AsyncConversationTracker | None = None
        super().__init__(None, ConversationContext())
        if not lazy:
            self._start()

    # --- the pipeline, built on first use -------------------------------------------------
    def _start(self) -> Pipeline:
        with self._start_lock:
            pipeline = self._p
            if pipeline is None:
                pipeline = self._build()
                self._attach(pipeline)
                self._aio = None
            pipeline.start_loop_thread()
            return pipeline

    def _build(self) -> Pipeline:
        try:
            return build_pipeline(**self._options)
        except ConfigurationError as exc:
            if not self._lazy:
                raise
            # Importing and tracking never raise because of configuration: track_*
            # become no-ops and the explicit delivery calls raise this error.
            pipeline = build_pipeline(settings=Settings.model_construct(), config_error=exc)
            pipeline.stats.record_error(str(exc))
            return pipeline

    @property
    def aio(self) -> AsyncConversationTracker:
        """The async tracker over this tracker's pipeline (``await tracker.aio.flush()``)."""
        pipeline = self._pipeline
        aio = self._aio
        if aio is None:
            aio = self._aio = sharing(pipeline, self._context)
        return aio

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
        self._set_conversation(conversation_id, conversation_args(locals()))

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
        self._pipeline.check_deliverable()
        ev = self._initialize(conversation_id, conversation_args(locals()))
        if ev is not None:
            limit = self._default_timeout() if timeout is None else timeout
            self._pipeline.call(
                lambda: self._confirm(ev, limit), limit, "initialize_conversation()"
            )

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
        self._message("question", message, attachments, attachment_mode, metadata, conversation_id)

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
        self._message("answer", message, attachments, attachment_mode, metadata, conversation_id)

    #: The older names of the two message calls, used by the published docs' examples.
    track_question = track_human_message
    track_answer = track_agent_message

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
        self._action(
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
        self._button(conversation_id, button_event, label, value, metadata)

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
        self._attachments(conversation_id, attachments, sender, metadata, mode)

    def track_token_usage(
        self,
        prompt_tokens: int | None = 0,
        completion_tokens: int | None = 0,
        total_tokens: int | None = 0,
        embedding_tokens: int | None = 0,
        *,
        model: str | None = None,
        system: str | None = None,
        cache_read_tokens: int | None = 0,
        cache_write_tokens: int | None = 0,
        reasoning_tokens: int | None = 0,
        duration_ms: float | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """Add one LLM call's token counts to the current conversation.

        ``prompt_tokens`` counts every input token, cached ones included;
        ``cache_read_tokens``/``cache_write_tokens`` are parts of it, and
        ``reasoning_tokens`` a part of ``completion_tokens``.
        """
        self._token_usage(
            conversation_id,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            embedding_tokens,
            model,
            system,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            duration_ms=duration_ms,
        )

    def get_token_usage(self, *, conversation_id: str | None = None) -> dict[str, int]:
        """The conversation's token counters, or ``{}``."""
        return self._get_token_usage(conversation_id)

    def get_tracked_data_summary(self, *, conversation_id: str | None = None) -> dict[str, Any]:
        """What was tracked for the conversation since the last ``send_tracked_data()``."""
        return self._summary(conversation_id)

    def send_tracked_data(
        self, *, conversation_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Flush the current conversation and return the documented items/summary structure."""
        pipeline = self._pipeline
        cid = self._context.resolve(conversation_id)  # resolved in the caller's context
        limit = self._default_timeout() if timeout is None else timeout
        pipeline.call(lambda: self._flush_conversation(cid, limit), limit, "send_tracked_data()")
        return self._report(cid)

    def configure(
        self,
        api_key: str | None = None,
        conversation_id: str | None = None,
        endpoint: str | None = None,
        log_level: str | None = None,
        **overrides: Any,
    ) -> None:
        """Change settings; invalid values raise :class:`ConfigurationError` here."""
        pipeline = self._pipeline
        new = self._configured_settings(api_key, conversation_id, endpoint, log_level, overrides)
        pipeline.call(lambda: pipeline.reconfigure(new), new.shutdown_timeout + 5, "configure()")
        self._configured(new)

    @contextlib.contextmanager
    def conversation(self, conversation_id: str, **fields: Any) -> Iterator[ConversationTracker]:
        """Make *conversation_id* current for a ``with`` block in this thread or task."""
        data, size = self._conversation_data(conversation_id, fields)
        token = self._context.enter(data["conversation_id"])
        try:
            self._record_conversation(CONVERSATION, data, size)
            yield self
        finally:
            self._context.exit(token)

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Block until everything tracked so far is resolved, at most *timeout* seconds.

        Returns a :class:`FlushResult`, true only if every event queued at the
        call was delivered (see :meth:`AsyncConversationTracker.flush`).
        """
        pipeline = self._pipeline
        limit = self._default_timeout() if timeout is None else timeout
        return pipeline.call(lambda: pipeline.flush(None, limit), limit, "flush()")

    def close(self, timeout: float | None = None) -> FlushResult:
        """Flush within *timeout* (default ``shutdown_timeout``) and stop the loop thread.

        Returns what became of the events queued at the call (a
        :class:`FlushResult`).  The tracker can be used again afterwards: the
        next call starts a new pipeline (reading the settings again) with no
        current conversation.
        """
        with self._start_lock:
            pipeline, self._p, self._aio = self._p, None, None
            self._context = ConversationContext()  # a fresh start forgets the conversations
        if pipeline is None:
            return FlushResult()
        limit = pipeline.settings.shutdown_timeout if timeout is None else timeout
        try:
            return pipeline.call(lambda: pipeline.aclose(limit), limit + 5, "close()")
        finally:
            pipeline.stop_loop_thread()

    def __enter__(self) -> ConversationTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The module-level tracker of the original documentation.
conversation_tracker = ConversationTracker(lazy=True)
