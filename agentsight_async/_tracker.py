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
        """Counters: tracked, delivered, retried, dropped by reason, queued, in flight, errors.

        ``capture`` holds the process-wide counters of automatic capture
        (``recorded``, ``unattributed``, ``ambiguous``, ``failed``, ``degraded``):
        a captured call that found no tracker belongs to none, so it is counted
        for the whole process.
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
            provider: who served the call (``openai``, ``anthropic`` ...); sent
                as ``gen_ai.system``.
            model: the model that answered (billed); *requested_model* the one
                asked for, kept when it differs.
            prompt_tokens: every input token, cached ones included; the
                *cache_read_tokens* and *cache_write_tokens* are parts of it.
            completion_tokens: every output token; *reasoning_tokens* are a part.
            embedding_tokens: tokens of an embeddings call.
            operation: ``chat``, ``text_completion`` or ``embeddings``.
            duration_ms: how long the call took (the item ends when it is recorded).
            streamed: whether the answer was streamed.
            error: why the call failed (its exception type), if it did.
            usage_reported: False when a stream ended without a usage report
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
        """Record one finished tool call as an action: what ``@tool`` and the framework
        handlers call.  Times are ``time.time_ns()`` values; never blocks.

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

        The same as :func:`agentsight_async.tool` (``name=``, ``capture_args=``,
        ``capture_result=``) with this tracker given.
        """
        from ._decorators import decorate

        return decorate(fn, "tool", tracker=self, **options)

    def task(self, fn: Any = None, /, **options: Any) -> Any:
        """``@tracker.task``: like :meth:`tool`, for a step of the agent's own work."""
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

    Configuration comes from keyword arguments (``api_key=``, ``api_endpoint=``
    or ``endpoint=``, ``protocol=``, any :class:`Settings` field), then
    ``AGENTSIGHT_*`` variables and ``.env``.  ``transport=`` injects an httpx
    transport (tests), ``exporter_factory=`` a whole exporter.  Invalid
    settings raise :class:`ConfigurationError` here.

    ``before_send=`` is called with each event as plain data - ``{"kind",
    "conversation_id", "timestamp", "data"}`` - once, off the caller's hot
    path, before the spool and the exporter see it; it returns the event, a
    changed copy, or None to withhold it (counted as ``filtered``).  An
    exception in it drops the event (``before_send_error``), never sends it
    unredacted.
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
        """Scope the current conversation to a block (and record it, like get_or_create).

        ``async with tracker.conversation("chat-1", name="Support"):`` - every
        ``track_*`` inside the block, in this task and tasks it starts, goes to
        ``chat-1``; the previous current conversation is restored afterwards.
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

        ``environment`` defaults to ``AGENTSIGHT_ENVIRONMENT``, then
        ``"development"``; an explicit argument wins over the variable.
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

        Waits for the backend's answer (at most *timeout*, default the retry
        budget plus one request timeout) and raises
        :class:`ConversationApiException` / :class:`ConversationNetworkException`
        if it failed, like the original.  Does not change the current conversation.
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
        """Track a message from the end user (``sender: end_user``)."""
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
        """Track a message from the agent (``sender: agent``)."""
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
        """Track an action or tool call (name, timing, tools, response or error)."""
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
        """Track a button click."""
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
        """Track files on their own (``mode`` ``base64`` or ``form_data``)."""
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
        """Add one LLM call's token counts to the conversation (sent as its own event).

        ``prompt_tokens`` counts every input token, cached ones included;
        ``cache_read_tokens``/``cache_write_tokens`` are parts of it, and
        ``reasoning_tokens`` a part of ``completion_tokens``.
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
        """The conversation's token counters, or ``{}`` if it counted none."""
        return self._get_token_usage(conversation_id)

    async def get_tracked_data_summary(
        self, *, conversation_id: str | None = None
    ) -> dict[str, Any]:
        """Everything tracked for the conversation since the last ``send_tracked_data()``.

        Local only.  Items already delivered in the background are included
        (their attachment bytes are replaced by a size once delivered).
        """
        return self._summary(conversation_id)

    async def send_tracked_data(
        self, *, conversation_id: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Flush the conversation now and report every item resolved since the last call.

        Returns the original structure: ``{"items": [{index, type, timestamp,
        success, response|error}], "summary": {questions, answers, actions,
        buttons, attachments, errors}}``.  Raises :class:`NoDataToSendException`
        when nothing was tracked since the last call.  Items still unconfirmed
        when *timeout* passes stay queued and are reported by the next call.
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
        """Change settings at run time; queued events go out with the new settings."""
        new = self._configured_settings(api_key, conversation_id, endpoint, log_level, overrides)
        await self._pipeline.reconfigure(new)
        self._configured(new)

    # --- lifecycle ---------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything tracked so far and wait, at most *timeout* seconds.

        Returns a :class:`FlushResult` whose truth value says whether every
        event queued at the call was delivered; its ``delivered``, ``dropped``
        (by reason) and ``pending`` say what became of them.  Pending events
        stay queued and keep being retried.  Raises the configuration error
        that disabled tracking, if one did (``NoApiKeyException`` ...).
        """
        p = self._pipeline
        p.bind()
        limit = self._default_timeout() if timeout is None else timeout
        return await p.run(lambda: p.flush(None, limit))

    async def aclose(self, timeout: float | None = None) -> FlushResult:
        """Flush within *timeout* (default ``shutdown_timeout``), then stop for good.

        Events that could not be delivered by then are dropped and counted
        under ``dropped["shutdown"]`` - or, with a spool, kept on disk for the
        next start (``pending``).  Returns what became of the events queued at
        the call, as :meth:`flush` does.  Calling it twice is safe.
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
