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
    """The documented blocking tracker; every call of the original works unchanged.

    ``conversation_tracker`` (module level) is the ready-made instance the
    original documentation uses. Create your own to pass settings explicitly:
    ``ConversationTracker(api_key=..., endpoint=...)``. The tracking calls
    return at once from any thread; the explicit delivery calls
    (:meth:`send_tracked_data`, :meth:`flush`, :meth:`close`,
    :meth:`initialize_conversation`, :meth:`configure`) block until their work
    is done or their deadline passes, also from inside a running event loop.
    Delivery runs on a private event loop in a daemon thread.

    :attr:`aio` is the :class:`AsyncConversationTracker` over the same queues,
    for ``await`` calls.

    Args:
        api_key: the AgentSight API key; default ``AGENTSIGHT_API_KEY``. Not
            needed for a local endpoint.
        conversation_id: a default conversation (``AGENTSIGHT_CONVERSATION_ID``).
        endpoint: where events go (``https://...``, ``sqlite:///path``,
            ``memory://name``); default ``AGENTSIGHT_API_ENDPOINT``.
        log_level: the level of the ``agentsight_async`` logger.
        on_error: ``on_error(exc, context)``, called once per batch that lost
            events.
        transport: an ``httpx.AsyncBaseTransport`` for the HTTP exporters.
        before_send: a hook called with each event before it is sent (see
            :class:`AsyncConversationTracker`).
        lazy: build the pipeline on first use instead of now: configuration
            errors are then logged and disable tracking instead of raising, and
            a tracker created before a fork starts in the child (the module-level
            instance is lazy).
        **overrides: any other :class:`Settings` field, over ``AGENTSIGHT_*`` and
            ``.env``.

    Raises:
        ConfigurationError: a setting is invalid (unless *lazy*).
        InvalidApiKeyException: the API key is malformed (unless *lazy*).
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
        """Record the conversation and make it current for this thread (or task).

        The conversation's fields travel with its events; calling it again with new
        values updates them. Prefer :meth:`conversation` in servers: it restores the
        previous conversation when the block ends.

        Args:
            conversation_id: your id for the conversation (a chat or ticket id; up to
                255 characters).
            customer_id: your id for the end user.
            customer_ip_address: the end user's IPv4 or IPv6 address.
            device: the end user's device, e.g. ``"desktop"`` or ``"mobile"``.
            source: where the conversation happens, e.g. ``"web"``, ``"slack"``.
            language: the conversation's language, e.g. ``"en"``.
            name: a display name.
            environment: the AgentSight environment; default ``AGENTSIGHT_ENVIRONMENT``,
                then ``"development"``.
            metadata: JSON-serialisable ``dict`` stored with the conversation.

        Raises:
            InvalidConversationDataException: a field is invalid (names it).
            MissingConversationIdException: *conversation_id* is missing or blank.
        """
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
        """Create the conversation on the backend now, not marked as used (a "visit").

        For a chat that was opened but where nobody typed yet. Blocks until the
        backend's answer; does not change the current conversation.

        Args:
            conversation_id: your id for the conversation (a chat or ticket id; up to
                255 characters).
            customer_id: your id for the end user.
            customer_ip_address: the end user's IPv4 or IPv6 address.
            device: the end user's device, e.g. ``"desktop"`` or ``"mobile"``.
            source: where the conversation happens, e.g. ``"web"``, ``"slack"``.
            language: the conversation's language, e.g. ``"en"``.
            name: a display name.
            environment: the AgentSight environment; default ``AGENTSIGHT_ENVIRONMENT``,
                then ``"development"``.
            metadata: JSON-serialisable ``dict`` stored with the conversation.
            timeout: seconds to wait for the answer; default the retry budget plus
                one request timeout.

        Raises:
            InvalidConversationDataException: a field is invalid.
            ConversationApiException: the backend refused it.
            ConversationNetworkException: no answer within *timeout* (the conversation
                stays queued and is retried in the background).
            NoApiKeyException: tracking is disabled for lack of a key (or another
                ``ConfigurationError`` found in the environment).
        """
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
        """Track a message from the end user (``sender: end_user``).

        Returns at once: validates, stamps the time and queues the message;
        delivery happens in the background. A full queue drops it (counted as
        ``queue_full``) rather than waiting.

        Args:
            message: the text, up to ``max_message_chars`` (1,000,000) characters.
            attachments: files sent with the message: a list of dicts with
                ``filename``, ``data`` (``bytes``, or base64 text in ``base64`` mode)
                and optionally ``mime_type`` (guessed from the name or content when
                missing).
            attachment_mode: ``"base64"`` (JSON) or ``"form_data"`` (multipart upload).
            metadata: JSON-serialisable ``dict`` stored with the message.
            conversation_id: the conversation; default: the current one of this task
                or thread.

        Raises:
            InvalidQuestionDataException: the message is empty, blank, not a string, longer
                than ``max_message_chars`` or not valid UTF-8; or *metadata* is not a
                ``dict`` of JSON values.
            InvalidAttachmentException: an attachment entry or *attachment_mode* is invalid,
                or the files of the call exceed ``max_attachment_bytes``.
            MissingConversationIdException: there is no conversation to track into
                (see Concepts > Conversations and context).
        """
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
        """Track a message from the agent (``sender: agent``).

        Returns at once: validates, stamps the time and queues the message;
        delivery happens in the background.

        Args:
            message: the text, up to ``max_message_chars`` (1,000,000) characters.
            attachments: files sent with the message: a list of dicts with
                ``filename``, ``data`` (``bytes``, or base64 text in ``base64`` mode)
                and optionally ``mime_type`` (guessed from the name or content when
                missing).
            attachment_mode: ``"base64"`` (JSON) or ``"form_data"`` (multipart upload).
            metadata: JSON-serialisable ``dict`` stored with the message.
            conversation_id: the conversation; default: the current one of this task
                or thread.

        Raises:
            InvalidAnswerDataException: the message is empty, blank, not a string, longer
                than ``max_message_chars`` or not valid UTF-8; or *metadata* is not a
                ``dict`` of JSON values.
            InvalidAttachmentException: an attachment entry or *attachment_mode* is invalid,
                or the files of the call exceed ``max_attachment_bytes``.
            MissingConversationIdException: there is no conversation to track into
                (see Concepts > Conversations and context).
        """
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
        """Track an action or tool call: its name, timing, tools, response or error.

        Returns at once: the event is queued and delivered in the background.

        Args:
            action_name: what was done, e.g. ``"search_kb"`` (up to 255 characters).
            started_at: when it started, ISO-8601 (default: unset).
            ended_at: when it ended, ISO-8601.
            duration_ms: how long it took, in milliseconds.
            tools_used: JSON-serialisable ``dict`` of what it used (arguments, tools).
            response: what it answered, as text.
            error_msg: why it failed, as text; an action with one counts as failed.
            metadata: JSON-serialisable ``dict`` stored with the action.
            conversation_id: the conversation; default: the current one.

        Raises:
            InvalidConversationDataException: an argument is invalid (names it).
            MissingConversationIdException: there is no conversation to track into.
        """
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
        """Track a button click.

        Returns at once: the event is queued and delivered in the background.

        Args:
            button_event: what the click means, e.g. ``"user_confirmation"``.
            label: the button's label.
            value: the value it carries.
            metadata: JSON-serialisable ``dict`` stored with the click.
            conversation_id: the conversation; default: the current one.

        Raises:
            InvalidConversationDataException: an argument is empty or invalid.
            MissingConversationIdException: there is no conversation to track into.
        """
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
        """Track files on their own, not attached to a message.

        Returns at once: the event is queued and delivered in the background.

        Args:
            attachments: a list of dicts with ``filename``, ``data`` (``bytes``, or
                base64 text in ``base64`` mode) and optionally ``mime_type``.
            sender: who sent them, ``"end_user"`` (default) or ``"agent"``.
            metadata: JSON-serialisable ``dict`` stored with the files.
            mode: ``"base64"`` (JSON) or ``"form_data"`` (multipart upload).
            conversation_id: the conversation; default: the current one.

        Raises:
            InvalidAttachmentException: the list, an entry or *mode* is invalid, or
                the files exceed ``max_attachment_bytes`` together.
            MissingConversationIdException: there is no conversation to track into.
        """
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
        """Record one LLM call's token counts in the conversation (sent as its own event).

        Counts are one call's, not running totals; ``get_token_usage()`` adds them
        up per conversation. ``total_tokens`` is taken as given, as in the original
        API.

        Args:
            prompt_tokens: every input token, cached ones included.
            completion_tokens: every output token, reasoning included.
            total_tokens: the call's total, as your provider reports it.
            embedding_tokens: tokens of an embeddings call.
            model: the model that answered.
            system: the provider (``"openai"``, ``"anthropic"`` ...).
            cache_read_tokens: the part of *prompt_tokens* read from a cache.
            cache_write_tokens: the part of *prompt_tokens* written to a cache.
            reasoning_tokens: the part of *completion_tokens* spent reasoning.
            duration_ms: how long the call took.
            conversation_id: the conversation; default: the current one.

        Raises:
            InvalidConversationDataException: a count is negative, not an ``int``,
                or a part exceeds its whole.
            MissingConversationIdException: there is no conversation to track into.
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
        """The conversation's token counters, added up over its ``track_token_usage()`` calls.

        Args:
            conversation_id: the conversation; default: the current one.

        Returns:
            ``{"prompt_tokens", "completion_tokens", "total_tokens",
            "embedding_tokens"}`` (plus ``cache_read_tokens``, ``cache_write_tokens``,
            ``reasoning_tokens`` once reported), or ``{}`` if it counted none.
        """
        return self._get_token_usage(conversation_id)

    def get_tracked_data_summary(self, *, conversation_id: str | None = None) -> dict[str, Any]:
        """Everything tracked for the conversation since the last ``send_tracked_data()``.

        Local only: no request is made. Items already delivered in the background
        are included (their attachment bytes are replaced by a size once delivered).

        Args:
            conversation_id: the conversation; default: the current one.

        Returns:
            ``{"items": [{"index", "type", "timestamp", ...}], "summary": {...,
            "total"}, "conversation_id"}``, in tracking order.
        """
        return self._summary(conversation_id)

    def send_tracked_data(
        self, *, conversation_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Flush the conversation now and report every item resolved since the last call.

        Blocks until its events are resolved or *timeout* passes. It works from any
        thread and from inside a running event loop - but blocks that loop while it
        waits (a warning says so, once): in async code ``await
        tracker.aio.send_tracked_data()`` instead.

        Args:
            conversation_id: the conversation; default: the current one.
            timeout: seconds to wait; default the retry budget plus one request
                timeout. Items still unconfirmed then stay queued and are reported by
                the next call.

        Returns:
            The original structure - ``{"items": [{"index", "type", "timestamp",
            "success", "response" or "error"}], "summary": {"questions", "answers",
            "attachments", "actions", "buttons", "errors"}}`` - plus
            ``conversation_id``, and ``conversation_generated: True`` when nothing
            had named the conversation.

        Raises:
            FlushTimeoutError: the wait ran past *timeout* plus a second (nothing is
                lost: the events stay queued).
            NoDataToSendException: nothing was tracked since the last call.
            MissingConversationIdException: there is no conversation to report on.
            NoApiKeyException: tracking is disabled for lack of a key (or another
                ``ConfigurationError`` found in the environment).
        """
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
        """Change settings at run time; queued events go out with the new settings.

        The flusher restarts with the new settings. Nothing changes if a value is
        invalid.

        Args:
            api_key: a new API key.
            conversation_id: a new default conversation (``AGENTSIGHT_CONVERSATION_ID``),
                also made current for the calling task.
            endpoint: a new endpoint.
            log_level: a new level for the ``agentsight_async`` logger.
            **overrides: any other :class:`Settings` field.

        Raises:
            ConfigurationError: a value is invalid (names the variable).
        """
        pipeline = self._pipeline
        new = self._configured_settings(api_key, conversation_id, endpoint, log_level, overrides)
        pipeline.call(lambda: pipeline.reconfigure(new), new.shutdown_timeout + 5, "configure()")
        self._configured(new)

    @contextlib.contextmanager
    def conversation(self, conversation_id: str, **fields: Any) -> Iterator[ConversationTracker]:
        """Scope the current conversation to a block, and record the conversation.

        ``with tracker.conversation("chat-1", name="Support"):`` - every
        ``track_*`` inside the block, in this thread (or task), goes to
        ``chat-1``; the previous current conversation is restored afterwards.

        Args:
            conversation_id: your id for the conversation.
            **fields: the conversation's fields, as for :meth:`get_or_create_conversation`
                (``customer_id``, ``name``, ``metadata`` ...).

        Yields:
            This tracker.

        Raises:
            InvalidConversationDataException: a field is invalid (names it).
            MissingConversationIdException: *conversation_id* is missing or blank.
        """
        data, size = self._conversation_data(conversation_id, fields)
        token = self._context.enter(data["conversation_id"])
        try:
            self._record_conversation(CONVERSATION, data, size)
            yield self
        finally:
            self._context.exit(token)

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything tracked so far and block until it is resolved, at most *timeout* seconds.

        Args:
            timeout: seconds to wait; default the retry budget plus one request
                timeout (75 s).

        Returns:
            A :class:`FlushResult` about the events queued at the call: true only
            if every one was delivered (or withheld on purpose); ``delivered``,
            ``dropped`` (by reason), ``pending`` (still queued, still retried) and
            ``filtered`` say what became of them.

        Raises:
            FlushTimeoutError: the wait ran past *timeout* plus a second (nothing is
                lost: the events stay queued).
            NoApiKeyException: tracking is disabled for lack of a key (or another
                ``ConfigurationError`` found in the environment). With
                ``AGENTSIGHT_ENABLED=false`` nothing is raised.
        """
        pipeline = self._pipeline
        limit = self._default_timeout() if timeout is None else timeout
        return pipeline.call(lambda: pipeline.flush(None, limit), limit, "flush()")

    def close(self, timeout: float | None = None) -> FlushResult:
        """Flush within *timeout*, then stop the tracker's loop thread.

        Events that could not be delivered by then are dropped and counted under
        ``dropped["shutdown"]`` - or, with a spool, kept on disk for the next
        start (``pending``). The tracker can be used again afterwards: the next
        call starts a new pipeline (reading the settings again), with fresh
        counters and no current conversation.

        Args:
            timeout: seconds to wait; default ``AGENTSIGHT_SHUTDOWN_TIMEOUT`` (5 s).

        Returns:
            A :class:`FlushResult` about the events queued at the call.

        Raises:
            FlushTimeoutError: the close ran past *timeout* plus five seconds.
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
"""The ready-made :class:`ConversationTracker` of the original documentation.

``from agentsight_async import conversation_tracker``.  It is lazy: it reads
``AGENTSIGHT_*`` and ``.env`` on first use, so importing never raises; if the
configuration is invalid it logs the error once, keeps every ``track_*`` call a
safe no-op, and its explicit delivery calls raise that error.
"""
