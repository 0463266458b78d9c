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

        Arguments not given keep the value in effect.  The new settings are
        checked now, and nothing changes if they are invalid.  As with
        ``ConversationTracker.configure``, :meth:`close` forgets them: the next
        call starts from the constructor's arguments and the environment again.

        Raises:
            NoApiKeyException: ``api_key=None`` (as the original did), or no key at all.
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

        The client can still be used: the next call starts them again, with
        the constructor's arguments (a lazy client reads the environment
        again; ``configure()`` changes are forgotten).
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
    on a private loop thread and returns its result (see there for the
    arguments, answers and errors); ``for conversation in
    api.iter_conversations(**filters)`` walks every page.  Works from any
    thread and from inside a running event loop.

    Takes :class:`AsyncAgentSightAPI`'s arguments, plus *lazy*: read the
    settings on first use instead of now (the module-level ``agentsight_api``
    is lazy).  Unlike the original, each construction is a new client (the
    original returned one shared instance).
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
        """One page of conversations (see :meth:`AsyncAgentSightAPI.fetch_conversations`)."""
        args = _arguments(locals())
        return self._call(lambda api: api.fetch_conversations(**args))

    def iter_conversations(
        self, **filters: Unpack[p.ConversationFilters]
    ) -> Iterator[dict[str, Any]]:
        """Every conversation matching the filters, page after page (fetched as needed)."""
        pages = p.Pages(filters)
        while (params := pages.next_params()) is not None:
            yield from pages.take(self._call(_page(params)))

    def fetch_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """One conversation by pk or ``conversation_id``
        (see :meth:`AsyncAgentSightAPI.fetch_conversation`)."""
        return self._call(lambda api: api.fetch_conversation(conversation_id))

    def fetch_conversation_attachments(self, conversation_id: int | str) -> dict[str, Any]:
        """A conversation's attachments
        (see :meth:`AsyncAgentSightAPI.fetch_conversation_attachments`)."""
        return self._call(lambda api: api.fetch_conversation_attachments(conversation_id))


class ConversationManager(BlockingClient[AsyncConversationManager]):
    """Manage tracked conversations, blocking: the original ``ConversationManager``.

    Every method runs :class:`AsyncConversationManager`'s coroutine of the
    same name on a private loop thread (see there: a string id is resolved
    through ``/api/conversations/lookup/``; writes are sent exactly once).
    Takes the same arguments as :class:`AgentSightAPI`; the module-level
    ``conversation_manager`` is lazy.
    """

    _core_class = AsyncConversationManager

    def submit_feedback(
        self,
        conversation_id: int | str,
        sentiment: p.Sentiment | str,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record end-user feedback (see :meth:`AsyncConversationManager.submit_feedback`)."""
        return self._call(
            lambda m: m.submit_feedback(conversation_id, sentiment, comment, metadata)
        )

    def rename_conversation(self, conversation_id: int | str, name: str) -> dict[str, Any]:
        """Rename a conversation (see :meth:`AsyncConversationManager.rename_conversation`)."""
        return self._call(lambda m: m.rename_conversation(conversation_id, name))

    def mark_conversation(self, conversation_id: int | str, is_marked: bool) -> dict[str, Any]:
        """Mark or unmark (see :meth:`AsyncConversationManager.mark_conversation`)."""
        return self._call(lambda m: m.mark_conversation(conversation_id, is_marked))

    def delete_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """Soft-delete (see :meth:`AsyncConversationManager.delete_conversation`)."""
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
        """Change several fields (see :meth:`AsyncConversationManager.update_conversation`)."""
        args = _arguments(locals())
        return self._call(lambda m: m.update_conversation(**args))


#: The module-level reading client of the original package (settings read on first use).
agentsight_api = AgentSightAPI(lazy=True)
#: The module-level managing client of the original package (settings read on first use).
conversation_manager = ConversationManager(lazy=True)


def _timed_out(seconds: float) -> Callable[[], BaseException]:
    return lambda: ConversationNetworkException(
        f"agentsight_async: the call did not finish within {seconds:g} s"
    )
