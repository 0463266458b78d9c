"""Exceptions raised at the call site.

Nothing in this module is ever raised from the background pipeline: delivery
failures are logged, counted in ``stats()`` and passed to ``on_error``.  Only a
call that the user made with bad input, or a blocking call that cannot
complete, raises - one of these::

    AgentSightError
     ├── ConfigurationError (ValueError)     bad setting (names the variable)
     │    ├── NoApiKeyException              a key was required and is missing
     │    └── InvalidApiKeyException         the key does not match ags_<32 hex>_<6 hex>
     ├── ConversationTrackingException       a tracking call could not be done
     │    ├── InvalidConversationDataException (ValueError)   bad input: names the argument
     │    ├── InvalidQuestionDataException (ValueError)
     │    ├── InvalidAnswerDataException (ValueError)
     │    ├── InvalidAttachmentException (ValueError)
     │    ├── ConversationApiException       the backend answered an error status
     │    │    ├── NotFoundException         404
     │    │    ├── UnauthorizedException     401
     │    │    ├── ForbiddenException        403
     │    │    ├── RateLimitException        429, with the server's ``retry_after``
     │    │    └── ApiServerException        5xx (a reading call: after its retries)
     │    └── ConversationNetworkException   the backend could not be reached in time
     ├── MissingConversationIdException (ValueError)
     │    └── NoConversationIdException
     ├── NoDataToSendException               send_tracked_data() with nothing tracked
     ├── AgentSightApiJwtExpiredException    kept for the original's name
     ├── AgentSightClientNotInitializedException (RuntimeError)
     ├── DeliveryError                       given to on_error for lost events, never raised
     └── FlushTimeoutError (TimeoutError)    a blocking flush/close ran past its deadline

The original names are kept, with the original's subclass relations, so that
code written against the original SDK keeps its ``except`` clauses.  Input
errors are also ``ValueError`` s (the original raised plain ``ValueError`` for
some of them); network and API errors are not.  Every message names the
argument or setting and what was wrong with it.
"""

from __future__ import annotations

from typing import Any


class AgentSightError(Exception):
    """Base class of every exception this package raises.

    ``except AgentSightError`` catches them all; nothing raised in the background
    reaches your code (delivery failures go to ``on_error``).
    """


class ConfigurationError(AgentSightError, ValueError):
    """A setting (constructor argument or ``AGENTSIGHT_*`` variable) is invalid.

    Raised when a tracker or API client is built, or by ``configure()``; the
    message names the variable (``AGENTSIGHT_FLUSH_INTERVAL: ...``) and never
    shows the API key. Also a ``ValueError``.
    """


class NoApiKeyException(ConfigurationError):
    """An API key was required and is missing.

    Raised by the explicit delivery calls (``send_tracked_data()``, ``flush()``,
    ``initialize_conversation()``) of a tracker that a missing key disabled, by
    ``configure(api_key=None)``, and by API clients built without a key.
    """

    def __init__(
        self,
        message: str = "AGENTSIGHT_API_KEY: no API key was given. "
        "Find your API key at https://app.agentsight.io/settings",
    ) -> None:
        super().__init__(message)


class InvalidApiKeyException(ConfigurationError):
    """The API key does not have the ``ags_<32 hex>_<6 hex>`` form.

    The key itself is never part of the message.
    """

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "AGENTSIGHT_API_KEY: the key is malformed; expected 'ags_' followed by "
            "32 hex characters, '_' and 6 hex characters"
        )


class ConversationTrackingException(AgentSightError):
    """A tracking call could not be done: bad input, or the backend refused or was out of reach.

    The input errors below are ``ValueError`` s as well, because the original
    SDK raised plain ``ValueError`` for some of them (an unknown attachment
    mode); network and API errors are not.
    """


class InvalidConversationDataException(ConversationTrackingException, ValueError):
    """Invalid conversation, action, button or token-usage data.

    Raised at the call site, before anything is queued; the message starts with
    the argument's name. Also a ``ValueError``.
    """


class InvalidQuestionDataException(ConversationTrackingException, ValueError):
    """Invalid user (human) message: empty, blank, too long, not text, bad metadata.

    Raised by ``track_human_message()`` before anything is queued. Also a
    ``ValueError``.
    """


class InvalidAnswerDataException(ConversationTrackingException, ValueError):
    """Invalid agent message: empty, blank, too long, not text, bad metadata.

    Raised by ``track_agent_message()`` before anything is queued. Also a
    ``ValueError``.
    """


class InvalidAttachmentException(ConversationTrackingException, ValueError):
    """Invalid attachment list, attachment entry or attachment mode.

    Also raised when the files of one call exceed ``max_attachment_bytes``. Also
    a ``ValueError`` (the original raised a plain ``ValueError`` for an unknown
    mode).
    """


class ConversationApiException(ConversationTrackingException):
    """The backend answered a blocking call with an error status.

    ``status_code`` is the HTTP status (None when there was no answer to read),
    ``response_data`` the parsed error body, with any credential scrubbed.
    """

    def __init__(
        self, message: str, status_code: int | None = None, response_data: Any = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response_data = response_data


class NotFoundException(ConversationApiException):
    """The backend answered 404: the conversation (or other resource) does not exist.

    Raised by the reading and managing clients; ``status_code`` is 404.
    """

    def __init__(self, message: str = "Resource not found", response_data: Any = None) -> None:
        super().__init__(message, 404, response_data)


class UnauthorizedException(ConversationApiException):
    """The backend answered 401: the API key is missing, wrong, or its subscription inactive.

    Raised by the reading and managing clients; ``status_code`` is 401.
    """

    def __init__(
        self, message: str = "Unauthorized - invalid or missing API key", response_data: Any = None
    ) -> None:
        super().__init__(message, 401, response_data)


class ForbiddenException(ConversationApiException):
    """The backend answered 403: the key may not do this (e.g. a ``read`` key writing).

    Raised by the reading and managing clients; ``status_code`` is 403.
    """

    def __init__(
        self,
        message: str = "Forbidden - not authorized to access this resource",
        response_data: Any = None,
    ) -> None:
        super().__init__(message, 403, response_data)


class RateLimitException(ConversationApiException):
    """The backend answered 429: too many requests for now.

    ``retry_after`` is how many seconds the server asked to wait (its
    ``Retry-After`` header, seconds or HTTP-date, clamped to
    ``AGENTSIGHT_RETRY_AFTER_CAP``), or None when it did not say.  A reading
    call raises it only once its own retries are used up; a write (feedback,
    rename, mark, update, delete) raises it at once, because a write is never
    replayed automatically - whether to send it again is the caller's decision.
    """

    def __init__(
        self,
        message: str = "Too many requests",
        retry_after: float | None = None,
        response_data: Any = None,
    ) -> None:
        super().__init__(message, 429, response_data)
        self.retry_after = retry_after


class ApiServerException(ConversationApiException):
    """The backend failed a reading or managing call (5xx; a read after its retries).

    A :class:`ConversationApiException`, as the original client raised for a
    5xx, so ``except ConversationApiException`` written for it still catches
    this; ``status_code`` is the last answer's status.
    """


class ConversationNetworkException(ConversationTrackingException):
    """A blocking call could not reach the backend, or got no answer in time.

    Raised by ``initialize_conversation()`` and by the reading and managing
    clients; never by ``track_*`` calls.
    """


class MissingConversationIdException(AgentSightError, ValueError):
    """There is no conversation to use: ``conversation_id`` is missing or blank.

    Raised at the call site when a call names no conversation and none can be
    inferred without guessing (see the conversation rule), or when an id is
    empty. Also a ``ValueError``.
    """

    def __init__(self, message: str = "conversation_id: must be a non-blank string") -> None:
        super().__init__(message)


class NoConversationIdException(MissingConversationIdException):
    """Kept for the original SDK's name; same meaning as its parent.

    Never raised by this SDK (it raises :class:`MissingConversationIdException`,
    the parent); importable for code written against the original.
    """


class NoDataToSendException(AgentSightError):
    """``send_tracked_data()`` found nothing tracked for the conversation since its last call.

    As the original raised it; with tracking disabled the call returns an empty
    report instead.
    """

    def __init__(self, message: str = "No tracked data found for conversation.") -> None:
        super().__init__(message)


class AgentSightApiJwtExpiredException(AgentSightError):
    """Kept for the original package's name; this SDK authenticates with API keys only.

    Never raised; importable so that code written for the original keeps working.
    """

    def __init__(self, message: str = "JWT token has expired") -> None:
        super().__init__(message)


class AgentSightClientNotInitializedException(AgentSightError, RuntimeError):
    """Kept for the original package's name: a client was used before it was set up.

    Never raised by this SDK (clients set themselves up on first use); importable
    for code written against the original. Also a ``RuntimeError``.
    """

    def __init__(
        self, message: str = "AgentSight client must be initialized before using this feature"
    ) -> None:
        super().__init__(message)


class DeliveryError(AgentSightError):
    """Events could not be delivered (given to ``on_error``, never raised into your code).

    Passed to ``on_error`` when no more specific exception describes the loss
    (the shutdown deadline passed, an answer without the expected id ...).
    """


class FlushTimeoutError(AgentSightError, TimeoutError):
    """A blocking ``flush``/``close`` did not finish within its deadline.

    Nothing is lost by raising this: the events stay queued and the background
    flusher keeps trying.
    """


__all__ = [
    "AgentSightApiJwtExpiredException",
    "AgentSightClientNotInitializedException",
    "AgentSightError",
    "ApiServerException",
    "ConfigurationError",
    "ConversationApiException",
    "ConversationNetworkException",
    "ConversationTrackingException",
    "DeliveryError",
    "FlushTimeoutError",
    "ForbiddenException",
    "InvalidAnswerDataException",
    "InvalidApiKeyException",
    "InvalidAttachmentException",
    "InvalidConversationDataException",
    "InvalidQuestionDataException",
    "MissingConversationIdException",
    "NoApiKeyException",
    "NoConversationIdException",
    "NoDataToSendException",
    "NotFoundException",
    "RateLimitException",
    "UnauthorizedException",
]
