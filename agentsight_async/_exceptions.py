"""Exceptions raised at the call site.

Nothing in this module is ever raised from the background pipeline: delivery
failures are logged, counted in ``stats()`` and passed to ``on_error``.  Only a
call that the user made with bad input (or a blocking call that cannot complete)
raises, and it raises one of these::

    AgentSightError
     ├── ConfigurationError                 bad setting (names the variable)
     │    ├── NoApiKeyException             a key was required and is missing
     │    └── InvalidApiKeyException        the key does not match ags_<32 hex>_<6 hex>
     ├── ConversationTrackingException      bad tracking input (names the argument)
     │    ├── InvalidConversationDataException
     │    ├── InvalidQuestionDataException
     │    ├── InvalidAnswerDataException
     │    ├── InvalidAttachmentException
     │    ├── ConversationApiException      initialize_conversation() got an error status
     │    └── ConversationNetworkException  initialize_conversation() could not connect
     ├── MissingConversationIdException
     ├── NoConversationIdException
     ├── NoDataToSendException              send_tracked_data() with nothing tracked
     └── FlushTimeoutError                  a blocking flush/close ran past its deadline

The legacy names (``InvalidQuestionDataException`` ...) are kept so that code
written against the original SDK keeps its ``except`` clauses.  Every message
names the argument or setting and what was wrong with it.
"""

from __future__ import annotations

from typing import Any


class AgentSightError(Exception):
    """Base class of every exception this package raises."""


class ConfigurationError(AgentSightError, ValueError):
    """A setting (constructor argument or ``AGENTSIGHT_*`` variable) is invalid."""


class NoApiKeyException(ConfigurationError):
    """An API key was required (e.g. ``configure(api_key=None)``) and is missing."""

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


class ConversationTrackingException(AgentSightError, ValueError):
    """A tracking call got input it cannot record.

    Subclasses ``ValueError`` as well, because the original SDK raised plain
    ``ValueError`` for some of these (an unknown attachment mode).
    """


class InvalidConversationDataException(ConversationTrackingException):
    """Invalid conversation, action or button data."""


class InvalidQuestionDataException(ConversationTrackingException):
    """Invalid user (human) message."""


class InvalidAnswerDataException(ConversationTrackingException):
    """Invalid agent message."""


class InvalidAttachmentException(ConversationTrackingException):
    """Invalid attachment list, attachment entry or attachment mode."""


class ConversationApiException(ConversationTrackingException):
    """The backend answered a blocking call with an error status."""

    def __init__(
        self, message: str, status_code: int | None = None, response_data: Any = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response_data = response_data


class ConversationNetworkException(ConversationTrackingException):
    """A blocking call could not reach the backend."""


class MissingConversationIdException(AgentSightError, ValueError):
    """``conversation_id`` is missing or blank."""

    def __init__(self, message: str = "conversation_id: must be a non-blank string") -> None:
        super().__init__(message)


class NoConversationIdException(MissingConversationIdException):
    """Kept for the original SDK's name; same meaning as its parent."""


class NoDataToSendException(AgentSightError):
    """``send_tracked_data()`` found nothing tracked for the conversation."""

    def __init__(self, message: str = "No tracked data found for conversation.") -> None:
        super().__init__(message)


class FlushTimeoutError(AgentSightError, TimeoutError):
    """A blocking ``flush``/``close`` did not finish within its deadline.

    Nothing is lost by raising this: the events stay queued and the background
    flusher keeps trying.
    """


__all__ = [
    "AgentSightError",
    "ConfigurationError",
    "ConversationApiException",
    "ConversationNetworkException",
    "ConversationTrackingException",
    "FlushTimeoutError",
    "InvalidAnswerDataException",
    "InvalidApiKeyException",
    "InvalidAttachmentException",
    "InvalidConversationDataException",
    "InvalidQuestionDataException",
    "MissingConversationIdException",
    "NoApiKeyException",
    "NoConversationIdException",
    "NoDataToSendException",
]
