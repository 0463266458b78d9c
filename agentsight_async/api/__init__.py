"""Reading and managing tracked conversations: the original package's surface, async-first.

Read with :class:`AsyncAgentSightAPI` (or the blocking :class:`AgentSightAPI`
and its module-level instance ``agentsight_api``); manage - feedback, rename,
mark, update, soft delete - with :class:`AsyncConversationManager` (or
:class:`ConversationManager` / ``conversation_manager``)::

    from agentsight_async import AsyncAgentSightAPI

    async with AsyncAgentSightAPI() as api:       # AGENTSIGHT_API_KEY / _ENDPOINT
        async for conversation in api.iter_conversations(is_marked=True):
            print(conversation["conversation_id"], conversation["name"])

One async core, thin blocking shells: the sync clients run the async
client's coroutines on a private loop thread.  Reads are retried (network
errors, 408, 429, 5xx, ``Retry-After``); writes are sent exactly once.
Everything here is also exported from :mod:`agentsight_async`.
"""

from ._blocking import AgentSightAPI, ConversationManager, agentsight_api, conversation_manager
from ._managing import AsyncConversationManager
from ._params import ConversationFilters
from ._reading import AsyncAgentSightAPI

__all__ = [
    "AgentSightAPI",
    "AsyncAgentSightAPI",
    "AsyncConversationManager",
    "ConversationFilters",
    "ConversationManager",
    "agentsight_api",
    "conversation_manager",
]
