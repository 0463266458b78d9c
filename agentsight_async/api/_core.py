"""What the two async clients share: settings, credentials, the HTTP core, the lifecycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx

from .._config import Settings, load_settings
from .._exceptions import ConfigurationError, NoApiKeyException

if TYPE_CHECKING:
    from ._transport import ApiHttp

#: Default seconds a reading call may keep retrying (constructor ``retry_budget=``).
READ_RETRY_BUDGET: Final = 10.0

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: Seconds a blocking call waits beyond the async call's own bounds before giving up:
#: those bounds always end it first; this only keeps a bug from hanging the caller.
SYNC_SLACK = 5.0

C = TypeVar("C", bound="AsyncApiClient")


def api_settings(
    api_key: str | None, endpoint: str | None, settings: Settings | None, overrides: dict[str, Any]
) -> Settings:
    """The settings of a reading or managing client, checked for what it needs.

    Like the tracker: *settings* as given, else the arguments (any
    :class:`Settings` field; ``None`` means "from the environment") over
    ``AGENTSIGHT_*`` and ``.env``.

    Raises:
        ConfigurationError: an invalid value, or an endpoint that is not
            ``http(s)://`` (reading needs an AgentSight server, such as the local
            collector).
        NoApiKeyException: no API key was given or configured, and the endpoint
            needs one (a collector on this machine, ``agentsight-async serve
            --dev``, does not: the same rule as the tracker's).
    """
    if settings is None:
        settings = load_settings(api_key=api_key, api_endpoint=endpoint, **overrides)
    if settings.scheme != "http":
        raise ConfigurationError(
            f"AGENTSIGHT_API_ENDPOINT: reading and managing conversations needs an "
            f"http(s):// AgentSight endpoint (such as the local collector, "
            f"`agentsight-async serve`), not {settings.scheme}://"
        )
    if settings.api_key is None and settings.needs_api_key:
        raise NoApiKeyException()
    return settings


class AsyncApiClient:
    """Base of :class:`AsyncAgentSightAPI` and :class:`AsyncConversationManager`.

    Settings are read and the API key checked here, when the client is built
    (never at import).  The HTTP connections are opened on first use, on the
    running event loop; ``async with`` (or :meth:`aclose`) closes them.
    """

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        *,
        settings: Settings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_budget: float = READ_RETRY_BUDGET,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        **overrides: Any,
    ) -> None:
        checked = api_settings(api_key, endpoint, settings, overrides)
        # Imported with the first client, as exporters are: importing the package (and a
        # tracker on memory:// or sqlite:///) never loads the HTTP client modules.
        from ._transport import ApiHttp

        self._http: ApiHttp = ApiHttp(
            checked, transport=transport, retry_budget=retry_budget, sleep=sleep, clock=clock
        )

    @property
    def settings(self) -> Settings:
        """The settings in effect (the key is a ``SecretStr``: never printed)."""
        return self._http.settings

    @property
    def call_timeout(self) -> float:
        """The longest a call can take: its retries, two last requests, and slack.

        A call makes at most two sequential requests after its retries (a lookup,
        then a write); each is bounded by ``request_timeout``.  The sync clients
        wait this long at most.
        """
        return self._http.retry_budget + 2 * self.settings.request_timeout + SYNC_SLACK

    async def aclose(self) -> None:
        """Close the HTTP connections.

        The client can be used again afterwards: the next call opens new ones.
        """
        await self._http.aclose()

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} endpoint={self.settings.api_endpoint!r}>"
