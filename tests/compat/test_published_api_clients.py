"""Reading and managing: the published 0.0.44 clients and ours give the same answers.

One scenario (``clients/api_scenario.py``) of ``agentsight_api`` and
``conversation_manager`` calls - every filter, reads by pk and by
``conversation_id``, attachments, feedback, rename, mark, update, soft delete,
good and bad input, and the effects read back - runs three ways:

* ``agentsight==0.0.44``'s own module-level clients, unchanged, in their
  virtualenv (configured from the environment, as that package requires);
* ours under the same names (``from agentsight_async import agentsight_api,
  conversation_manager``), configured from the same environment;
* our async clients (``AsyncAgentSightAPI``, ``AsyncConversationManager``).

Each run gets its own collector on a copy of one seeded database, so all
three start from the same rows with the same pks.  Every call's answer - or
its exception's class, message, status and body - is compared.  What is
normalised, and why, is named below; nothing else is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import api_scenario  # tests/compat/clients: on sys.path (compat_support puts it there)
import pytest
from compat_support import KEY, client_env, run_client_script, scenario

from agentsight_async import (
    AsyncAgentSightAPI,
    AsyncConversationManager,
    ConversationTracker,
    agentsight_api,
    conversation_manager,
)
from agentsight_collector import LocalCollector

LEGACY = "agentsight-0.0.44"
OURS_SYNC = "ours-sync (agentsight_api, conversation_manager)"
OURS_ASYNC = "ours-async (AsyncAgentSightAPI, AsyncConversationManager)"
OURS = [OURS_SYNC, OURS_ASYNC]

Run = Callable[[str], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One collector database, seeded through our tracker: the compatibility scenario's
    visit and chat (messages, actions, attachments) and two more conversations."""
    path = tmp_path_factory.mktemp("api-compat") / "seeded.db"
    with _clean_environment(), LocalCollector(path, api_keys=(KEY,)) as collector:
        tracker = ConversationTracker(api_key=KEY, endpoint=collector.url, protocol="rest")
        try:
            scenario.run_seed_steps(tracker)
            for cid, spec in api_scenario.EXTRA_CONVERSATIONS.items():
                tracker.get_or_create_conversation(cid, **spec["fields"])
                for n, text in enumerate(spec["messages"]):
                    (tracker.track_agent_message if n % 2 else tracker.track_human_message)(text)
                assert tracker.send_tracked_data()["summary"]["errors"] == 0
        finally:
            tracker.close(timeout=10)
    return path


@contextlib.contextmanager
def _clean_environment(**env: str) -> Iterator[None]:
    """No AGENTSIGHT_* variable and no stray .env while ours run; *env* set instead."""
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        for name in list(os.environ):
            if name.startswith("AGENTSIGHT_"):
                mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        mp.chdir(tmp)  # no stray .env
        yield


def _on_a_copy(seeded: Path, run: Run) -> tuple[list[dict[str, Any]], str]:
    """*run* against a fresh collector serving a copy of the seeded database."""
    with tempfile.TemporaryDirectory(prefix="agentsight-api-compat-") as tmp:
        db = Path(tmp) / "run.db"
        shutil.copyfile(seeded, db)
        with LocalCollector(db, api_keys=(KEY,)) as collector:
            return run(collector.url), collector.url


def _legacy(python: Path) -> Run:
    def run(url: str) -> list[dict[str, Any]]:
        env = client_env(AGENTSIGHT_API_KEY=KEY, AGENTSIGHT_API_ENDPOINT=url)
        result, _ = run_client_script(python, "legacy_api_scenario.py", [], env)
        assert result["version"] == "0.0.44"
        calls: list[dict[str, Any]] = result["calls"]
        return calls

    return run


def _ours_sync(url: str) -> list[dict[str, Any]]:
    with _clean_environment(AGENTSIGHT_API_KEY=KEY, AGENTSIGHT_API_ENDPOINT=url):
        agentsight_api.close()  # the module-level clients read the environment again
        conversation_manager.close()
        try:
            return api_scenario.run_api_calls(agentsight_api, conversation_manager)
        finally:
            agentsight_api.close()
            conversation_manager.close()


def _ours_async(url: str) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with AsyncAgentSightAPI() as api, AsyncConversationManager() as manager:
            return await api_scenario.run_api_calls_async(api, manager)

    with _clean_environment(AGENTSIGHT_API_KEY=KEY, AGENTSIGHT_API_ENDPOINT=url):
        return asyncio.run(main())


@pytest.fixture(scope="session")
def runs(seeded_db: Path, client_pythons: dict[str, Path]) -> Callable[[str], list[dict[str, Any]]]:
    """name -> that client's outcomes, normalised (each run once, on its own copy)."""
    cache: dict[str, list[dict[str, Any]]] = {}
    runners: dict[str, Run] = {
        LEGACY: _legacy(client_pythons["0.0.44"]),
        OURS_SYNC: _ours_sync,
        OURS_ASYNC: _ours_async,
    }

    def get(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            outcomes, url = _on_a_copy(seeded_db, runners[name])
            cache[name] = normalise(outcomes, url)
        return cache[name]

    return get


# -- normalisations --------------------------------------------------------------------------

#: Times the collector stamps when a write reaches it (a feedback row's ``created_at``,
#: ``updated_at`` / ``deleted_at`` / ``last_activity`` of a managed conversation).  The
#: runs are made seconds apart, so these differ; every seeded time is identical (the
#: database is a copy), and so would be left alone if it were not under these names.
SERVER_WRITE_TIMES = frozenset({"created_at", "updated_at", "deleted_at", "last_activity"})


def normalise(value: Any, url: str) -> Any:
    """Two documented differences between runs, nothing else:

    * ``SERVER_WRITE_TIMES`` become ``"<stamped by the server>"``;
    * the collector's base URL (its port differs per run: ``download_url``,
      ``next``/``previous``) becomes ``"<collector>"``.
    """
    if isinstance(value, dict):
        return {
            k: "<stamped by the server>" if k in SERVER_WRITE_TIMES else normalise(v, url)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalise(v, url) for v in value]
    if isinstance(value, str):
        return value.replace(url, "<collector>")
    return value


#: 0.0.44's ``NotFoundException(message)``, ``UnauthorizedException(message)`` and
#: ``ForbiddenException(message)`` take no body, so their ``response_data`` is always None;
#: ours carry the parsed error body there, as every other ``ConversationApiException`` does.
BODYLESS_IN_0044 = frozenset({"NotFoundException", "UnauthorizedException", "ForbiddenException"})


def same_error(legacy: dict[str, Any], ours: dict[str, Any]) -> bool:
    """The same error, with two named allowances:

    * ours raises the published class or a subclass of it, so every ``except``
      written for 0.0.44 still catches it (all ours are ``AgentSightError`` s too;
      an input error is also a ``ValueError``, where 0.0.44 may raise a plain one);
    * ``BODYLESS_IN_0044``: where 0.0.44 has no body to show, ours may.

    Message and status must be equal, and the body wherever 0.0.44 has one.
    """
    keys = ["message", "status_code"]
    if not (legacy["type"] in BODYLESS_IN_0044 and legacy["response_data"] is None):
        keys.append("response_data")
    return legacy["type"] in ours["mro"] and all(legacy[k] == ours[k] for k in keys)


def differences(legacy: list[dict[str, Any]], ours: list[dict[str, Any]]) -> list[str]:
    assert [c["call"] for c in ours] == [c["call"] for c in legacy]
    out = []
    for want, got in zip(legacy, ours, strict=True):
        if "error" in want and "error" in got and same_error(want["error"], got["error"]):
            continue
        if want != got:
            out.append(f"{want['call']}:\n   0.0.44: {want}\n   ours:   {got}")
    return out


# -- the comparison ------------------------------------------------------------------------------


def test_the_published_clients_ran_every_call(runs: Callable[[str], Any]) -> None:
    legacy = runs(LEGACY)
    assert [c["call"] for c in legacy] == [
        s[0] for s in api_scenario.steps(dict.fromkeys(api_scenario.SEEDED_IDS, 0))
    ]
    # reads that need no route beyond the basic read API did answer
    answered = {c["call"] for c in legacy if "ok" in c}
    assert {"list: all", "one: by pk", "one: by conversation_id", "attachments: by pk"} <= answered


@pytest.mark.parametrize("name", OURS)
def test_ours_answer_like_the_published_clients(runs: Callable[[str], Any], name: str) -> None:
    diff = differences(runs(LEGACY), runs(name))
    assert not diff, f"{len(diff)} call(s) answered differently:\n" + "\n".join(diff)


@pytest.mark.parametrize("name", [LEGACY, *OURS])
def test_every_client_sees_the_effects_of_its_writes(runs: Callable[[str], Any], name: str) -> None:
    """Read back after managing: the rename, mark, update, feedback and soft delete hold."""
    outcome = {c["call"]: c for c in runs(name)}
    for call in (
        "feedback: by conversation_id",
        "feedback: by pk",
        "rename: by conversation_id",
        "rename: by pk",
        "mark: by conversation_id",
        "mark: unmark by pk",
        "update: several fields",
        "delete: by conversation_id",
    ):
        assert "ok" in outcome[call], outcome[call]
    chat = outcome["after: chat by pk"]["ok"]
    assert chat["name"] == "Refund handled"
    assert chat["is_marked"] is True
    assert (chat["customer_id"], chat["device"], chat["language"]) == ("cust-99", "tablet", "fr")
    assert chat["metadata"] == {"plan": "enterprise"}
    assert [(f["sentiment"], f["comment"]) for f in chat["feedbacks"]] == [
        ("positive", "Solved quickly")
    ]
    visit = outcome["after: visit by pk"]["ok"]
    assert [f["sentiment"] for f in visit["feedbacks"]] == ["negative"]
    assert outcome["after: other by conversation_id"]["ok"]["name"] == "Billing, answered"
    assert outcome["after: deleted by conversation_id"]["error"]["type"] == "NotFoundException"

    def listed(call: str) -> set[str]:
        return {c["conversation_id"] for c in outcome[call]["ok"]["results"]}

    everyone = set(api_scenario.SEEDED_IDS)
    assert listed("after: list") == everyone - {scenario.VISIT_ID}
    assert listed("after: include_deleted") == everyone
    assert listed("after: deleted is hidden") == set()
    assert listed("after: marked") == {scenario.CHAT_ID}
    assert listed("after: with feedback") == {scenario.CHAT_ID}  # the visit is deleted
    assert listed("after: renamed") == {scenario.CHAT_ID}
