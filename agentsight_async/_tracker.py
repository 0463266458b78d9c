"""The public tracking API: :class:`BaseTracker` and the async :class:`AsyncConversationTracker`.

After httpx's ``BaseClient``: :class:`BaseTracker` holds what the async
tracker and the sync facade (``_facade.ConversationTracker``) share - the
settings, the current conversation, call-site validation, the hot path into
the :class:`~agentsight_async._pipeline.Pipeline`, and the local reports -
and each subclass adds only its I/O methods: coroutines here, blocking calls
there.

A ``track_*`` call validates its arguments, stamps the time and queues one
event.  That is all the caller pays for: no I/O, no thread hop, no per-event
wake-up.  The pipeline's background flusher does the rest.

The *current* conversation lives in a ``ContextVar`` (see ``_context``): each
asyncio task and each thread has its own, so concurrent conversations never
mix.  Code that never sets one in its context falls back to the last
conversation set anywhere (``get_or_create_conversation``), then
``AGENTSIGHT_CONVERSATION_ID``, then a generated ``conv_<12 hex>`` - the
original SDK's behaviour for single-conversation scripts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from . import _inputs as inputs
from . import _reports as reports
from . import _validation as v
from ._config import Settings, load_settings
from ._context import ConversationContext
from ._events import (
    ACTION,
    ANSWER,
    ATTACHMENTS,
    BUTTON,
    CONVERSATION,
    CONVERSATION_FIELDS,
    CONVERSATION_OPENED,
    QUESTION,
    TOKEN_DETAIL_KEYS,
    TOKEN_KEYS,
    TOKEN_USAGE,
    Event,
    FlushResult,
    iso_utc,
)
from ._exceptions import (
    ConfigurationError,
    ConversationApiException,
    ConversationNetworkException,
    NoDataToSendException,
)
from ._exporters._base import Exporter
from ._pipeline import ExporterFactory, Pipeline
from ._processing import BeforeSend
from ._queues import SMALL_EVENT
from ._stats import ErrorCallback, Stats
from .integrations import _capture as capture

logger = logging.getLogger("agentsight_async")


def _default_exporter_factory(transport: httpx.AsyncBaseTransport | None) -> ExporterFactory:
    def factory(settings: Settings, stats: Stats) -> Exporter:
        from ._exporters import create_exporter

        return create_exporter(settings, stats, transport=transport)

    return factory


def build_pipeline(
    api_key: str | None = None,
    *,
    settings: Settings | None = None,
    on_error: ErrorCallback | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    exporter_factory: ExporterFactory | None = None,
    config_error: ConfigurationError | None = None,
    before_send: BeforeSend | None = None,
    **overrides: Any,
) -> Pipeline:
    """A pipeline from a tracker's constructor arguments.

    Settings come from *settings*, else from *api_key* and *overrides* (any
    :class:`Settings` field, ``endpoint=`` for ``api_endpoint``) over the
    environment.  Raises :class:`ConfigurationError` for invalid values.
    *config_error* builds a disabled pipeline whose explicit delivery calls
    raise it (the lazy singleton's configuration error).
    """
    if settings is None:
        endpoint = overrides.pop("endpoint", None)
        if endpoint is not None:
            overrides.setdefault("api_endpoint", endpoint)
        settings = load_settings(api_key=api_key, **overrides)
    return Pipeline(
        settings,
        exporter_factory=exporter_factory or _default_exporter_factory(transport),
        on_error=on_error,
        config_error=config_error,
        before_send=before_send,
    )


class BaseTracker:
    """What the async tracker and the sync facade share; not used on its own.

    Subclasses provide :meth:`_start` (how the pipeline is built on first use)
    and the I/O methods.  Everything here is synchronous and never blocks.
    """

    def __init__(self, pipeline: Pipeline | None, context: ConversationContext) -> None:
        self._p = pipeline
        self._context = context
        self._fast_chars = 0
        if pipeline is not None:
            self._attach(pipeline)
        capture.register(self)

    def _start(self) -> Pipeline:
        """Build (or rebuild) the pipeline on first use; the facade is lazy."""
        raise RuntimeError("agentsight_async: this tracker has no pipeline")

    @property
    def _pipeline(self) -> Pipeline:
        return self._p or self._start()

    def _attach(self, pipeline: Pipeline) -> None:
        self._p = pipeline
        # The hot path takes short plain messages straight into the inbox.
        self._fast_chars = min(SMALL_EVENT - v.EVENT_OVERHEAD, pipeline.settings.max_message_chars)
        if pipeline.settings.conversation_id is not None:
            self._context.configured = pipeline.settings.conversation_id
        capture.apply_settings(pipeline.settings)

    # --- state -------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The settings in effect (read-only; change them with ``configure()``)."""
        return self._pipeline.settings

    @property
    def enabled(self) -> bool:
        """False when tracking is disabled (no key and no local endpoint, or ENABLED=false)."""
        return not self._pipeline.disabled

    def stats(self) -> dict[str, Any]:
        """The tracker's counters: a snapshot, safe to call from any thread.

        Returns:
            A dict with ``tracked``, ``delivered``, ``retried``, ``requests``,
            ``batches``, ``dropped`` (by reason) and ``dropped_total``,
            ``queued_events``, ``queued_bytes``, ``in_flight``, ``last_error``,
            ``last_error_at``, ``failing_since``, ``throttled``, ``exporter``,
            ``enabled``, and ``capture``: the process-wide counters of automatic
            capture (``recorded``, ``unattributed``, ``ambiguous``, ``failed``,
            ``degraded``) - a captured call that found no tracker belongs to none, so
            it is counted for the whole process (see Operations).
        """
        return {**self._pipeline.snapshot(), "capture": capture.counters()}

    @property
    def is_closed(self) -> bool:
        """True once ``aclose()`` stopped this tracker for good (captures then skip it)."""
        p = self._p
        return p is not None and p.closed

    @property
    def current_conversation_id(self) -> str | None:
        """The conversation this task/thread tracks into, or None if none was set anywhere."""
        return self._context.current

    # --- validation and the hot path -----------------------------------------------------
    def _conversation_data(
        self, conversation_id: Any, fields: dict[str, Any], *, is_used: bool = True
    ) -> tuple[dict[str, Any], int]:
        return inputs.conversation(
            conversation_id,
            fields,
            is_used=is_used,
            default_environment=self._pipeline.settings.environment,
        )

    def _set_conversation(self, conversation_id: Any, fields: dict[str, Any]) -> str:
        data, size = self._conversation_data(conversation_id, fields)
        cid: str = data["conversation_id"]
        self._record_conversation(CONVERSATION, data, size)
        self._context.set_current(cid)
        return cid

    def _record_conversation(self, kind: str, data: dict[str, Any], size: int) -> Event | None:
        ev = Event(kind, data["conversation_id"], time.time_ns(), 0, data, size)
        return ev if self._pipeline.append(ev, data) else None

    def _initialize(self, conversation_id: Any, fields: dict[str, Any]) -> Event | None:
        data, size = self._conversation_data(conversation_id, fields, is_used=False)
        return self._record_conversation(CONVERSATION_OPENED, data, size)

    def _message(
        self,
        kind: str,
        message: Any,
        attachments: Any,
        attachment_mode: Any,
        metadata: Any,
        conversation_id: str | None,
    ) -> None:
        p = self._p or self._start()
        if (
            attachments is None
            and metadata is None
            and type(message) is str
            and 0 < len(message) <= self._fast_chars
            and message.isascii()
            and not message.isspace()
        ):
            # The common case - short plain text, nothing attached - is the hot
            # path: the same checks as below, then the text itself is queued.
            cid = self._context.resolve(conversation_id)
            p.push(kind, cid, message, v.EVENT_OVERHEAD + len(message))
            return
        s = p.settings
        data, size = inputs.message(
            "end_user" if kind == QUESTION else "agent",
            message,
            attachments,
            attachment_mode,
            metadata,
            max_chars=s.max_message_chars,
            max_attachment_bytes=s.max_attachment_bytes,
        )
        p.push(kind, self._context.resolve(conversation_id), data, size)

    def _action(self, conversation_id: str | None, *args: Any) -> None:
        p = self._pipeline
        data, size = inputs.action(*args, max_chars=p.settings.max_message_chars)
        p.push(ACTION, self._context.resolve(conversation_id), data, size)

    def _button(self, conversation_id: str | None, *args: Any) -> None:
        data, size = inputs.button(*args)
        self._pipeline.push(BUTTON, self._context.resolve(conversation_id), data, size)

    def _attachments(self, conversation_id: str | None, *args: Any) -> None:
        p = self._pipeline
        data, size = inputs.attachments(*args, max_attachment_bytes=p.settings.max_attachment_bytes)
        p.push(ATTACHMENTS, self._context.resolve(conversation_id), data, size)

    def _token_usage(self, conversation_id: str | None, *args: Any, **details: Any) -> None:
        p = self._pipeline
        data, size = inputs.token_usage(*args, **details)
        cid = self._context.resolve(conversation_id)
        if p.push(TOKEN_USAGE, cid, data, size) or p.disabled:
            counts = {k: data[k] for k in TOKEN_KEYS}
            counts.update((k, data[k]) for k in TOKEN_DETAIL_KEYS if k in data)
            p.queues.add_tokens(cid, counts)

    # --- automatic capture -----------------------------------------------------------------
    def record_model_call(
        self,
        *,
        provider: str,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        embedding_tokens: int = 0,
        requested_model: str | None = None,
        operation: str | None = None,
        duration_ms: float | None = None,
        streamed: bool | None = None,
        error: str | None = None,
        usage_reported: bool = True,
        conversation_id: str | None = None,
    ) -> None:
        """Record one model call as a token-usage item: what the integrations call.

        Synchronous and non-blocking from any thread or task, like ``track_*``.

        Args:
            provider: who served the call (``"openai"``, ``"anthropic"`` ...); sent
                as ``gen_ai.system``.
            model: the model that answered (the one billed).
            prompt_tokens: every input token, cached ones included.
            completion_tokens: every output token, reasoning included.
            cache_read_tokens: the part of *prompt_tokens* read from a cache.
            cache_write_tokens: the part of *prompt_tokens* written to a cache.
            reasoning_tokens: the part of *completion_tokens* spent reasoning.
            embedding_tokens: tokens of an embeddings call.
            requested_model: the model asked for, kept when it differs from *model*.
            operation: ``"chat"``, ``"text_completion"`` or ``"embeddings"``.
            duration_ms: how long the call took (the item ends when it is recorded).
            streamed: whether the answer was streamed.
            error: why the call failed (its exception type), if it did.
            usage_reported: ``False`` when a stream ended without a usage report
                (the zeros then mean "unknown").
            conversation_id: as for ``track_*``: explicit, else the current one.

        Raises:
            InvalidConversationDataException: for invalid counts or texts.
            MissingConversationIdException: when there is no conversation to use.
        """
        self._token_usage(
            conversation_id,
            prompt_tokens,
            completion_tokens,
            prompt_tokens + completion_tokens,
            embedding_tokens,
            model,
            provider,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            duration_ms=duration_ms,
            requested_model=requested_model if requested_model != model else None,
            operation=operation,
            streamed=streamed,
            error=error,
            usage_reported=usage_reported,
        )

    def record_tool_call(
        self,
        name: str,
        *,
        started_ns: int,
        ended_ns: int,
        arguments: dict[str, Any] | None = None,
        response: str | None = None,
        error: str | None = None,
        metadata: dict[str, Any] | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """Record one finished tool call as an action: what ``@tool`` and the handlers call.

        Synchronous and non-blocking from any thread or task.

        Args:
            name: the tool's name (the action's ``action_name``).
            started_ns: when the call started, a ``time.time_ns()`` value.
            ended_ns: when it ended, a ``time.time_ns()`` value.
            arguments: the call's arguments, sent as ``tools_used``.
            response: what it returned, as text.
            error: why it failed, as text (the action's ``error_msg``).
            metadata: JSON-serialisable ``dict`` stored with the action.
            conversation_id: as for ``track_*``: explicit, else the current one.

        Raises:
            InvalidConversationDataException: for an invalid name, arguments or times.
            MissingConversationIdException: when there is no conversation to use.
        """
        self._action(
            conversation_id,
            name,
            iso_utc(started_ns),
            iso_utc(ended_ns),
            round(max(ended_ns - started_ns, 0) / 1e6, 3),
            arguments,
            response,
            error,
            metadata,
        )

    def tool(self, fn: Any = None, /, **options: Any) -> Any:
        """``@tracker.tool``: time each call of a function as an action of this tracker.

        The same as :func:`agentsight_async.tool` with this tracker given: calls
        are recorded into this tracker's current conversation of the calling task
        or thread, and not recorded where it has none.

        Args:
            fn: the function (sync or async), when used as a bare ``@tracker.tool``.
            **options: ``name=`` (the action's name; default the function's),
                ``capture_args=`` and ``capture_result=`` (``False`` keeps the
                arguments / the return value out of the action).

        Returns:
            The decorated function (same signature, result and exceptions), or a
            decorator when called with options only.
        """
        from ._decorators import decorate

        return decorate(fn, "tool", tracker=self, **options)

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """``@tracker.task``: like :meth:`tool`, for a step of the agent's own work.

        The action carries ``metadata={"kind": "task"}``.

        Args:
            fn: the function (sync or async), when used as a bare ``@tracker.task``.
            **options: ``name=``, ``capture_args=``, ``capture_result=``, as for
                :meth:`tool`.

        Returns:
            The decorated function, or a decorator when called with options only.
        """
        from ._decorators import decorate

        return decorate(fn, "task", tracker=self, **options)

    # --- local reports -------------------------------------------------------------------
    def _get_token_usage(self, conversation_id: str | None) -> dict[str, int]:
        cid = conversation_id if conversation_id is not None else self._context.current
        return reports.token_usage(self._pipeline.queues.tokens(cid)) if cid else {}

    def _summary(self, conversation_id: str | None) -> dict[str, Any]:
        cid = conversation_id if conversation_id is not None else self._context.current
        events = self._pipeline.queues.tracked_events(cid) if cid else []
        return reports.tracked_summary(cid, events)

    def _report(self, cid: str) -> dict[str, Any]:
        p = self._pipeline
        results = p.queues.take_results(cid)
        if not results and p.disabled:
            return reports.send_report([])  # disabled: every call stays safe, nothing sent
        if not results:
            raise NoDataToSendException(f"No tracked data found for conversation: {cid}")
        results.sort(key=lambda r: r.event.seq)
        report = reports.send_report(results)
        report["conversation_id"] = cid
        if cid in self._context.generated:
            # nothing named a conversation: say where the events went
            report["conversation_generated"] = True
        return report

    def _default_timeout(self) -> float:
        s = self._pipeline.settings
        return s.retry_budget + s.request_timeout

    async def _flush_conversation(self, cid: str, timeout: float) -> None:
        """Wait (on the pipeline's loop) until *cid*'s queued events are resolved."""
        if (await self._pipeline.flush(cid, timeout)).pending:
            logger.warning(
                "agentsight_async: send_tracked_data(%r) timed out after %.1f s; "
                "unconfirmed items stay queued",
                cid,
                timeout,
            )

    async def _confirm(self, ev: Event, timeout: float) -> None:
        """Wait (on the pipeline's loop) for a conversation item's answer; raise if it failed."""
        p = self._pipeline
        if (await p.flush(ev.conversation_id, timeout)).pending:
            raise ConversationNetworkException(
                f"conversation {ev.conversation_id!r} was not confirmed within {timeout:.1f} s; "
                "it stays queued and is retried in the background"
            )
        result = p.queues.find_result(ev)
        if result is not None and not result.ok:
            raise ConversationApiException(
                f"creating conversation {ev.conversation_id!r} failed: {result.error}",
                response_data=result.response,
            )

    def _configured_settings(
        self,
        api_key: str | None,
        conversation_id: str | None,
        endpoint: str | None,
        log_level: str | None,
        overrides: dict[str, Any],
    ) -> Settings:
        """The settings ``configure()`` asks for; raises :class:`ConfigurationError`."""
        current_settings = self._pipeline.settings
        current = current_settings.model_dump()
        key = current_settings.api_key
        current["api_key"] = key.get_secret_value() if key else None
        changes = {
            "api_key": api_key,
            "conversation_id": conversation_id,
            "api_endpoint": endpoint or overrides.pop("api_endpoint", None),
            "log_level": log_level,
            **overrides,
        }
        current.update({k: val for k, val in changes.items() if val is not None})
        return load_settings(**current)

    def _configured(self, settings: Settings) -> None:
        """After ``configure()``: the hot path's limits and the configured conversation.

        A ``conversation_id`` given to ``configure()`` is the process-wide default
        and the current conversation of the caller's task or thread.
        """
        self._attach(self._pipeline)
        if settings.conversation_id is not None:
            self._context.enter(settings.conversation_id)

    def __repr__(self) -> str:
        p = self._p
        if p is None:
            return f"<{type(self).__name__} (not started)>"
        s = p.settings
        key = "set" if s.api_key else "none"
        return (
            f"<{type(self).__name__} endpoint={s.api_endpoint!r} "
            f"protocol={s.protocol!r} api_key={key} enabled={not p.disabled}>"
        )


def conversation_args(local_vars: dict[str, Any]) -> dict[str, Any]:
    """The conversation fields among a documented method's arguments (its ``locals()``)."""
    return {k: local_vars[k] for k in CONVERSATION_FIELDS}


class AsyncConversationTracker(BaseTracker):
    """Track AI-agent conversations from async code; deliver them in the background.

    Every method of the original ``ConversationTracker`` is here as a
    coroutine with the same arguments (``await tracker.track_human_message(...)``),
    plus an explicit ``conversation_id=`` on each tracking call and
    :meth:`conversation` to scope the current conversation to a block.

    Use it as ``async with AsyncConversationTracker() as tracker:`` or call
    :meth:`aclose` before the event loop ends; events still queued when a loop
    ends are kept and sent by the next loop that uses the tracker, or at
    interpreter exit.

    Args:
        api_key: the AgentSight API key; default ``AGENTSIGHT_API_KEY``. Not
            needed for a local endpoint.
        endpoint: where events go (``https://...``, ``sqlite:///path``,
            ``memory://name``); default ``AGENTSIGHT_API_ENDPOINT``.
        settings: a complete :class:`Settings` to use instead of the arguments
            and the environment.
        on_error: ``on_error(exc, context)``, called once per batch that lost
            events (see Concepts > Errors).
        transport: an ``httpx.AsyncBaseTransport`` for the HTTP exporters (tests,
            proxies).
        exporter_factory: ``factory(settings, stats) -> Exporter``, to replace the
            exporter altogether.
        before_send: called with each event as plain data - ``{"kind",
            "conversation_id", "timestamp", "data"}`` - once, off the caller's hot
            path, before the spool and the exporter see it; it returns the event,
            a changed copy, or ``None`` to withhold it (counted as ``filtered``).
            An exception in it drops the event (``before_send_error``), never sends
            it unredacted.
        **overrides: any other :class:`Settings` field (``protocol="rest"``,
            ``flush_interval=0.5`` ...), over ``AGENTSIGHT_*`` and ``.env``.

    Raises:
        ConfigurationError: a setting is invalid (the message names the variable).
        InvalidApiKeyException: the API key is malformed.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        endpoint: str | None = None,
        settings: Settings | None = None,
        on_error: ErrorCallback | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        exporter_factory: ExporterFactory | None = None,
        before_send: BeforeSend | None = None,
        **overrides: Any,
    ) -> None:
        pipeline = build_pipeline(
            api_key,
            settings=settings,
            on_error=on_error,
            transport=transport,
            exporter_factory=exporter_factory,
            before_send=before_send,
            endpoint=endpoint,
            **overrides,
        )
        super().__init__(pipeline, ConversationContext())

    def _must_wait(self) -> bool:
        """Enter an ``await track_*``: bind the flusher; True if it should wait for room.

        Sync calls never wait (they drop and count); awaiting callers may wait
        up to ``backpressure_timeout`` for the flusher to free space first.  A
        plain function, so the common case costs no extra coroutine.
        """
        p = self._p or self._start()
        p.bind()
        return p.waits_for_room and p.queues.full()

    @contextlib.asynccontextmanager
    async def conversation(
        self, conversation_id: str, **fields: Any
    ) -> AsyncIterator[AsyncConversationTracker]:
        """Scope the current conversation to a block, and record the conversation.

        ``async with tracker.conversation("chat-1", name="Support"):`` - every
        ``track_*`` inside the block, in this task and the tasks it starts, goes to
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
        self._pipeline.bind()
        data, size = self._conversation_data(conversation_id, fields)
        token = self._context.enter(data["conversation_id"])
        try:
            self._record_conversation(CONVERSATION, data, size)
            yield self
        finally:
            self._context.exit(token)

    # --- documented API, as coroutines -----------------------------------------------------
    async def get_or_create_conversation(
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
        """Record the conversation and make it current for this task (or thread).

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
        self._pipeline.bind()
        self._set_conversation(conversation_id, conversation_args(locals()))

    async def initialize_conversation(
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

        For a chat that was opened but where nobody typed yet. Waits for the
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
        p = self._pipeline
        p.bind()
        p.check_deliverable()
        ev = self._initialize(conversation_id, conversation_args(locals()))
        if ev is not None:
            limit = self._default_timeout() if timeout is None else timeout
            await p.run(lambda: self._confirm(ev, limit))

    async def track_human_message(
        self,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
        attachment_mode: str = "base64",
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a message from the end user (``sender: end_user``).

        Validates, stamps the time and queues the message; delivery happens in the
        background. Waits only when ``backpressure_timeout`` asks it to and the
        queue is full.

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
        if self._must_wait():
            await self._pipeline.wait_for_room()
        self._message(QUESTION, message, attachments, attachment_mode, metadata, conversation_id)

    async def track_agent_message(
        self,
        message: str,
        attachments: list[dict[str, Any]] | None = None,
        attachment_mode: str = "base64",
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a message from the agent (``sender: agent``).

        Validates, stamps the time and queues the message; delivery happens in the
        background.

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
        if self._must_wait():
            await self._pipeline.wait_for_room()
        self._message(ANSWER, message, attachments, attachment_mode, metadata, conversation_id)

    #: The older names of the two message calls, used by the published docs' examples.
    track_question = track_human_message
    track_answer = track_agent_message

    async def track_action(
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
        if self._must_wait():
            await self._pipeline.wait_for_room()
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

    async def track_button(
        self,
        button_event: str,
        label: str,
        value: str,
        metadata: dict[str, Any] | None = None,
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track a button click.

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
        if self._must_wait():
            await self._pipeline.wait_for_room()
        self._button(conversation_id, button_event, label, value, metadata)

    async def track_attachments(
        self,
        attachments: list[dict[str, Any]],
        sender: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: str = "base64",
        *,
        conversation_id: str | None = None,
    ) -> None:
        """Track files on their own, not attached to a message.

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
        if self._must_wait():
            await self._pipeline.wait_for_room()
        self._attachments(conversation_id, attachments, sender, metadata, mode)

    async def track_token_usage(
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
        if self._must_wait():
            await self._pipeline.wait_for_room()
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

    async def get_token_usage(self, *, conversation_id: str | None = None) -> dict[str, int]:
        """The conversation's token counters, added up over its ``track_token_usage()`` calls.

        Args:
            conversation_id: the conversation; default: the current one.

        Returns:
            ``{"prompt_tokens", "completion_tokens", "total_tokens",
            "embedding_tokens"}`` (plus ``cache_read_tokens``, ``cache_write_tokens``,
            ``reasoning_tokens`` once reported), or ``{}`` if it counted none.
        """
        return self._get_token_usage(conversation_id)

    async def get_tracked_data_summary(
        self, *, conversation_id: str | None = None
    ) -> dict[str, Any]:
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

    async def send_tracked_data(
        self, *, conversation_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Flush the conversation now and report every item resolved since the last call.

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
            NoDataToSendException: nothing was tracked since the last call.
            MissingConversationIdException: there is no conversation to report on.
            NoApiKeyException: tracking is disabled for lack of a key (or another
                ``ConfigurationError`` found in the environment).
        """
        p = self._pipeline
        p.bind()
        cid = self._context.resolve(conversation_id)
        limit = self._default_timeout() if timeout is None else timeout
        await p.run(lambda: self._flush_conversation(cid, limit))
        return self._report(cid)

    async def configure(
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
        new = self._configured_settings(api_key, conversation_id, endpoint, log_level, overrides)
        await self._pipeline.reconfigure(new)
        self._configured(new)

    # --- lifecycle ---------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything tracked so far and wait, at most *timeout* seconds.

        Args:
            timeout: seconds to wait; default the retry budget plus one request
                timeout (75 s).

        Returns:
            A :class:`FlushResult` about the events queued at the call: true only
            if every one was delivered (or withheld on purpose); ``delivered``,
            ``dropped`` (by reason), ``pending`` (still queued, still retried) and
            ``filtered`` say what became of them.

        Raises:
            NoApiKeyException: tracking is disabled for lack of a key (or another
                ``ConfigurationError`` found in the environment). With
                ``AGENTSIGHT_ENABLED=false`` nothing is raised.
        """
        p = self._pipeline
        p.bind()
        limit = self._default_timeout() if timeout is None else timeout
        return await p.run(lambda: p.flush(None, limit))

    async def aclose(self, timeout: float | None = None) -> FlushResult:
        """Flush within *timeout*, then stop for good. Calling it twice is safe.

        Events that could not be delivered by then are dropped and counted under
        ``dropped["shutdown"]`` - or, with a spool, kept on disk for the next
        start (``pending``).

        Args:
            timeout: seconds to wait; default ``AGENTSIGHT_SHUTDOWN_TIMEOUT`` (5 s).

        Returns:
            A :class:`FlushResult` about the events queued at the call, as for
            :meth:`flush`.
        """
        p = self._pipeline
        return await p.aclose(p.settings.shutdown_timeout if timeout is None else timeout)

    async def __aenter__(self) -> AsyncConversationTracker:
        self._pipeline.bind()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def sharing(pipeline: Pipeline, context: ConversationContext) -> AsyncConversationTracker:
    """An async tracker over an existing pipeline and context (the sync facade's ``.aio``)."""
    tracker = AsyncConversationTracker.__new__(AsyncConversationTracker)
    BaseTracker.__init__(tracker, pipeline, context)
    capture.forget(tracker)  # a view of its owner: captures find the owner
    return tracker


__all__ = ["AsyncConversationTracker", "BaseTracker", "build_pipeline", "sharing"]
