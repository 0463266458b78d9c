"""The async-first core: :class:`AsyncConversationTracker`.

A ``track_*`` call validates its arguments, stamps the time, and appends one
:class:`Event` to its conversation's queue under a short lock.  That is all the
caller pays for: no I/O, no thread hop, no per-event wake-up.  The background
:class:`Flusher` on the tracker's event loop does the rest.

The *current* conversation lives in a ``ContextVar``: each asyncio task and
each thread has its own, so concurrent conversations never mix.  Code that
never sets one in its context falls back to the last conversation set anywhere
(``get_or_create_conversation``), then ``AGENTSIGHT_CONVERSATION_ID``, then a
generated ``conv_<12 hex>`` - the original SDK's behaviour for single-
conversation scripts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import httpx

from . import _inputs as inputs
from . import _reports as reports
from . import _validation as v
from ._config import Settings, load_settings
from ._events import (
    ACTION,
    ANSWER,
    ATTACHMENTS,
    BUTTON,
    CONVERSATION,
    CONVERSATION_FIELDS,
    CONVERSATION_OPENED,
    QUESTION,
    TOKEN_KEYS,
    TOKEN_USAGE,
    Event,
)
from ._exceptions import (
    ConversationApiException,
    ConversationNetworkException,
    NoDataToSendException,
)
from ._exporters._base import Exporter
from ._flusher import Flusher
from ._queues import SMALL_EVENT, Queues
from ._spool import Spool
from ._stats import ErrorCallback, Stats

logger = logging.getLogger("agentsight_async")

_current: ContextVar[str | None] = ContextVar("agentsight_conversation_id", default=None)

ExporterFactory = Callable[[Settings, Stats, "ErrorCallback | None"], Exporter]


def _default_exporter_factory(
    transport: httpx.AsyncBaseTransport | None,
) -> ExporterFactory:
    def factory(settings: Settings, stats: Stats, on_error: ErrorCallback | None) -> Exporter:
        from ._exporters import create_exporter

        return create_exporter(settings, stats, on_error, transport=transport)

    return factory


class AsyncConversationTracker:
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
    transport (tests), ``exporter_factory=`` a whole exporter.
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
        **overrides: Any,
    ) -> None:
        if settings is None:
            if endpoint is not None:
                overrides.setdefault("api_endpoint", endpoint)
            settings = load_settings(api_key=api_key, **overrides)
        self.settings = settings
        self._on_error = on_error
        self._exporter_factory = exporter_factory or _default_exporter_factory(transport)
        self.stats_counters = Stats()
        self._queues = self._new_queues(settings)
        self._default_conversation_id = settings.conversation_id
        self._flusher: Flusher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owned_loop = False  # True when the sync facade runs our loop
        self._closed = False
        self._spool: Spool | None = None
        #: Conversation ids already validated (a bounded cache: the hot path skips checks).
        self._valid_ids: set[str] = set()
        self._apply_settings(settings)
        _live_trackers.add(self)

    # --- configuration ------------------------------------------------------------
    def _apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self._fast_chars = min(SMALL_EVENT, settings.max_message_chars)
        q = self._queues
        q.batch_size, q.batch_bytes = settings.batch_size, settings.batch_bytes
        q.max_events, q.max_bytes = settings.max_queue_events, settings.max_queue_bytes
        reason = settings.tracking_disabled_reason
        self._disabled = reason is not None
        if reason is not None and settings.enabled:
            logger.warning("agentsight_async: tracking is disabled: %s", reason)
        if settings.log_level is not None:
            logger.setLevel(settings.log_level)

    def _new_queues(self, settings: Settings) -> Queues:
        queues = Queues(
            self.stats_counters,
            batch_size=settings.batch_size,
            batch_bytes=settings.batch_bytes,
            max_events=settings.max_queue_events,
            max_bytes=settings.max_queue_bytes,
        )
        # Every event is spooled from the first one on (the file opens with the flusher).
        queues.spooling = bool(settings.spool_dir)
        return queues

    @property
    def enabled(self) -> bool:
        """False when tracking is disabled (no key and no local endpoint, or ENABLED=false)."""
        return not self._disabled

    def stats(self) -> dict[str, Any]:
        """Counters: tracked, delivered, retried, dropped by reason, queued, in flight, errors."""
        with self._queues.locked():
            snap = self.stats_counters.as_dict()
        snap["exporter"] = (
            self.settings.scheme if self.settings.scheme != "http" else (self.settings.protocol)
        )
        snap["enabled"] = self.enabled
        return snap

    # --- current conversation ----------------------------------------------------------
    @property
    def current_conversation_id(self) -> str | None:
        """The conversation this task/thread tracks into, or None if none was set anywhere."""
        return _current.get() or self._default_conversation_id

    def _conversation_id(self, explicit: str | None) -> str:
        if explicit is not None:
            if type(explicit) is str and explicit in self._valid_ids:
                return explicit
            valid = v.conversation_id(explicit)
            if len(self._valid_ids) >= 10_000:
                self._valid_ids.clear()
            self._valid_ids.add(valid)
            return valid
        current = _current.get() or self._default_conversation_id
        if current is None:
            current = f"conv_{secrets.token_hex(6)}"
            self._default_conversation_id = current
            _current.set(current)
        return current

    @contextlib.asynccontextmanager
    async def conversation(
        self, conversation_id: str, **fields: Any
    ) -> AsyncIterator[AsyncConversationTracker]:
        """Scope the current conversation to a block (and record it, like get_or_create).

        ``async with tracker.conversation("chat-1", name="Support"):`` - every
        ``track_*`` inside the block, in this task and tasks it starts, goes to
        ``chat-1``; the previous current conversation is restored afterwards.
        """
        data, size = self._conversation_data(conversation_id, fields)
        token = _current.set(conversation_id)
        try:
            self._record(CONVERSATION, conversation_id, data, size, fields=data)
            yield self
        finally:
            _current.reset(token)

    # --- the hot path ------------------------------------------------------------------
    def _record(
        self,
        kind: str,
        conversation_id: str,
        data: dict[str, Any],
        size: int,
        *,
        fields: dict[str, Any] | None = None,
    ) -> Event | None:
        """Append one event to its conversation's queue; never blocks, never raises.

        Returns None when the event was dropped (tracking disabled or queue full).
        """
        if self._disabled:
            self.stats_counters.dropped["disabled"] += 1
            return None
        ev = Event(kind, conversation_id, time.time_ns(), 0, data, size)  # id: when queued
        if fields is None and size <= SMALL_EVENT:
            wake = self._queues.push(ev)
        else:
            wake = self._queues.append(ev, fields)
        if wake is None:
            self.stats_counters.drop("queue_full")
            return None
        if wake:
            self._wake_flusher()
        return ev

    def _wake_flusher(self) -> None:
        flusher = self._flusher
        if flusher is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is flusher.loop:
            flusher.wake()
        else:
            flusher.wake_threadsafe()

    # --- the event loop and the flusher ------------------------------------------------
    def _bind_running_loop(self) -> None:
        """Start (or restart) the flusher on the running loop if it has none alive."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._flusher is not None and self._flusher.running:
            return
        if self._owned_loop and self._loop is not None and not self._loop.is_closed():
            # The facade's loop thread owns the flusher; restart it only from there
            # (after configure()), otherwise just enqueue.
            if self._flusher is None and loop is self._loop:
                self._start_flusher(loop)
            return
        if (
            self._loop is not None
            and self._loop is not loop
            and self._loop.is_running()
            and not self._loop.is_closed()
        ):
            return  # another live loop owns the flusher
        self._start_flusher(loop)

    def _start_flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed:
            return
        exporter = self._exporter_factory(self.settings, self.stats_counters, self._on_error)
        if self.settings.spool_dir and self._spool is None and not self._disabled:
            self._spool = Spool(self.settings.spool_dir, self.stats_counters)
        self._loop = loop
        self._flusher = Flusher(self, exporter, loop)
        self._flusher.start()
        if self._queues.backlog:
            self._flusher.wake()

    async def _on_loop(self, coro_fn: Callable[[], Any]) -> Any:
        """Run ``coro_fn()`` on the flusher's loop, hopping threads if needed."""
        self._bind_running_loop()
        loop = self._loop
        running = asyncio.get_running_loop()
        if loop is None or loop is running:
            return await coro_fn()
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), loop)
        return await asyncio.wrap_future(fut)

    # --- shared input handling (the sync facade calls these too) --------------------------------
    def _conversation_data(
        self, conversation_id: Any, fields: dict[str, Any], *, is_used: bool = True
    ) -> tuple[dict[str, Any], int]:
        return inputs.conversation(
            conversation_id,
            fields,
            is_used=is_used,
            default_environment=self.settings.environment,
        )

    def _set_conversation(self, conversation_id: Any, fields: dict[str, Any]) -> str:
        data, size = self._conversation_data(conversation_id, fields)
        cid: str = data["conversation_id"]
        self._record(CONVERSATION, cid, data, size, fields=data)
        _current.set(cid)
        self._default_conversation_id = cid
        return cid

    def _initialize(self, conversation_id: Any, fields: dict[str, Any]) -> Event | None:
        data, size = self._conversation_data(conversation_id, fields, is_used=False)
        return self._record(CONVERSATION_OPENED, data["conversation_id"], data, size, fields=data)

    def _message(
        self,
        kind: str,
        message: Any,
        attachments: Any,
        attachment_mode: Any,
        metadata: Any,
        conversation_id: str | None,
    ) -> Event | None:
        if (
            attachments is None
            and metadata is None
            and type(message) is str
            and 0 < len(message) <= self._fast_chars
            and message.isascii()
            and not message.isspace()
        ):
            # The common case - short plain text, nothing attached - is the hot
            # path: the same checks as below, then one tuple into the inbox.
            if conversation_id is None:
                cid = _current.get() or self._default_conversation_id or self._conversation_id(None)
            elif type(conversation_id) is str and conversation_id in self._valid_ids:
                cid = conversation_id
            else:
                cid = self._conversation_id(conversation_id)
            if self._disabled:
                self.stats_counters.dropped["disabled"] += 1
                return None
            wake = self._queues.push_message(kind, cid, time.time_ns(), message)
            if wake is None:
                self.stats_counters.drop("queue_full")
            elif wake:
                self._wake_flusher()
            return None
        s = self.settings
        data, size = inputs.message(
            "end_user" if kind == QUESTION else "agent",
            message,
            attachments,
            attachment_mode,
            metadata,
            max_chars=s.max_message_chars,
            max_attachment_bytes=s.max_attachment_bytes,
        )
        return self._record(kind, self._conversation_id(conversation_id), data, size)

    def _action(self, conversation_id: str | None, *args: Any) -> Event | None:
        data, size = inputs.action(*args, max_chars=self.settings.max_message_chars)
        return self._record(ACTION, self._conversation_id(conversation_id), data, size)

    def _button(self, conversation_id: str | None, *args: Any) -> Event | None:
        data, size = inputs.button(*args)
        return self._record(BUTTON, self._conversation_id(conversation_id), data, size)

    def _attachments(self, conversation_id: str | None, *args: Any) -> Event | None:
        data, size = inputs.attachments(
            *args, max_attachment_bytes=self.settings.max_attachment_bytes
        )
        return self._record(ATTACHMENTS, self._conversation_id(conversation_id), data, size)

    def _token_usage(self, conversation_id: str | None, *args: Any) -> Event | None:
        data, size = inputs.token_usage(*args)
        cid = self._conversation_id(conversation_id)
        ev = self._record(TOKEN_USAGE, cid, data, size)
        if ev is not None or self._disabled:
            self._queues.add_tokens(cid, {k: data[k] for k in TOKEN_KEYS})
        return ev

    def _get_token_usage(self, conversation_id: str | None) -> dict[str, int]:
        cid = conversation_id if conversation_id is not None else self.current_conversation_id
        return reports.token_usage(self._queues.tokens(cid)) if cid else {}

    def _summary(self, conversation_id: str | None) -> dict[str, Any]:
        cid = conversation_id if conversation_id is not None else self.current_conversation_id
        events = self._queues.tracked_events(cid) if cid else []
        return reports.tracked_summary(cid, events)

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
        self._bind_running_loop()
        self._set_conversation(conversation_id, _fields(locals()))

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
        self._bind_running_loop()
        ev = self._initialize(conversation_id, _fields(locals()))
        if ev is not None:
            await self._await_event(ev, timeout)

    async def _await_event(self, ev: Event, timeout: float | None) -> None:
        limit = self._default_timeout() if timeout is None else timeout
        targets = self._queues.flush_targets(ev.conversation_id)
        ok = await self._on_loop(lambda: self._wait_targets(targets, limit))
        if not ok:
            raise ConversationNetworkException(
                f"conversation {ev.conversation_id!r} was not confirmed within {limit:.1f} s; "
                "it stays queued and is retried in the background"
            )
        result = self._queues.find_result(ev)
        if result is not None and not result.ok:
            raise ConversationApiException(
                f"creating conversation {ev.conversation_id!r} failed: {result.error}",
                response_data=result.response,
            )

    async def _wait_targets(self, targets: dict[str, int], timeout: float) -> bool:
        flusher = self._flusher
        if flusher is None or not targets:
            return not targets
        return await flusher.wait_resolved(targets, timeout)

    def _default_timeout(self) -> float:
        return self.settings.retry_budget + self.settings.request_timeout

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
            await self._wait_for_room()
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
            await self._wait_for_room()
        self._message(ANSWER, message, attachments, attachment_mode, metadata, conversation_id)

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
            await self._wait_for_room()
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
            await self._wait_for_room()
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
            await self._wait_for_room()
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
        conversation_id: str | None = None,
    ) -> None:
        """Add one LLM call's token counts to the conversation (sent as its own event)."""
        if self._must_wait():
            await self._wait_for_room()
        self._token_usage(
            conversation_id,
            prompt_tokens,
            completion_tokens,
            total_tokens,
            embedding_tokens,
            model,
            system,
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
        self._bind_running_loop()
        cid = self._conversation_id(conversation_id)
        limit = self._default_timeout() if timeout is None else timeout
        targets = self._queues.flush_targets(cid)
        if targets:
            done = await self._on_loop(lambda: self._wait_targets(targets, limit))
            if not done:
                logger.warning(
                    "agentsight_async: send_tracked_data(%r) timed out after %.1f s; "
                    "unconfirmed items stay queued",
                    cid,
                    limit,
                )
        return self._report(cid)

    def _report(self, cid: str) -> dict[str, Any]:
        results = self._queues.take_results(cid)
        if not results and self._disabled:
            return reports.send_report([])  # disabled: every call stays safe, nothing sent
        if not results:
            raise NoDataToSendException(f"No tracked data found for conversation: {cid}")
        results.sort(key=lambda r: r.event.seq)
        return reports.send_report(results)

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
        flusher = self._flusher
        if flusher is not None and flusher.running:
            await self._on_loop(flusher.detach)
        self._flusher = None
        self._apply_settings(new)
        if conversation_id is not None:
            self._default_conversation_id = new.conversation_id
        self._bind_running_loop()

    def _configured_settings(
        self,
        api_key: str | None,
        conversation_id: str | None,
        endpoint: str | None,
        log_level: str | None,
        overrides: dict[str, Any],
    ) -> Settings:
        current = self.settings.model_dump()
        current["api_key"] = (
            self.settings.api_key.get_secret_value() if self.settings.api_key else None
        )
        changes = {
            "api_key": api_key,
            "conversation_id": conversation_id,
            "api_endpoint": endpoint or overrides.pop("api_endpoint", None),
            "log_level": log_level,
            **overrides,
        }
        current.update({k: val for k, val in changes.items() if val is not None})
        return load_settings(**current)

    # --- lifecycle ---------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything tracked so far; True when all of it is resolved in time.

        Resolved means delivered or dropped (see ``stats()``).  On False the
        remaining events stay queued.
        """
        self._bind_running_loop()
        targets = self._queues.flush_targets(None)
        limit = self._default_timeout() if timeout is None else timeout
        result: bool = await self._on_loop(lambda: self._flush_all(targets, limit))
        return result

    async def _flush_all(self, targets: dict[str, int], timeout: float) -> bool:
        flusher = self._flusher
        if flusher is not None and flusher.spool is not None and not flusher.started.is_set():
            # events replayed from the spool count as tracked: wait for the replay
            try:
                await asyncio.wait_for(flusher.started.wait(), timeout)
            except asyncio.TimeoutError:
                return False
            targets = self._queues.flush_targets(None)
        return await self._wait_targets(targets, timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """Flush within *timeout* (default ``shutdown_timeout``), then stop for good.

        Events that could not be delivered by then are dropped and counted
        under ``dropped["shutdown"]`` - or, with a spool, kept on disk for the
        next start.  Calling it twice is safe.
        """
        if self._closed:
            return
        limit = self.settings.shutdown_timeout if timeout is None else timeout
        if self._queues.backlog and self._flusher is None:
            self._bind_running_loop()
        flusher = self._flusher
        self._closed = True
        if flusher is not None and not flusher.loop.is_closed():
            await self._on_loop(lambda: flusher.stop(limit))
        elif self._spool is None:
            self._queues.drop_pending("shutdown")
        if self._spool is not None:
            await self._spool.close()
        self._report_unsent()

    def _report_unsent(self) -> None:
        dropped = self.stats_counters.dropped
        lost = dropped["shutdown"] + dropped["retries_exhausted"]
        if lost:
            logger.warning(
                "agentsight_async: closed with %d event(s) not delivered (dropped: %s)",
                lost,
                {k: n for k, n in dropped.items() if n},
            )

    async def __aenter__(self) -> AsyncConversationTracker:
        self._bind_running_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        key = "set" if self.settings.api_key else "none"
        return (
            f"<{type(self).__name__} endpoint={self.settings.api_endpoint!r} "
            f"protocol={self.settings.protocol!r} api_key={key} enabled={self.enabled}>"
        )

    # --- exit and fork --------------------------------------------------------------------
    def _exit_flush(self) -> None:
        """At interpreter exit: deliver what is queued within ``shutdown_timeout``."""
        if self._closed or not self._queues.backlog:
            return
        loop = self._loop
        timeout = self.settings.shutdown_timeout
        try:
            if loop is not None and loop.is_running() and not loop.is_closed():
                fut = asyncio.run_coroutine_threadsafe(self.aclose(timeout), loop)
                fut.result(timeout + 1)
            else:
                self._flusher = None
                self._loop = None
                asyncio.run(self.aclose(timeout))
        except Exception as exc:
            logger.warning("agentsight_async: flush at exit failed: %s", exc)

    def _after_fork_in_child(self) -> None:
        """A forked child starts empty: the parent owns (and sends) what it queued."""
        self.stats_counters = Stats()
        self._queues = self._new_queues(self.settings)
        self._spool = None  # the parent owns its spool file; the child opens its own
        self._flusher = None
        self._loop = None
        self._owned_loop = False

    def _must_wait(self) -> bool:
        """Enter an ``await track_*``: start the flusher; True if it should wait for room.

        Sync calls never wait (they drop and count); awaiting callers may wait
        up to ``backpressure_timeout`` for the flusher to free space first.  A
        plain function, so the common case costs no extra coroutine.
        """
        self._bind_running_loop()
        return self.settings.backpressure_timeout > 0 and not self._disabled and self._queues.full()

    async def _wait_for_room(self) -> None:
        budget = self.settings.backpressure_timeout
        deadline = time.monotonic() + budget
        delay = 0.002
        while self._queues.full() and time.monotonic() < deadline:
            self._wake_flusher()
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.05)


def _fields(local_vars: dict[str, Any]) -> dict[str, Any]:
    return {k: local_vars[k] for k in CONVERSATION_FIELDS}


# --- process-wide hooks: exit flush and fork reset ---------------------------------------------
_live_trackers: weakref.WeakSet[AsyncConversationTracker] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for tracker in list(_live_trackers):
        tracker._exit_flush()


def _reset_all_in_child() -> None:
    for tracker in list(_live_trackers):
        tracker._after_fork_in_child()


def _register_exit_hook() -> None:
    """Flush at exit *before* the thread pools shut down.

    ``atexit`` runs after ``concurrent.futures`` has stopped accepting work, so a
    flush there could neither resolve a host name (asyncio uses the default
    executor) nor write SQLite off-loop.  ``threading``'s own exit hooks run
    earlier, in reverse order of registration: importing the thread pool module
    first puts our hook ahead of its shutdown.  ``atexit`` is the fallback.
    """
    import concurrent.futures.thread  # noqa: F401 - registers its hook before ours

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_flush_all_at_exit)
            return
        except RuntimeError:  # the interpreter is already shutting down
            pass
    atexit.register(_flush_all_at_exit)


_register_exit_hook()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_in_child)

__all__ = ["AsyncConversationTracker"]
