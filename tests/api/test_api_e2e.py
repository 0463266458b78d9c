"""End to end: the tracker writes to a real local collector, our clients read and manage it.

Real HTTP on loopback, real SQLite, no mocks.  Every test runs twice: through
the async clients, and through the blocking ones (driven from a worker thread,
so one test body serves both).  Routes and answers are those of the protocol
reference (§2.3 "Other legacy REST routes"); effects are checked by reading
back through the clients themselves.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from api_support import KEY

from agentsight_async import (
    AgentSightAPI,
    AsyncAgentSightAPI,
    AsyncConversationManager,
    ConversationApiException,
    ConversationManager,
    ConversationTracker,
    NotFoundException,
    UnauthorizedException,
    agentsight_api,
    conversation_manager,
)
from agentsight_collector import LocalCollector

OTHER_KEY = "ags_" + "fedcba9876543210" * 2 + "_def456"
NOTE = b"refund receipt"

#: conversation_id -> (conversation fields, [(sender, text)], extra calls)
SEED: dict[str, dict[str, Any]] = {
    "order-1": {
        "fields": {
            "name": "Refund for A-1001",
            "customer_id": "cust-42",
            "customer_ip_address": "203.0.113.9",
            "device": "mobile",
            "language": "en",
            "metadata": {"plan": "pro", "tier": 2},
        },
        "messages": [("human", "Where is my refund?"), ("agent", "It was sent today.")],
        "action": "lookup_order",
        "attachment": True,
    },
    "order-2": {
        "fields": {
            "name": "Shipping question",
            "customer_id": "cust-42",
            "device": "desktop",
            "language": "fr",
            "metadata": {"plan": "free"},
        },
        "messages": [("human", "Où est mon colis ?"), ("agent", "Il arrive demain.")],
    },
    "visit-3": {"fields": {"name": "Widget opened", "customer_id": "cust-7"}, "visit": True},
    "order-4": {
        "fields": {"name": "Invoice copy", "customer_id": "cust-9", "device": "mobile"},
        "messages": [("human", "Can I get my invoice?")],
    },
    "order-5": {
        "fields": {"name": "Password reset", "customer_id": "cust-9", "language": "en"},
        "messages": [("human", "I forgot my password"), ("agent", "Here is a reset link.")],
    },
}
WITH_MESSAGES = {cid for cid, seed in SEED.items() if seed.get("messages")}


def seed(url: str) -> None:
    """Track every SEED conversation through the sync tracker (legacy REST, one send each)."""
    tracker = ConversationTracker(api_key=KEY, endpoint=url, protocol="rest")
    try:
        for cid, spec in SEED.items():
            if spec.get("visit"):
                tracker.initialize_conversation(cid, **spec["fields"])
                continue
            tracker.get_or_create_conversation(cid, **spec["fields"])
            for sender, text in spec["messages"]:
                track = (
                    tracker.track_human_message
                    if sender == "human"
                    else tracker.track_agent_message
                )
                track(text)
            if spec.get("action"):
                tracker.track_action(spec["action"], duration_ms=120, tools_used={"id": "A-1001"})
            if spec.get("attachment"):
                tracker.track_attachments(
                    [
                        {
                            "filename": "note.txt",
                            "mime_type": "text/plain",
                            "data": base64.b64encode(NOTE).decode(),
                        }
                    ]
                )
            result = tracker.send_tracked_data()
            assert result["summary"]["errors"] == 0, result
    finally:
        tracker.close(timeout=10)


@pytest.fixture
def collector(tmp_path: Any) -> Iterator[LocalCollector]:
    with LocalCollector(tmp_path / "collector.db", api_keys=[KEY]) as running:
        seed(running.url)
        yield running


class Awaiting:
    """A blocking client seen through coroutines: each call runs in a worker thread,
    so the same test body drives the sync clients without blocking its loop."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

        return call


async def every(api: Any, **filters: Any) -> list[dict[str, Any]]:
    """All conversations through ``iter_conversations`` (async for, or a sync for)."""
    if isinstance(api, Awaiting):
        return await asyncio.to_thread(lambda: list(api.client.iter_conversations(**filters)))
    return [c async for c in api.iter_conversations(**filters)]


@pytest.fixture(params=["async", "sync"])
async def clients(request: pytest.FixtureRequest, collector: LocalCollector) -> Any:
    """(api, manager): the async clients, or the blocking ones behind :class:`Awaiting`."""
    if request.param == "async":
        async with (
            AsyncAgentSightAPI(KEY, collector.url) as api,
            AsyncConversationManager(KEY, collector.url) as manager,
        ):
            yield api, manager
        return
    api, manager = AgentSightAPI(KEY, collector.url), ConversationManager(KEY, collector.url)
    try:
        yield Awaiting(api), Awaiting(manager)
    finally:
        await asyncio.to_thread(api.close)
        await asyncio.to_thread(manager.close)


def ids(page: dict[str, Any]) -> set[str]:
    return {c["conversation_id"] for c in page["results"]}


async def pk_of(api: Any, conversation_id: str) -> int:
    found = await api.fetch_conversation(conversation_id)
    pk: int = found["id"]
    return pk


# -- reading -------------------------------------------------------------------------------


async def test_reads_back_what_the_tracker_wrote(clients: Any) -> None:
    api, _ = clients
    page = await api.fetch_conversations()
    assert page["count"] == len(SEED)
    assert ids(page) == set(SEED)

    listed = await api.fetch_conversation("order-1")  # by conversation_id: the list's row
    assert listed["conversation_id"] == "order-1"
    assert listed["name"] == "Refund for A-1001"
    full = await api.fetch_conversation(listed["id"])  # by pk: with the transcript
    assert [m["content"] for m in full["messages"]] == [
        "Where is my refund?",
        "It was sent today.",
    ]
    assert [i["action_name"] for i in full["transcript"] if i["type"] == "action"] == [
        "lookup_order"
    ]
    assert full["metadata"] == {"plan": "pro", "tier": 2}

    for ref in ("order-1", listed["id"]):
        attachments = await api.fetch_conversation_attachments(ref)
        files = [f for group in attachments["results"] for f in group["files"]]
        assert [(f["filename"], f["mime_type"], f["size"]) for f in files] == [
            ("note.txt", "text/plain", len(NOTE))
        ]


async def test_filters_by_id_customer_name_time_and_page(clients: Any) -> None:
    api, _ = clients
    assert ids(await api.fetch_conversations(conversation_id="order-2")) == {"order-2"}
    assert ids(await api.fetch_conversations(customer_id="cust-42")) == {"order-1", "order-2"}
    assert ids(await api.fetch_conversations(name="question")) == {"order-2"}
    now = datetime.now(timezone.utc)
    assert (await api.fetch_conversations(started_at_after=now - timedelta(hours=1)))[
        "count"
    ] == len(SEED)
    assert (await api.fetch_conversations(started_at_after=(now + timedelta(hours=1)).isoformat()))[
        "count"
    ] == 0
    assert (await api.fetch_conversations(started_at_before=now - timedelta(hours=1)))["count"] == 0
    first = await api.fetch_conversations(page=1, page_size=2)
    second = await api.fetch_conversations(page=2, page_size=2)
    assert first["count"] == second["count"] == len(SEED)
    assert len(first["results"]) == len(second["results"]) == 2
    assert not ids(first) & ids(second)


async def test_filters_of_the_reference(clients: Any) -> None:
    """The rest of §2.3's list filters (served by the collector's read API)."""
    api, _ = clients
    assert ids(await api.fetch_conversations(has_messages=True)) == WITH_MESSAGES
    assert ids(await api.fetch_conversations(has_messages=False)) == {"visit-3"}
    assert ids(await api.fetch_conversations(language="fr")) == {"order-2"}
    assert ids(await api.fetch_conversations(device="mobile")) == {"order-1", "order-4"}
    assert ids(await api.fetch_conversations(customer_ip_address="203.0.113.9")) == {"order-1"}
    assert ids(await api.fetch_conversations(message_contains="password")) == {"order-5"}
    assert ids(await api.fetch_conversations(action_name="lookup_order")) == {"order-1"}
    assert ids(await api.fetch_conversations(metadata="plan:pro")) == {"order-1"}
    assert ids(await api.fetch_conversations(metadata={"plan": "free"})) == {"order-2"}
    assert ids(await api.fetch_conversations(is_marked=False)) == set(SEED)
    assert ids(await api.fetch_conversations(is_marked=True)) == set()
    assert ids(await api.fetch_conversations(has_feedback=False)) == set(SEED)


async def test_iteration_walks_every_page_once(clients: Any) -> None:
    api, _ = clients
    one_page = [c["conversation_id"] for c in (await api.fetch_conversations())["results"]]
    walked = [c["conversation_id"] for c in await every(api, page_size=2)]
    assert walked == one_page
    assert [c["conversation_id"] for c in await every(api, customer_id="cust-9", page_size=1)] == [
        cid for cid in one_page if cid in ("order-4", "order-5")
    ]


async def test_missing_conversations_and_a_wrong_key_raise_the_original_errors(
    clients: Any, collector: LocalCollector
) -> None:
    api, manager = clients
    with pytest.raises(NotFoundException):
        await api.fetch_conversation(987654)
    with pytest.raises(NotFoundException, match="Conversation with conversation_id 'nope'"):
        await api.fetch_conversation("nope")
    with pytest.raises(NotFoundException):
        await api.fetch_conversation_attachments(987654)
    with pytest.raises(NotFoundException):
        await manager.rename_conversation("nope", "New name")
    with pytest.raises(ConversationApiException) as refused:  # DRF: an unknown pk is a 400
        await manager.submit_feedback(987654, "positive")
    assert refused.value.status_code == 400
    assert refused.value.response_data == {
        "conversation": ['Invalid pk "987654" - object does not exist.']
    }
    async with AsyncAgentSightAPI(OTHER_KEY, collector.url) as stranger:
        with pytest.raises(UnauthorizedException) as caught:
            await stranger.fetch_conversations()
    assert caught.value.status_code == 401
    assert OTHER_KEY not in str(caught.value)


# -- managing ------------------------------------------------------------------------------


async def test_feedback_is_recorded_by_id_and_by_pk(clients: Any) -> None:
    api, manager = clients
    pk = await pk_of(api, "order-1")
    await manager.submit_feedback("order-1", "positive", comment="Quick refund", metadata={"a": 1})
    await manager.submit_feedback(pk, "negative")
    feedbacks = (await api.fetch_conversation(pk))["feedbacks"]
    assert [(f["sentiment"], f["comment"]) for f in feedbacks] == [
        ("positive", "Quick refund"),
        ("negative", None),
    ]


async def test_feedback_filters(clients: Any) -> None:
    api, manager = clients
    await manager.submit_feedback("order-1", "positive")
    await manager.submit_feedback("order-2", "negative", comment="late")
    assert ids(await api.fetch_conversations(has_feedback=True)) == {"order-1", "order-2"}
    assert ids(await api.fetch_conversations(has_feedback=False)) == set(SEED) - {
        "order-1",
        "order-2",
    }
    assert ids(await api.fetch_conversations(feedback_sentiment="negative")) == {"order-2"}
    assert ids(await api.fetch_conversations(feedback_source="customer")) == {
        "order-1",
        "order-2",
    }


async def test_rename_by_id_and_by_pk(clients: Any) -> None:
    api, manager = clients
    await manager.rename_conversation("order-4", "  Invoice sent  ")
    pk = await pk_of(api, "order-4")
    assert (await api.fetch_conversation(pk))["name"] == "Invoice sent"
    await manager.rename_conversation(pk, "Invoice re-sent")
    assert ids(await api.fetch_conversations(name="re-sent")) == {"order-4"}


async def test_mark_and_unmark(clients: Any) -> None:
    api, manager = clients
    pk = await pk_of(api, "order-5")
    await manager.mark_conversation("order-5", True)
    assert (await api.fetch_conversation(pk))["is_marked"] is True
    assert ids(await api.fetch_conversations(is_marked=True)) == {"order-5"}
    await manager.mark_conversation(pk, False)
    assert (await api.fetch_conversation(pk))["is_marked"] is False
    assert ids(await api.fetch_conversations(is_marked=True)) == set()


async def test_update_changes_every_field_given(clients: Any) -> None:
    api, manager = clients
    await manager.update_conversation(
        "order-2",
        name="Parcel found",
        is_marked=True,
        customer_id="cust-43",
        device="tablet",
        language="de",
        metadata={"plan": "enterprise"},
    )
    row = await api.fetch_conversation(await pk_of(api, "order-2"))
    assert {k: row[k] for k in ("name", "is_marked", "customer_id", "device", "language")} == {
        "name": "Parcel found",
        "is_marked": True,
        "customer_id": "cust-43",
        "device": "tablet",
        "language": "de",
    }
    assert row["metadata"] == {"plan": "enterprise"}
    await manager.update_conversation(row["id"], device="phone")
    again = await api.fetch_conversation(row["id"])
    assert (again["device"], again["name"]) == ("phone", "Parcel found")  # the rest is kept


async def test_soft_delete_hides_a_conversation_unless_deleted_ones_are_asked_for(
    clients: Any,
) -> None:
    api, manager = clients
    await manager.delete_conversation("order-2")
    assert ids(await api.fetch_conversations()) == set(SEED) - {"order-2"}
    assert (await api.fetch_conversations(conversation_id="order-2"))["count"] == 0
    with pytest.raises(NotFoundException):  # by conversation_id: through the list, as 0.0.44
        await api.fetch_conversation("order-2")
    assert ids(await api.fetch_conversations(include_deleted=True)) == set(SEED)
    assert ids(await api.fetch_conversations(conversation_id="order-2", include_deleted=True)) == {
        "order-2"
    }
    assert "order-2" not in {c["conversation_id"] for c in await every(api, page_size=2)}
    pk = await pk_of(api, "order-1")
    await manager.delete_conversation(pk)
    assert ids(await api.fetch_conversations()) == set(SEED) - {"order-1", "order-2"}


# -- the module-level clients ------------------------------------------------------------------


def test_the_module_level_clients_work_from_the_environment(
    collector: LocalCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSIGHT_API_KEY", KEY)
    monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", collector.url)
    agentsight_api.close()
    conversation_manager.close()
    try:
        assert agentsight_api.fetch_conversations(customer_id="cust-9")["count"] == 2
        assert conversation_manager.submit_feedback("order-4", "neutral")["sentiment"] == "neutral"
        pk = agentsight_api.fetch_conversation("order-4")["id"]
        assert [f["sentiment"] for f in agentsight_api.fetch_conversation(pk)["feedbacks"]] == [
            "neutral"
        ]
    finally:
        agentsight_api.close()
        conversation_manager.close()
