"""``AsyncConversationManager``: feedback, rename, mark, update, soft delete (async)."""

from __future__ import annotations

from typing import Any

from .._sampling import negative_feedback
from . import _params as p
from ._core import AsyncApiClient

ROUTE_LOOKUP = "api/conversations/lookup/"
#: The original client's feedback route (§2.3); 0.1.4 posts ``/api/feedbacks/`` instead.
ROUTE_FEEDBACK = "api/conversation-feedbacks/"


def _route(pk: int, action: str) -> str:
    return f"api/conversations/{pk}/{action}/"


class AsyncConversationManager(AsyncApiClient):
    """Manage tracked conversations: the original ``ConversationManager``, as coroutines.

    ::

        async with AsyncConversationManager() as manager:   # AGENTSIGHT_API_KEY / _ENDPOINT
            await manager.submit_feedback("chat-123", "positive", comment="Solved!")
            await manager.rename_conversation("chat-123", "Refund for A-1001")

    A conversation is named by its pk (``int``) or its ``conversation_id``
    (``str``); a string is resolved to the pk with ``GET
    /api/conversations/lookup/`` (a read: retried like every read). The writes
    themselves are **sent exactly once**: a throttled write raises
    :class:`~agentsight_async.RateLimitException` with ``retry_after``, a failed
    one its error, and nothing is replayed behind your back.

    Args:
        api_key: the API key (``ags_...``); default ``AGENTSIGHT_API_KEY``.
        endpoint: the AgentSight base URL; default ``AGENTSIGHT_API_ENDPOINT``.
        settings: a complete :class:`~agentsight_async.Settings` instead of the above.
        transport: an httpx transport (``httpx.MockTransport`` in tests).
        retry_budget: seconds a read (the lookup) may keep retrying.
        sleep: the retry policy's wait (tests pass a fake).
        clock: the retry policy's monotonic clock (tests pass a fake).
        **overrides: any other :class:`~agentsight_async.Settings` field.

    Raises:
        NoApiKeyException: no API key was given or configured.
        ConfigurationError: an invalid setting.
    """

    async def submit_feedback(
        self,
        conversation_id: int | str,
        sentiment: p.Sentiment | str,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Record end-user feedback on a conversation (``POST /api/conversation-feedbacks/``).

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
        ref = p.reference(conversation_id)
        body = p.feedback_body(ref, sentiment, comment, metadata)
        answer = await self._write("POST", ROUTE_FEEDBACK, body)
        if body.get("sentiment") == "negative" and isinstance(conversation_id, str):
            # sampling with keep_errors keeps a conversation that got negative feedback
            negative_feedback(conversation_id)
        return answer

    async def rename_conversation(self, conversation_id: int | str, name: str) -> dict[str, Any]:
        """Rename a conversation (``PATCH /api/conversations/{pk}/rename/``).

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
        ref = p.reference(conversation_id)
        body = {"name": p.new_name(name, required=True)}
        return await self._write("PATCH", "rename", body, ref)

    async def mark_conversation(
        self, conversation_id: int | str, is_marked: bool
    ) -> dict[str, Any]:
        """Mark (``True``) or unmark (``False``) a conversation (``POST .../{pk}/mark/``).

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
        ref = p.reference(conversation_id)
        return await self._write("POST", "mark", {"is_marked": bool(is_marked)}, ref)

    async def delete_conversation(self, conversation_id: int | str) -> dict[str, Any]:
        """Soft-delete a conversation (``DELETE /api/conversations/{pk}/delete/``).

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
        ref = p.reference(conversation_id)
        return await self._write("DELETE", "delete", None, ref)

    async def update_conversation(
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
        ref = p.reference(conversation_id)
        body = p.update_body(name, is_marked, customer_id, device, language, metadata)
        return await self._write("PATCH", "update", body, ref)

    async def _write(
        self,
        method: str,
        action: str,
        body: dict[str, Any] | None,
        ref: int | str | None = None,
    ) -> dict[str, Any]:
        """Send one write; *action* is a route, or a per-conversation action when *ref* is given."""
        if ref is not None:
            pk = ref
            if isinstance(ref, str):
                found = await self._http.get(
                    ROUTE_LOOKUP, {"conversation_id": ref}, self._http.deadline()
                )
                pk = p.lookup_pk(found, ref)
            action = _route(int(pk), action)
        answer: dict[str, Any] = await self._http.write(method, action, body)
        return answer
