"""The blocking clients: ``AgentSightAPI`` and ``ConversationManager``, thin shells.

As ``ConversationTracker`` over ``AsyncConversationTracker``: each shell owns
one async client (its *core*) and a private loop thread (:class:`LoopThread`),
and every method is one line that runs the core's coroutine there and waits,
with a deadline.  The logic - filters, validation, lookups, retries, error
mapping - exists once, in the async core.

``agentsight_api`` and ``conversation_manager`` are lazy: building them reads
nothing, so importing the package never raises.  Their configuration
(``AGENTSIGHT_API_KEY``, ``AGENTSIGHT_API_ENDPOINT``...) is read on first use,
where a missing key raises :class:`~agentsight_async.NoApiKeyException`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from .._config import Settings
from .._exceptions import ConversationNetworkException, NoApiKeyException
from .._portal import LoopThread
from . import _params as p
from ._core import AsyncApiClient
from ._managing import AsyncConversationManager
from ._reading import AsyncAgentSightAPI

if TYPE_CHECKING:
    from typing_extensions import Unpack

CoreT = TypeVar("CoreT", bound=AsyncApiClient)
T = TypeVar("T")
S = TypeVar("S", bound="BlockingClient[Any]")

_UNSET: Any = object()


def _arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
    """A method's arguments from its ``locals()``, ``**extra_params`` spread out."""
    args = {k: v for k, v in frame_locals.items() if k not in ("self", "extra_params")}
    args.update(frame_locals.get("extra_params", {}))
    return args


def _page(params: dict[str, Any]) -> Callable[[AsyncAgentSightAPI], Awaitable[dict[str, Any]]]:
    return lambda api: api.fetch_conversations(**params)


class BlockingClient(Generic[CoreT]):
    """What both blocking clients share: the constructor, the core, its loop thread,
    ``configure`` and ``close``.

    Subclasses name their async core class in ``_core_class``.  With
    ``lazy=False`` (the default) the core is built now, so invalid settings or
    a missing key raise in the constructor; with ``lazy=True`` on first use.
    """

    _core_class: ClassVar[type[AsyncApiClient]]

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        lazy: bool = False,
        **options: Any,
    ) -> None:
        self._options: dict[str, Any] = {"api_key": api_key, "endpoint": endpoint, **options}
        self._lock = threading.Lock()
        self._core: CoreT | None = None
        self._configured: dict[str, Any] | None = None  # configure()'s options, until close()
        self._portal = LoopThread(
            f"agentsight-async-{type(self).__name__}",
            own_thread_error="agentsight_async: a blocking API call was made from the client's "
            "own event-loop thread; use the async client (AsyncAgentSightAPI / "
            "AsyncConversationManager) there",
        )
        if not lazy:
            self._ready()

    def _ready(self) -> CoreT:
        with self._lock:
            if self._core is None:
                self._core = self._factory(**self._options)
            return self._core

    def _factory(self, **options: Any) -> CoreT:
        return cast(CoreT, self._core_class(**options))

    def _call(self, fn: Callable[[CoreT], Awaitable[T]]) -> T:
        """Run ``fn(core)`` on the loop thread and wait for it (at most ``core.call_timeout``)."""
        core = self._ready()
        return self._portal.call(lambda: fn(core), core.call_timeout, _timed_out(core.call_timeout))

    @property
    def settings(self) -> Settings:
        """The settings in effect (read on first use for a lazy client)."""
        return self._ready().settings

    def configure(
        self, api_key: str | None = _UNSET, endpoint: str | None = _UNSET, **overrides: Any
    ) -> None:
        """Change the key, endpoint or any setting until :meth:`close`; the next call uses them.

        Arguments not given keep the value in effect. The new settings are checked
        now, and nothing changes if they are invalid. As with
        ``ConversationTracker.configure``, :meth:`close` forgets them: the next call
        starts from the constructor's arguments and the environment again.

        Args:
            api_key: a new API key (``None`` is refused, as the original did).
            endpoint: a new endpoint.
            **overrides: any other :class:`~agentsight_async.Settings` field.

        Raises:
            NoApiKeyException: ``api_key=None``, or no key at all.
            ConfigurationError: an invalid value.
        """
        if api_key is None:
            raise NoApiKeyException("API key cannot be None")
        given = {"api_key": api_key, "endpoint": endpoint, **overrides}
        options = {
            **(self._configured or self._options),
            **{k: v for k, v in given.items() if v is not _UNSET},
        }
        core = self._factory(**options)  # raises before anything changes
        self.close()
        with self._lock:
            self._configured, self._core = options, core

    def close(self) -> None:
        """Close the connections and stop the loop thread.

        The client can still be used: the next call starts them again, with the
        constructor's arguments (a lazy client reads the environment again;
        ``configure()`` changes are forgotten).
        """
        with self._lock:
            core, self._core, self._configured = self._core, None, None
        if core is not None and self._portal.running:  # else no connection was ever opened
            try:
                self._portal.call(core.aclose, core.call_timeout, _timed_out(core.call_timeout))
            finally:
                self._portal.stop()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        core = self._core
        where = core.settings.api_endpoint if core is not None else "(read on first use)"
        return f"<{type(self).__name__} endpoint={where!r}>"


class AgentSightAPI(BlockingClient[AsyncAgentSightAPI]):
    """Read tracked conversations, blocking: the original ``AgentSightAPI``.

    Every method runs :class:`AsyncAgentSightAPI`'s coroutine of the same name
    on a private loop thread and returns its result; ``for conversation in
    api.iter_conversations(**filters)`` walks every page. Works from any thread
    and from inside a running event loop. Unlike the original, each
    construction is a new client (the original returned one shared instance).

    Args:
        api_key: the API key (``ags_...``); default ``AGENTSIGHT_API_KEY``.
        endpoint: the AgentSight base URL; default ``AGENTSIGHT_API_ENDPOINT``.
        lazy: read the settings on first use instead of now (the module-level
            ``agentsight_api`` is lazy).
        **options: the other arguments of :class:`AsyncAgentSightAPI`
            (``settings``, ``transport``, ``retry_budget``, any setting).

    Raises:
        NoApiKeyException: no API key was given or configured (unless *lazy*).
        ConfigurationError: an invalid setting (unless *lazy*).
    """

    _core_class = AsyncAgentSightAPI

    def fetch_conversations(
        self,
        action_name: str | None = None,
        conversation_id: str | None = None,
        customer_id: str | None = None,
        customer_ip_address: str | None = None,
        device: str | None = None,
        has_messages: bool | None = None,
        language: str | None = None,
        message_contains: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
        started_at_after: str | datetime | None = None,
        started_at_before: str | datetime | None = None,
        is_marked: bool | None = None,
        name: str | None = None,
        include_deleted: bool | None = None,
        metadata: str | dict[str, Any] | None = None,
        has_feedback: bool | None = None,
        feedback_sentiment: p.Sentiment | None = None,
        feedback_source: p.FeedbackSource | None = None,
        **extra_params: Any,
    ) -> dict[str, Any]:
        """One page of conversations matching the filters (``GET /api/conversations/``).

        Blocks until done: runs :class:`AsyncAgentSightAPI`'s coroutine
        on a private loop thread.

        Args:
            action_name: conversations with an action of this name.
            conversation_id: this exact ``conversation_id``.
            customer_id: this exact customer id.
            customer_ip_address: this customer IP address.
            device: this device type.
            has_messages: only conversations with (``True``) or without (``False``)
                messages.
            language: this language code.
            message_contains: text searched in the messages (case-insensitive).
            page: the page number, 1-based.
            page_size: results per page (1 to 1000).
            started_at_after: started at or after this time (ISO-8601 or a
                ``datetime``; a naive time is UTC).
            started_at_before: started at or before this time.
            is_marked: marked (``True``) or not (``False``).
            name: the name contains this text.
            include_deleted: include soft-deleted conversations (default ``False``).
            metadata: ``"key:value,key2:value2"``, or a dict of the same: every key
                holds that value.
            has_feedback: with (``True``) or without (``False``) feedback.
            feedback_sentiment: ``"positive"``, ``"neutral"`` or ``"negative"``.
            feedback_source: ``"customer"`` or ``"platform"``.
            **extra_params: other query parameters, sent as given.

        Returns:
            The page as the server sends it: ``{"count", "next", "previous",
            "results": [...]}`` (the local collector adds ``page_size``,
            ``total_pages``, ``current_page``).

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            NotFoundException: no such conversation, or a page past the end.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not read this.
            RateLimitException: still throttled once the retries were used up.
            ApiServerException: still failing (5xx) once the retries were used up.
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        args = _arguments(locals())
        return self._call(lambda api: api.fetch_conversations(**args))

    def iter_conversations(
        self, **filters: Unpack[p.ConversationFilters]
    ) -> Iterator[dict[str, Any]]:
        """Every conversation matching the filters, page after page.

        ::

            for conversation in api.iter_conversations(customer_id="cust-42"):
                print(conversation["conversation_id"])

        Each page is fetched when the previous one is used up, with the same retries.

        Args:
            **filters: the filters of :meth:`fetch_conversations`; ``page_size`` sets
                the page size, ``page`` the first page.

        Yields:
            Each conversation, as the list shows it.

        Raises:
            InvalidConversationDataException: an invalid filter.
            ConversationApiException: an error answer (see :meth:`fetch_conversations`).
            ConversationNetworkException: the backend could not be reached in time.
        """
        pages = p.Pages(filters)
        while (params := pages.next_params()) is not None:
            yield from pages.take(self._call(_page(params)))

    def fetch_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """One conversation, by its pk (``42``) or its ``conversation_id`` (``"chat-123"``).

        Blocks until done: runs :class:`AsyncAgentSightAPI`'s coroutine
        on a private loop thread.

        A pk is read from ``GET /api/conversations/{pk}/`` (the conversation with
        its transcript); a ``conversation_id`` is looked up as the original client
        did, through the list filter, and the (first) match of that page is
        returned as the list shows it (so a soft-deleted conversation is not found
        by its ``conversation_id``: lists hide it).

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).

        Returns:
            The conversation: its fields, and with a pk its ``transcript``,
            ``messages`` and ``feedbacks``.

        Raises:
            InvalidConversationDataException: *conversation_id* is neither an ``int``
                nor a non-empty ``str`` (a ``ValueError``).
            MissingConversationIdException: *conversation_id* is empty.
            NotFoundException: no such conversation, or a page past the end.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not read this.
            RateLimitException: still throttled once the retries were used up.
            ApiServerException: still failing (5xx) once the retries were used up.
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(lambda api: api.fetch_conversation(conversation_id))

    def fetch_conversation_attachments(self, conversation_id: int | str) -> dict[str, Any]:
        """A conversation's attachments (``GET /api/conversations/{pk}/attachments/``).

        Blocks until done: runs :class:`AsyncAgentSightAPI`'s coroutine
        on a private loop thread.

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).

        Returns:
            The answer as the server sends it (the local collector:
            ``{"count", "results": [attachment groups with their files]}``).

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            NotFoundException: no such conversation, or a page past the end.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not read this.
            RateLimitException: still throttled once the retries were used up.
            ApiServerException: still failing (5xx) once the retries were used up.
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(lambda api: api.fetch_conversation_attachments(conversation_id))


class ConversationManager(BlockingClient[AsyncConversationManager]):
    """Manage tracked conversations, blocking: the original ``ConversationManager``.

    Every method runs :class:`AsyncConversationManager`'s coroutine of the same
    name on a private loop thread: a string id is resolved through
    ``/api/conversations/lookup/``, and writes are sent exactly once.

    Args:
        api_key: the API key (``ags_...``); default ``AGENTSIGHT_API_KEY``.
        endpoint: the AgentSight base URL; default ``AGENTSIGHT_API_ENDPOINT``.
        lazy: read the settings on first use instead of now (the module-level
            ``conversation_manager`` is lazy).
        **options: the other arguments of :class:`AsyncConversationManager`.

    Raises:
        NoApiKeyException: no API key was given or configured (unless *lazy*).
        ConfigurationError: an invalid setting (unless *lazy*).
    """

    _core_class = AsyncConversationManager

    def submit_feedback(
        self,
        conversation_id: int | str,
        sentiment: p.Sentiment | str,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record end-user feedback on a conversation (``POST /api/conversation-feedbacks/``).

        Blocks until done: runs :class:`AsyncConversationManager`'s coroutine
        on a private loop thread.

        Args:
            conversation_id: the ``conversation_id`` (sent as is, the server resolves
                it) or the pk.
            sentiment: ``"positive"``, ``"neutral"`` or ``"negative"`` (or an enum of
                them).
            comment: optional text, at most 5000 characters.
            metadata: optional JSON-serialisable dict (the AgentSight backend accepts
                but discards it on this route).

        Returns:
            The server's answer (the stored feedback).

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            MissingConversationIdException: *conversation_id* is empty.
            NotFoundException: no such conversation.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not write (a read-only key).
            RateLimitException: throttled; ``retry_after`` says for how long. The
                write was not replayed: whether to send it again is your decision.
            ApiServerException: the backend failed (5xx).
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(
            lambda m: m.submit_feedback(conversation_id, sentiment, comment, metadata)
        )

    def rename_conversation(self, conversation_id: int | str, name: str) -> dict[str, Any]:
        """Rename a conversation (``PATCH /api/conversations/{pk}/rename/``).

        Blocks until done: runs :class:`AsyncConversationManager`'s coroutine
        on a private loop thread.

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).
            name: the new name: not blank, at most 255 characters; sent stripped.

        Returns:
            The conversation as the server answers it.

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            MissingConversationIdException: *conversation_id* is empty.
            NotFoundException: no such conversation.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not write (a read-only key).
            RateLimitException: throttled; ``retry_after`` says for how long. The
                write was not replayed: whether to send it again is your decision.
            ApiServerException: the backend failed (5xx).
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(lambda m: m.rename_conversation(conversation_id, name))

    def mark_conversation(self, conversation_id: int | str, is_marked: bool) -> dict[str, Any]:
        """Mark (``True``) or unmark (``False``) a conversation (``POST .../{pk}/mark/``).

        Blocks until done: runs :class:`AsyncConversationManager`'s coroutine
        on a private loop thread.

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).
            is_marked: the new mark.

        Returns:
            The conversation as the server answers it.

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            MissingConversationIdException: *conversation_id* is empty.
            NotFoundException: no such conversation.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not write (a read-only key).
            RateLimitException: throttled; ``retry_after`` says for how long. The
                write was not replayed: whether to send it again is your decision.
            ApiServerException: the backend failed (5xx).
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(lambda m: m.mark_conversation(conversation_id, is_marked))

    def delete_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """Soft-delete a conversation (``DELETE /api/conversations/{pk}/delete/``).

        Blocks until done: runs :class:`AsyncConversationManager`'s coroutine
        on a private loop thread.

        The conversation is hidden from lists unless they ask for
        ``include_deleted=True``, and still readable by its pk.

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).

        Returns:
            The conversation as the server answers it (``is_deleted: true``).

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            MissingConversationIdException: *conversation_id* is empty.
            NotFoundException: no such conversation.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not write (a read-only key).
            RateLimitException: throttled; ``retry_after`` says for how long. The
                write was not replayed: whether to send it again is your decision.
            ApiServerException: the backend failed (5xx).
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        return self._call(lambda m: m.delete_conversation(conversation_id))

    def update_conversation(
        self,
        conversation_id: int | str,
        name: str | None = None,
        is_marked: bool | None = None,
        customer_id: str | None = None,
        device: str | None = None,
        language: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change several fields at once (``PATCH /api/conversations/{pk}/update/``).

        Blocks until done: runs :class:`AsyncConversationManager`'s coroutine
        on a private loop thread.

        Only the fields given (not ``None``) are sent; ``metadata`` replaces the
        stored document.

        Args:
            conversation_id: the conversation's pk (``int``) or its
                ``conversation_id`` (``str``, resolved through the backend's lookup).
            name: a new name.
            is_marked: a new mark.
            customer_id: a new customer id.
            device: a new device.
            language: a new language.
            metadata: a new metadata document (replaces the old one).

        Returns:
            The conversation as the server answers it.

        Raises:
            InvalidConversationDataException: an invalid argument (a ``ValueError``);
                nothing was sent.
            MissingConversationIdException: *conversation_id* is empty.
            ValueError: no field was given.
            NotFoundException: no such conversation.
            UnauthorizedException: the key is wrong or its subscription inactive.
            ForbiddenException: the key may not write (a read-only key).
            RateLimitException: throttled; ``retry_after`` says for how long. The
                write was not replayed: whether to send it again is your decision.
            ApiServerException: the backend failed (5xx).
            ConversationApiException: another error answer (``status_code``,
                ``response_data``).
            ConversationNetworkException: the backend could not be reached in time.
        """
        args = _arguments(locals())
        return self._call(lambda m: m.update_conversation(**args))


#: The module-level reading client of the original package (settings read on first use).
agentsight_api = AgentSightAPI(lazy=True)
"""The ready-made :class:`AgentSightAPI` of the original package.

Lazy: it reads ``AGENTSIGHT_API_KEY`` / ``AGENTSIGHT_API_ENDPOINT`` on its first
call, so importing never raises; ``configure()`` points it elsewhere.
"""
#: The module-level managing client of the original package (settings read on first use).
conversation_manager = ConversationManager(lazy=True)
"""The ready-made :class:`ConversationManager` of the original package.

Lazy, like ``agentsight_api``: settings are read on its first call.
"""


def _timed_out(seconds: float) -> Callable[[], BaseException]:
    return lambda: ConversationNetworkException(
        f"agentsight_async: the call did not finish within {seconds:g} s"
    )
