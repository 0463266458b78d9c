"""Filters, input checks and pages: what the clients send, checked before anything is sent."""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from api_support import Script, page, reply

from agentsight_async import (
    AsyncAgentSightAPI,
    AsyncConversationManager,
    InvalidConversationDataException,
    MissingConversationIdException,
)
from agentsight_async.api._params import Pages, list_params


def test_only_given_filters_are_sent_in_the_original_order() -> None:
    params = list_params(
        {
            "feedback_source": "customer",
            "has_messages": True,
            "customer_id": "c-1",
            "page": 2,
            "include_deleted": False,
            "action_name": None,
        },
        {"ordering": "-started_at"},
    )
    assert list(params.items()) == [
        ("customer_id", "c-1"),
        ("has_messages", "true"),
        ("page", 2),
        ("include_deleted", "false"),
        ("feedback_source", "customer"),
        ("ordering", "-started_at"),
    ]


def test_times_are_strings_as_given_or_isoformat() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=timezone(timedelta(hours=2)))
    params = list_params({"started_at_after": aware, "started_at_before": "2026-02-01"}, {})
    assert params == {
        "started_at_after": "2026-01-02T03:04:05.000600+02:00",
        "started_at_before": "2026-02-01",
    }
    assert list_params({"started_at_after": date(2026, 3, 1)}, {}) == {
        "started_at_after": "2026-03-01"
    }
    with pytest.raises(InvalidConversationDataException, match="started_at_before"):
        list_params({"started_at_before": 1767225600}, {})


def test_the_metadata_filter_is_a_string_or_a_dict() -> None:
    assert list_params({"metadata": "plan:pro,tier:2"}, {}) == {"metadata": "plan:pro,tier:2"}
    assert list_params({"metadata": {"plan": "pro", "tier": 2, "beta": True}}, {}) == {
        "metadata": "plan:pro,tier:2,beta:true"
    }
    for bad in ({"a,b": "x"}, {"a:b": "x"}, {"a": "x,y"}, ["plan:pro"]):
        with pytest.raises(InvalidConversationDataException, match="metadata"):
            list_params({"metadata": bad}, {})


class Mood(enum.Enum):
    GOOD = "positive"


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("feedback_sentiment", ["positive", "neutral", "negative", Mood.GOOD], "happy"),
        ("feedback_source", ["customer", "platform"], "robot"),
    ],
)
def test_choice_filters_are_checked(name: str, good: list[Any], bad: str) -> None:
    for value in good:
        assert list_params({name: value}, {})[name] in (
            "positive",
            "neutral",
            "negative",
            "customer",
            "platform",
        )
    with pytest.raises(InvalidConversationDataException) as caught:
        list_params({name: bad}, {})
    assert isinstance(caught.value, ValueError)  # the original raised ValueError
    assert str(caught.value).startswith(f"{name} must be one of")


async def test_an_invalid_filter_sends_nothing() -> None:
    script = Script()
    api = AsyncAgentSightAPI(
        "ags_" + "0" * 32 + "_000000", "https://x.test", transport=script.transport
    )
    with pytest.raises(ValueError, match="feedback_sentiment"):
        await api.fetch_conversations(feedback_sentiment="great")  # type: ignore[arg-type]
    assert script.requests == []


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        ("", MissingConversationIdException),
        (0, MissingConversationIdException),
        (None, InvalidConversationDataException),
        (True, InvalidConversationDataException),
        (4.2, InvalidConversationDataException),
    ],
)
async def test_a_conversation_is_named_by_a_pk_or_a_non_empty_string(
    value: Any, exc: type[Exception]
) -> None:
    script = Script()
    kwargs: dict[str, Any] = {"transport": script.transport}
    key = "ags_" + "0" * 32 + "_000000"
    api = AsyncAgentSightAPI(key, "https://x.test", **kwargs)
    manager = AsyncConversationManager(key, "https://x.test", **kwargs)
    for call in (
        lambda: api.fetch_conversation(value),
        lambda: api.fetch_conversation_attachments(value),
        lambda: manager.submit_feedback(value, "positive"),
        lambda: manager.rename_conversation(value, "n"),
        lambda: manager.mark_conversation(value, True),
        lambda: manager.delete_conversation(value),
        lambda: manager.update_conversation(value, name="n"),
    ):
        with pytest.raises(exc) as caught:
            await call()
        assert isinstance(caught.value, ValueError)
    assert script.requests == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.submit_feedback("c", "ecstatic"), "Invalid sentiment: 'ecstatic'"),
        (lambda m: m.submit_feedback("c", "positive", comment="x" * 5001), "cannot exceed 5000"),
        (lambda m: m.submit_feedback("c", "positive", comment=5), "'comment' must be a string"),
        (lambda m: m.submit_feedback("c", "positive", metadata={"x": float("nan")}), "metadata"),
        (lambda m: m.rename_conversation("c", ""), "must be a non-empty string"),
        (lambda m: m.rename_conversation("c", "   "), "cannot be empty"),
        (lambda m: m.rename_conversation("c", "n" * 256), "cannot exceed 255"),
        (lambda m: m.update_conversation("c", name=""), "cannot be empty"),
        (lambda m: m.update_conversation("c", name=3), "must be a string, got int"),
        (lambda m: m.update_conversation("c", metadata=["x"]), "must be a dictionary"),
    ],
)
async def test_managing_input_is_checked_with_the_original_messages(
    call: Any, message: str
) -> None:
    script = Script()
    manager = AsyncConversationManager(
        "ags_" + "0" * 32 + "_000000", "https://x.test", transport=script.transport
    )
    with pytest.raises(InvalidConversationDataException, match=message):
        await call(manager)
    assert script.requests == []


async def test_update_needs_a_field_and_sends_only_those_given() -> None:
    script = Script(reply(200, {"id": 1}))
    manager = AsyncConversationManager(
        "ags_" + "0" * 32 + "_000000", "https://x.test", transport=script.transport
    )
    with pytest.raises(ValueError, match="At least one field"):
        await manager.update_conversation(1)
    await manager.update_conversation(
        1, name=" Renamed ", customer_id=42, language="fr", metadata={"plan": "pro"}
    )
    assert script.body() == {
        "name": "Renamed",
        "customer_id": "42",
        "language": "fr",
        "metadata": {"plan": "pro"},
    }


class Sentiment(str, enum.Enum):  # the original's enum
    POSITIVE = "positive"


async def test_feedback_takes_the_original_sentiment_enum() -> None:
    script = Script(reply(201, {"id": 1}))
    manager = AsyncConversationManager(
        "ags_" + "0" * 32 + "_000000", "https://x.test", transport=script.transport
    )
    await manager.submit_feedback("c", Sentiment.POSITIVE)
    assert script.body() == {"sentiment": "positive", "conversation_id": "c"}


# -- pages ----------------------------------------------------------------------------------------


def _rows(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i} for i in ids]


def test_pages_follow_next_until_it_is_empty() -> None:
    pages = Pages({"customer_id": "c", "page_size": 2})
    assert pages.next_params() == {"customer_id": "c", "page_size": 2, "page": 1}
    assert pages.take({"next": "u2", "results": _rows(1, 2)}) == _rows(1, 2)
    assert pages.next_params() == {"customer_id": "c", "page_size": 2, "page": 2}
    assert pages.take({"next": None, "results": _rows(3)}) == _rows(3)
    assert pages.next_params() is None


def test_pages_without_next_use_count_and_stop_on_an_empty_page() -> None:
    pages = Pages({"page": 3})
    assert pages.next_params() == {"page": 3}
    assert pages.take({"count": 5, "results": _rows(1, 2)}) == _rows(1, 2)
    assert pages.take({"count": 5, "results": _rows(3, 4)}) == _rows(3, 4)
    assert pages.take({"count": 5, "results": []}) == []
    assert pages.next_params() is None
    single = Pages({})
    assert single.take({"results": _rows(1)}) == _rows(1)  # no next, no count: one page
    assert single.next_params() is None


def test_pages_never_yield_a_conversation_twice() -> None:
    """A conversation that moved to a later page while we walked is not repeated."""
    pages = Pages({})
    assert pages.take({"next": "u", "results": _rows(3, 2)}) == _rows(3, 2)
    assert pages.take({"next": None, "results": _rows(2, 1)}) == _rows(1)


async def test_iter_conversations_walks_every_page(make_api: Any) -> None:
    script = Script(
        page(_rows(5, 4), count=5, next_url="https://x.test/api/conversations/?page=2"),
        page(_rows(3, 2), count=5, next_url="https://x.test/api/conversations/?page=3"),
        page(_rows(1), count=5, next_url=None),
    )
    api = make_api(script)
    seen = [c["id"] async for c in api.iter_conversations(is_marked=True, page_size=2)]
    assert seen == [5, 4, 3, 2, 1]
    assert [script.params(i) for i in range(3)] == [
        {"page": str(n), "page_size": "2", "is_marked": "true"} for n in (1, 2, 3)
    ]


async def test_iter_conversations_fetches_lazily(make_api: Any) -> None:
    script = Script(page(_rows(2, 1), count=4, next_url="u"))
    api = make_api(script)
    async for _ in api.iter_conversations():
        break
    assert len(script.requests) == 1
