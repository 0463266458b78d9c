"""The pytest plugin: test your own agent's tracking in one line.

Installed with the package and loaded by pytest through the ``pytest11`` entry
point (``-p no:agentsight_async`` turns it off); importing ``agentsight_async``
never imports this module or pytest.  Each test that asks for a fixture gets a
tracker on its own ``memory://`` endpoint, so tests never see each other's
events and nothing leaves the process::

    def test_agent_answers(agentsight):
        my_agent.reply("Where is my order?", tracker=agentsight.tracker, chat_id="c1")
        agentsight.assert_tracked("human_message", content="Where is my order?")
        agentsight.assert_tracked("agent_message", conversation_id="c1")

Fixtures:

* ``agentsight`` - an :class:`AgentSightRecorder`: the tracker (``.tracker``,
  ``.aio``) and assertions over what it recorded;
* ``agentsight_tracker`` - the :class:`~agentsight_async.ConversationTracker`
  of that recorder;
* ``agentsight_async_tracker`` - an :class:`~agentsight_async.AsyncConversationTracker`
  over the same queues (its flusher runs on the tracker's own thread, so it
  works in any test, with or without an async test plugin);
* ``agentsight_conversation_tracker`` - the module-level
  ``conversation_tracker`` pointed at the test's endpoint, with no current
  conversation at the start, and reset afterwards;
* ``agentsight_endpoint`` - the test's ``memory://`` URL.

Every tracker starts with no current conversation, so a test never inherits
one from another.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from ._events import FlushResult
from ._facade import ConversationTracker, conversation_tracker
from ._tracker import AsyncConversationTracker
from .testing import clear_recorded, recorded

#: Friendly names of the recorded kinds: the ``track_*`` method names.
KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "human_message": ("question",),
    "user_message": ("question",),
    "question": ("question",),
    "agent_message": ("answer",),
    "answer": ("answer",),
    "message": ("question", "answer"),
    "action": ("action",),
    "button": ("button",),
    "attachments": ("attachments",),
    "token_usage": ("token_usage",),
    "conversation": ("conversation", "conversation_opened"),
}
#: How long a recorder waits for the test's events to be recorded.
FLUSH_TIMEOUT = 10.0

_numbers = itertools.count(1)

Match = str | re.Pattern[str] | int | float | bool | None | dict[str, Any] | list[Any]


def _kinds(kind: str | None) -> tuple[str, ...] | None:
    if kind is None:
        return None
    try:
        return KIND_ALIASES[kind]
    except KeyError:
        valid = ", ".join(sorted(KIND_ALIASES))
        raise ValueError(f"kind: unknown kind {kind!r}; expected one of {valid}") from None


def _matches(value: Any, expected: Match) -> bool:
    if isinstance(expected, re.Pattern):
        return isinstance(value, str) and expected.search(value) is not None
    return bool(value == expected)


def describe(record: dict[str, Any]) -> str:
    """One recorded event as a line of a transcript: ``chat-1  question  'Hello'``."""
    data = record["data"]
    what = (
        data.get("content")
        or data.get("action_name")
        or data.get("label")
        or data.get("name")
        or ", ".join(f"{k}={data[k]}" for k in ("prompt_tokens", "completion_tokens") if k in data)
    )
    return f"{record['conversation_id']}  {record['kind']}  {what!r}"


class AgentSightRecorder:
    """What the tracker of one test recorded, with assertions (the ``agentsight`` fixture).

    Reading anything flushes the trackers first, so what a test tracked before the
    read is there.  Records are dicts ``{id, span_id, kind, type, conversation_id,
    timestamp, data}``, ``data`` in the original SDK's item shape
    (``content``, ``sender``, ``action_name``, ``metadata`` ...); ``kind`` is one of
    ``conversation``, ``conversation_opened``, ``question``, ``answer``, ``action``,
    ``button``, ``attachments``, ``token_usage``.  Methods that take a ``kind``
    also accept the names of the tracking calls: ``human_message`` (or
    ``user_message``), ``agent_message``, ``message`` (either sender).

    Args:
        endpoint: the ``memory://`` URL the trackers send to.
        tracker: the test's tracker.
    """

    def __init__(self, endpoint: str, tracker: ConversationTracker) -> None:
        self.endpoint = endpoint
        self.tracker = tracker
        self._trackers: list[ConversationTracker] = [tracker]

    @property
    def aio(self) -> AsyncConversationTracker:
        """The async tracker over the same queues as :attr:`tracker`."""
        return self.tracker.aio

    def watch(self, tracker: ConversationTracker) -> None:
        """Flush *tracker* too before every read.

        Args:
            tracker: another tracker that sends to :attr:`endpoint` (the
                ``agentsight_conversation_tracker`` fixture registers the module-level
                one).
        """
        if tracker not in self._trackers:
            self._trackers.append(tracker)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> FlushResult:
        """Wait until everything tracked so far is recorded.

        Works from sync and async tests alike (the trackers' flushers run on their
        own thread); in an async test it blocks the loop for the moment the
        in-process ``memory://`` delivery takes.

        Args:
            timeout: seconds to wait at most.

        Returns:
            The :class:`~agentsight_async.FlushResult` of the test's tracker.
        """
        result = self.tracker.flush(timeout)
        for other in self._trackers[1:]:
            other.flush(timeout)
        return result

    def records(
        self, kind: str | None = None, *, conversation_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The recorded events, in the order they were tracked (per conversation).

        Args:
            kind: only events of this kind (see the class docstring for the names).
            conversation_id: only events of this conversation.

        Returns:
            Copies of the records.

        Raises:
            ValueError: for an unknown *kind*.
        """
        kinds = _kinds(kind)
        self.flush()
        return [
            r
            for r in recorded(self.endpoint, conversation_id)
            if kinds is None or r["kind"] in kinds
        ]

    def conversations(self) -> list[str]:
        """The ids of the conversations that recorded anything.

        Returns:
            Conversation ids, in the order they were first seen.
        """
        return list(dict.fromkeys(r["conversation_id"] for r in self.records()))

    def messages(self, conversation_id: str | None = None) -> list[tuple[str, str]]:
        """The messages as ``(sender, text)`` pairs, sender ``"user"`` or ``"agent"``.

        Args:
            conversation_id: only this conversation's messages.

        Returns:
            ``[("user", "Hi"), ("agent", "Hello!")]``, in tracking order.
        """
        return [
            ("user" if r["kind"] == "question" else "agent", r["data"]["content"])
            for r in self.records("message", conversation_id=conversation_id)
        ]

    def find(
        self,
        kind: str | None = None,
        *,
        conversation_id: str | None = None,
        content: str | re.Pattern[str] | None = None,
        **fields: Match,
    ) -> list[dict[str, Any]]:
        """The records that match every criterion given.

        Args:
            kind: the event kind (``"human_message"``, ``"action"`` ...).
            conversation_id: the conversation.
            content: a message's text: equal to a ``str``, or searched by a compiled
                ``re.Pattern``.
            **fields: other fields of the record's ``data``, each equal (or, for a
                pattern, searched): ``action_name="search"``, ``model="gpt-4o"``.

        Returns:
            The matching records, in tracking order.

        Raises:
            ValueError: for an unknown *kind*.
        """
        wanted = dict(fields)
        if content is not None:
            wanted["content"] = content
        return [
            r
            for r in self.records(kind, conversation_id=conversation_id)
            if all(k in r["data"] and _matches(r["data"][k], v) for k, v in wanted.items())
        ]

    def assert_tracked(
        self,
        kind: str | None = None,
        *,
        conversation_id: str | None = None,
        content: str | re.Pattern[str] | None = None,
        count: int | None = None,
        **fields: Match,
    ) -> dict[str, Any]:
        """Assert that a matching event was recorded; return the first match.

        Args:
            kind: the event kind (``"human_message"``, ``"agent_message"``,
                ``"action"``, ``"token_usage"`` ...).
            conversation_id: the conversation it must belong to.
            content: the message text (``str``: equal; ``re.Pattern``: searched).
            count: how many matches there must be exactly (default: at least one).
            **fields: other ``data`` fields that must match (``action_name="search"``).

        Returns:
            The first matching record.

        Raises:
            AssertionError: when nothing (or not *count* records) matched; the
                message lists what was recorded.
            ValueError: for an unknown *kind*.
        """
        found = self.find(kind, conversation_id=conversation_id, content=content, **fields)
        if found and (count is None or len(found) == count):
            return found[0]
        wanted = {"kind": kind, "conversation_id": conversation_id, "content": content, **fields}
        criteria = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if v is not None)
        expected = "no event" if count is None else f"{len(found)} event(s), not {count},"
        raise AssertionError(
            f"{expected} matched {criteria or 'anything'}; recorded:\n" + self.transcript()
        )

    def assert_not_tracked(
        self,
        kind: str | None = None,
        *,
        conversation_id: str | None = None,
        content: str | re.Pattern[str] | None = None,
        **fields: Match,
    ) -> None:
        """Assert that no recorded event matches.

        Args:
            kind: the event kind (``"human_message"``, ``"action"`` ...).
            conversation_id: the conversation.
            content: the message text (``str``: equal; ``re.Pattern``: searched).
            **fields: other ``data`` fields that must match (``action_name="search"``).

        Raises:
            AssertionError: when one did; the message lists the matches.
            ValueError: for an unknown *kind*.
        """
        found = self.find(kind, conversation_id=conversation_id, content=content, **fields)
        if found:
            lines = "\n".join(describe(r) for r in found)
            raise AssertionError(f"{len(found)} event(s) matched but none should:\n{lines}")

    def transcript(self, conversation_id: str | None = None) -> str:
        """What was recorded, one line per event (what failed assertions print).

        Args:
            conversation_id: only this conversation.

        Returns:
            Lines of ``conversation  kind  'content'``, or ``(nothing)``.
        """
        lines = [describe(r) for r in self.records(conversation_id=conversation_id)]
        return "\n".join(lines) if lines else "(nothing)"

    def clear(self) -> None:
        """Flush, then forget everything recorded so far.

        For a test in several phases: what follows is checked on its own.
        """
        self.flush()
        clear_recorded(self.endpoint)


@pytest.fixture
def agentsight_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """A ``memory://`` URL of this test's own.

    What was recorded there is forgotten after the test.
    """
    url = f"memory://pytest/{next(_numbers)}/{request.node.nodeid}"
    try:
        yield url
    finally:
        clear_recorded(url)


@pytest.fixture
def agentsight_tracker(agentsight_endpoint: str) -> Iterator[ConversationTracker]:
    """A :class:`~agentsight_async.ConversationTracker` on this test's ``memory://`` endpoint.

    It has no current conversation at the start and is closed after the test.
    Other ``AGENTSIGHT_*`` settings of the environment still apply (redaction,
    sampling ...); ``AGENTSIGHT_ENABLED`` does not turn it off.
    """
    tracker = ConversationTracker(endpoint=agentsight_endpoint, enabled=True)
    try:
        yield tracker
    finally:
        tracker.close(timeout=FLUSH_TIMEOUT)


@pytest.fixture
def agentsight_async_tracker(agentsight_tracker: ConversationTracker) -> AsyncConversationTracker:
    """An :class:`~agentsight_async.AsyncConversationTracker` on this test's endpoint.

    It shares the queues of ``agentsight_tracker`` (and of the ``agentsight``
    recorder); its flusher runs on that tracker's own thread, so the test may use
    any event loop - pytest-asyncio, anyio, or ``asyncio.run()``.
    """
    return agentsight_tracker.aio


@pytest.fixture
def agentsight(
    agentsight_endpoint: str, agentsight_tracker: ConversationTracker
) -> AgentSightRecorder:
    """The test's tracker, and assertions over what it recorded.

    An :class:`AgentSightRecorder` whose ``.tracker`` sends to the test's own
    ``memory://`` endpoint; ``.aio`` is the async tracker over the same queues.
    """
    return AgentSightRecorder(agentsight_endpoint, agentsight_tracker)


@pytest.fixture
def agentsight_conversation_tracker(
    agentsight: AgentSightRecorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ConversationTracker]:
    """The module-level ``conversation_tracker``, recording to this test's endpoint.

    For code under test that uses the singleton.  It starts afresh - no current
    conversation, no queued events - reads the environment with the endpoint
    replaced, and is closed again after the test (the next use starts afresh).
    The ``agentsight`` recorder flushes it before every read.
    """
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", agentsight.endpoint)
    monkeypatch.setenv("AGENTSIGHT_ENABLED", "true")
    conversation_tracker.close(timeout=FLUSH_TIMEOUT)
    agentsight.watch(conversation_tracker)
    try:
        yield conversation_tracker
    finally:
        conversation_tracker.close(timeout=FLUSH_TIMEOUT)


__all__ = [
    "AgentSightRecorder",
    "agentsight",
    "agentsight_async_tracker",
    "agentsight_conversation_tracker",
    "agentsight_endpoint",
    "agentsight_tracker",
]
