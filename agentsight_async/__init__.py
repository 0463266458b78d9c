"""agentsight-async: send AI-agent conversations to AgentSight without slowing the agent.

Sync code keeps the original documented API::

    from agentsight_async import conversation_tracker
    conversation_tracker.get_or_create_conversation("chat-123", name="Support Chat")
    conversation_tracker.track_human_message("Hello!")
    conversation_tracker.send_tracked_data()

Async code awaits the same methods on :class:`AsyncConversationTracker`::

    async with AsyncConversationTracker() as tracker:
        async with tracker.conversation("chat-123"):
            await tracker.track_human_message("Hello!")

Reading and managing what was tracked: :class:`AsyncAgentSightAPI` and
:class:`AsyncConversationManager`, and the original blocking ``agentsight_api``
and ``conversation_manager`` (see :mod:`agentsight_async.api`).
"""

from ._config import Settings
from ._decorators import task, tool
from ._events import Batch, ConversationBatch, Event, FlushResult, Outcome
from ._exceptions import (
    AgentSightApiJwtExpiredException,
    AgentSightClientNotInitializedException,
    AgentSightError,
    ApiServerException,
    ConfigurationError,
    ConversationApiException,
    ConversationNetworkException,
    ConversationTrackingException,
    DeliveryError,
    FlushTimeoutError,
    ForbiddenException,
    InvalidAnswerDataException,
    InvalidApiKeyException,
    InvalidAttachmentException,
    InvalidConversationDataException,
    InvalidQuestionDataException,
    MissingConversationIdException,
    NoApiKeyException,
    NoConversationIdException,
    NoDataToSendException,
    NotFoundException,
    RateLimitException,
    UnauthorizedException,
)
from ._exporters._base import Exporter
from ._facade import ConversationTracker, conversation_tracker
from ._push import PushResult, apush, push
from ._tracker import AsyncConversationTracker
from ._version import __version__
from .api import (
    AgentSightAPI,
    AsyncAgentSightAPI,
    AsyncConversationManager,
    ConversationManager,
    agentsight_api,
    conversation_manager,
)
from .integrations import instrument, uninstrument

__all__ = [
    "AgentSightAPI",
    "AgentSightApiJwtExpiredException",
    "AgentSightClientNotInitializedException",
    "AgentSightError",
    "ApiServerException",
    "AsyncAgentSightAPI",
    "AsyncConversationManager",
    "AsyncConversationTracker",
    "Batch",
    "ConfigurationError",
    "ConversationApiException",
    "ConversationBatch",
    "ConversationManager",
    "ConversationNetworkException",
    "ConversationTracker",
    "ConversationTrackingException",
    "DeliveryError",
    "Event",
    "Exporter",
    "FlushResult",
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
    "Outcome",
    "PushResult",
    "RateLimitException",
    "Settings",
    "UnauthorizedException",
    "__version__",
    "agentsight_api",
    "apush",
    "conversation_manager",
    "conversation_tracker",
    "instrument",
    "push",
    "task",
    "tool",
    "uninstrument",
]
