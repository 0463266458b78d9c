"""``AsyncAgentSightAPI``: read tracked conversations (the original ``AgentSightAPI``, async)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._exceptions import NotFoundException
from . import _params as p
from ._core import AsyncApiClient

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger("agentsight_async")

ROUTE_CONVERSATIONS = "api/conversations/"


class AsyncAgentSightAPI(AsyncApiClient):
    """Read conversations tracked in AgentSight (or in the local collector).

    The original ``AgentSightAPI``'s methods, as coroutines, plus
    :meth:`iter_conversations` to walk every page::

        async with AsyncAgentSightAPI() as api:          # AGENTSIGHT_API_KEY / _ENDPOINT
            page = await api.fetch_conversations(customer_id="cust-42", is_marked=True)
            async for conversation in api.iter_conversations(has_feedback=True):
                ...

    Every read is retried on network errors, 408, 429 and 5xx (honouring
    ``Retry-After``) for up to ``retry_budget`` seconds (default 10). Use it as
    an async context manager, or call :meth:`aclose`, to close its connections.

    Args:
        api_key: the API key (``ags_...``); default ``AGENTSIGHT_API_KEY``.
        endpoint: the AgentSight base URL; default ``AGENTSIGHT_API_ENDPOINT``.
        settings: a complete :class:`~agentsight_async.Settings` instead of the above.
        transport: an httpx transport (``httpx.MockTransport`` in tests).
        retry_budget: seconds a call may keep retrying.
        sleep: the retry policy's wait (tests pass a fake).
        clock: the retry policy's monotonic clock (tests pass a fake).
        **overrides: any other :class:`~agentsight_async.Settings` field
            (``request_timeout=5``, ``verify_tls=False`` ...).

    Raises:
        NoApiKeyException: no API key was given or configured (needed unless the
            endpoint is a collector on this machine).
        ConfigurationError: an invalid setting, or an endpoint that is not http(s).
    """

    async def fetch_conversations(
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
        filters = {k: v for k, v in locals().items() if k not in ("self", "extra_params")}
        params = p.list_params(filters, extra_params)
        result: dict[str, Any] = await self._http.get(
            ROUTE_CONVERSATIONS, params, self._http.deadline()
        )
        return result

    async def iter_conversations(
        self, **filters: Unpack[p.ConversationFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        """Every conversation matching the filters, page after page.

        ::

            async for conversation in api.iter_conversations(customer_id="cust-42"):
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
            for conversation in pages.take(await self.fetch_conversations(**params)):
                yield conversation

    async def fetch_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """One conversation, by its pk (``42``) or its ``conversation_id`` (``"chat-123"``).

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
        return await self._conversation(p.reference(conversation_id), self._http.deadline())

    async def fetch_conversation_attachments(self, conversation_id: int | str) -> dict[str, Any]:
        """A conversation's attachments (``GET /api/conversations/{pk}/attachments/``).

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
        ref = p.reference(conversation_id)
        deadline = self._http.deadline()
        pk = ref if isinstance(ref, int) else (await self._conversation(ref, deadline)).get("id")
        found: dict[str, Any] = await self._http.get(
            f"{ROUTE_CONVERSATIONS}{pk}/attachments/", None, deadline
        )
        return found

    async def _conversation(self, ref: int | str, deadline: float) -> dict[str, Any]:
        if isinstance(ref, int):
            found: dict[str, Any] = await self._http.get(
                f"{ROUTE_CONVERSATIONS}{ref}/", None, deadline
            )
            return found
        page = await self._http.get(ROUTE_CONVERSATIONS, {"conversation_id": ref}, deadline)
        results = page.get("results") if isinstance(page, dict) else None
        if not results:
            raise NotFoundException(f"Conversation with conversation_id '{ref}' not found")
        if len(results) > 1:
            # the id itself is not logged: it may be the user's own identifier (an email...)
            logger.warning(
                "agentsight_async: %d conversations have the conversation_id asked for; "
                "returning the first",
                len(results),
            )
        first: dict[str, Any] = results[0]
        return first
