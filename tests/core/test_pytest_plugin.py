"""The pytest plugin (``agentsight_async.pytest_plugin``), run in inner pytest sessions.

Our own suite runs with ``-p no:agentsight_async`` (see pyproject.toml); the inner
sessions here load it the way a user's pytest does: through the ``pytest11``
entry point.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

pytestmark = pytest.mark.allow_blocking  # inner sessions run their own loops


@pytest.fixture(autouse=True)
def _inner_ini(pytester: pytest.Pytester) -> None:
    """What a user's project would configure for pytest-asyncio (installed here)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_the_entry_point_names_the_plugin_module() -> None:
    points = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert points.get("agentsight_async") == "agentsight_async.pytest_plugin"


def test_importing_the_sdk_imports_neither_pytest_nor_the_plugin() -> None:
    code = (
        "import sys, agentsight_async, agentsight_async.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pytest', '_pytest', 'pluggy') or m == 'agentsight_async.pytest_plugin'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_recorder_asserts_by_conversation_kind_and_content(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import re

        import pytest


        def reply(tracker, chat_id, text):
            with tracker.conversation(chat_id, name="Support"):
                tracker.track_human_message(text)
                tracker.track_action("search_kb", duration_ms=12, response="2 hits")
                tracker.track_token_usage(prompt_tokens=30, completion_tokens=5, model="m-1")
                tracker.track_agent_message("Here is how: ...")


        def test_passes(agentsight):
            reply(agentsight.tracker, "c1", "How do I reset my password?")
            reply(agentsight.tracker, "c2", "Where is my order?")
            agentsight.assert_tracked("human_message", content="How do I reset my password?")
            agentsight.assert_tracked(
                "human_message", conversation_id="c2", content=re.compile("order")
            )
            agentsight.assert_tracked("action", conversation_id="c1", action_name="search_kb")
            agentsight.assert_tracked("token_usage", model="m-1", count=2)
            agentsight.assert_tracked("message", conversation_id="c1", count=2)
            agentsight.assert_not_tracked("button")
            agentsight.assert_not_tracked(
                "human_message", conversation_id="c1", content="Where is my order?"
            )
            assert agentsight.conversations() == ["c1", "c2"]
            assert agentsight.messages("c2") == [
                ("user", "Where is my order?"),
                ("agent", "Here is how: ..."),
            ]
            record = agentsight.assert_tracked("conversation", conversation_id="c1")
            assert record["data"]["name"] == "Support"


        def test_fails_with_the_transcript(agentsight):
            reply(agentsight.tracker, "c1", "hello")
            agentsight.assert_tracked("agent_message", content="goodbye")


        def test_count_mismatch(agentsight):
            reply(agentsight.tracker, "c1", "hello")
            agentsight.assert_tracked("human_message", count=2)


        def test_unknown_kind(agentsight):
            with pytest.raises(ValueError, match="kind: unknown kind 'tool'"):
                agentsight.records("tool")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: no event matched kind='agent_message', content='goodbye'; recorded:",
            "*c1  conversation  'Support'",
            "*c1  question  'hello'",
            "*c1  action  'search_kb'",
            "*c1  token_usage  'prompt_tokens=30, completion_tokens=5'",
            "*c1  answer  'Here is how: ...'",
            "*1 event(s), not 2, matched kind='human_message'*",
        ]
    )


def test_each_test_starts_clean(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from agentsight_async import MissingConversationIdException


        def test_first(agentsight):
            agentsight.tracker.get_or_create_conversation("first")
            agentsight.tracker.track_human_message("one")
            assert agentsight.conversations() == ["first"]


        def test_second(agentsight, agentsight_tracker):
            assert agentsight_tracker is agentsight.tracker
            assert agentsight.records() == []  # nothing of test_first
            assert agentsight.tracker.current_conversation_id is None
            agentsight.tracker.track_human_message("two")  # a script-style generated id
            (record,) = agentsight.records("human_message")
            assert record["conversation_id"].startswith("conv_")


        def test_endpoints_differ(agentsight_endpoint, request):
            assert agentsight_endpoint.startswith("memory://pytest/")
            assert request.node.name in agentsight_endpoint
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_async_tests_with_pytest_asyncio_and_with_asyncio_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        from agentsight_async import AsyncConversationTracker


        async def agent(tracker: AsyncConversationTracker, chat_id: str) -> None:
            async with tracker.conversation(chat_id):
                await tracker.track_human_message("hi")
                await tracker.track_agent_message("hello")


        @pytest.mark.asyncio
        async def test_with_pytest_asyncio(agentsight_async_tracker, agentsight):
            assert isinstance(agentsight_async_tracker, AsyncConversationTracker)
            await asyncio.gather(*(agent(agentsight_async_tracker, f"c{i}") for i in range(20)))
            result = await agentsight_async_tracker.flush()
            assert result.delivered == 60
            assert sorted(agentsight.conversations()) == sorted(f"c{i}" for i in range(20))
            agentsight.assert_tracked("agent_message", conversation_id="c7", content="hello")


        def test_with_asyncio_run(agentsight):
            asyncio.run(agent(agentsight.aio, "c1"))
            asyncio.run(agent(agentsight.aio, "c2"))  # a second loop: still the same tracker
            assert agentsight.messages("c2") == [("user", "hi"), ("agent", "hello")]
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)


def test_the_module_level_tracker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        from agentsight_async import conversation_tracker


        def handle(question):  # code under test that uses the singleton
            conversation_tracker.get_or_create_conversation("support-1")
            conversation_tracker.track_human_message(question)
            conversation_tracker.track_agent_message("ok")


        def test_singleton(agentsight_conversation_tracker, agentsight):
            assert agentsight_conversation_tracker is conversation_tracker
            handle("refund please")
            agentsight.assert_tracked(
                "human_message", conversation_id="support-1", content="refund please"
            )
            report = conversation_tracker.send_tracked_data()
            assert report["summary"]["questions"] == 1


        def test_reset_afterwards():
            assert os.environ.get("AGENTSIGHT_API_ENDPOINT") is None
            assert conversation_tracker.current_conversation_id is None
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_loaded_by_entry_point_in_a_fresh_process_and_can_be_turned_off(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_uses_the_fixture(agentsight):
            agentsight.tracker.track_human_message("hi", conversation_id="c1")
            assert agentsight.messages() == [("user", "hi")]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:agentsight_async")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'agentsight' not found*"])
