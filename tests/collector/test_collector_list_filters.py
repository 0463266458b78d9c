"""Every 0.0.44 filter of ``GET /api/conversations/``, ``full``, paging; ``GET /api/feedbacks/``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentsight_collector import LocalCollector


@pytest.fixture
def seeded(client: httpx.Client, collector: LocalCollector) -> dict[str, int]:
    """Four conversations with different fields, messages, actions, feedback; c4 deleted."""
    specs: dict[str, dict[str, Any]] = {
        "c1": {
            "customer_id": "u1",
            "customer_ip_address": "10.0.0.1",
            "device": "mobile",
            "language": "en",
            "environment": "production",
            "name": "Billing question",
            "metadata": {"plan": "pro", "tier": 1, "beta": True, "url": "a:b"},
            "timestamp": "2026-11-01T10:00:00+00:00",
        },
        "c2": {
            "customer_id": "u2",
            "device": "desktop",
            "language": "fr",
            "environment": "development",
            "name": "Straße issue",
            "metadata": {"plan": "free"},
            "timestamp": "2026-11-10T10:00:00+00:00",
        },
        "c3": {
            "customer_id": "u1",
            "name": "Just a visit",
            "is_used": False,
            "timestamp": "2026-11-20T10:00:00+00:00",
        },
        "c4": {
            "customer_id": "u3",
            "name": "Deleted refund",
            "timestamp": "2026-11-15T10:00:00+00:00",
        },
    }
    pks = {}
    for cid, fields in specs.items():
        pks[cid] = client.post(
            "/api/conversations/", json={"conversation_id": cid, **fields}
        ).json()["id"]
    for cid, text, ts in (
        ("c1", "I need a REFUND please", "2026-11-01T10:01:00+00:00"),
        ("c2", "Die Straße ist gesperrt", "2026-11-10T10:01:00+00:00"),
        ("c4", "refund me", "2026-11-15T10:01:00+00:00"),
    ):
        r = client.post(
            "/api/track/",
            json={"conversation_id": cid, "content": text, "sender": "end_user", "timestamp": ts},
        )
        assert r.status_code == 201
    client.post(
        "/api/action_logs/",
        json={
            "conversation_id": "c1",
            "action_name": "refund_lookup",
            "timestamp": "2026-11-01T10:02:00+00:00",
        },
    )
    client.post(
        "/api/action_logs/",
        json={
            "conversation_id": "c2",
            "action_name": "search",
            "timestamp": "2026-11-10T10:02:00+00:00",
        },
    )
    client.post(
        "/api/conversation-feedbacks/",
        json={"conversation_id": "c1", "sentiment": "positive", "comment": "Great"},
    )
    client.post(
        "/api/feedbacks/",
        json={"kind": "conversation", "conversation": pks["c2"], "sentiment": "negative"},
    )
    collector.storage.create_feedback(
        {"conversation": pks["c3"], "sentiment": "neutral", "comment": "looked fine"},
        source="platform",
    )
    client.post(f"/api/conversations/{pks['c2']}/mark/", json={"is_marked": True})
    client.delete(f"/api/conversations/{pks['c4']}/delete/")
    return pks


def _ids(client: httpx.Client, **params: Any) -> set[str]:
    r = client.get("/api/conversations/", params={"full": "false", **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["results"])
    return {c["conversation_id"] for c in body["results"]}


CASES = [
    ({}, {"c1", "c2", "c3"}),
    ({"action_name": "refund_lookup"}, {"c1"}),
    ({"action_name": "nothing"}, set()),
    ({"conversation_id": "c2"}, {"c2"}),
    ({"customer_id": "u1"}, {"c1", "c3"}),
    ({"customer_ip_address": "10.0.0.1"}, {"c1"}),
    ({"device": "desktop"}, {"c2"}),
    ({"language": "en"}, {"c1"}),
    ({"environment": "production"}, {"c1"}),
    ({"env": "development"}, {"c2", "c3"}),
    ({"has_messages": "true"}, {"c1", "c2"}),
    ({"has_messages": "false"}, {"c3"}),
    ({"message_contains": "refund"}, {"c1"}),  # c4 has one too, but it is deleted
    ({"message_contains": "refund", "include_deleted": "true"}, {"c1", "c4"}),
    ({"message_contains": "STRASSE"}, {"c2"}),  # Unicode case folding: ß
    ({"message_contains": "%"}, set()),
    ({"started_at_after": "2026-11-05T00:00:00+00:00"}, {"c2", "c3"}),
    ({"started_at_before": "2026-11-10T10:00:00Z"}, {"c1", "c2"}),
    ({"started_at_after": "2026-11-05", "started_at_before": "2026-11-15"}, {"c2"}),
    ({"is_marked": "true"}, {"c2"}),
    ({"is_marked": "false"}, {"c1", "c3"}),
    ({"name": "QUESTION"}, {"c1"}),
    ({"name": "_"}, set()),
    ({"include_deleted": "true"}, {"c1", "c2", "c3", "c4"}),
    ({"include_deleted": "false"}, {"c1", "c2", "c3"}),
    ({"metadata": "plan:pro"}, {"c1"}),
    ({"metadata": "plan:pro,tier:1"}, {"c1"}),
    ({"metadata": "plan:pro,tier:2"}, set()),
    ({"metadata": "beta:true"}, {"c1"}),
    ({"metadata": "url:a:b"}, {"c1"}),
    ({"metadata": "plan:free"}, {"c2"}),
    ({"has_feedback": "true"}, {"c1", "c2", "c3"}),
    ({"has_feedback": "false", "include_deleted": "true"}, {"c4"}),
    ({"feedback_sentiment": "positive"}, {"c1"}),
    ({"feedback_sentiment": "negative"}, {"c2"}),
    ({"feedback_source": "customer"}, {"c1", "c2"}),
    ({"feedback_source": "platform"}, {"c3"}),
    ({"feedback_source": "platform", "feedback_sentiment": "positive"}, set()),
    ({"customer_id": "u1", "has_messages": "true", "feedback_sentiment": "positive"}, {"c1"}),
    ({"unknown_filter": "ignored"}, {"c1", "c2", "c3"}),
]


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[str(p) for p, _ in CASES])
def test_each_filter(
    client: httpx.Client, seeded: dict[str, int], params: dict[str, str], expected: set[str]
) -> None:
    assert _ids(client, **params) == expected


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"has_messages": "perhaps"},
            {"has_messages": ["Must be a valid boolean (true or false)."]},
        ),
        ({"is_marked": "2"}, {"is_marked": ["Must be a valid boolean (true or false)."]}),
        ({"full": "sometimes"}, {"full": ["Must be a valid boolean (true or false)."]}),
        (
            {"feedback_sentiment": "angry"},
            {
                "feedback_sentiment": [
                    "Select a valid choice. angry is not one of the available choices "
                    "(negative, neutral, positive)."
                ]
            },
        ),
        (
            {"feedback_source": "robot"},
            {
                "feedback_source": [
                    "Select a valid choice. robot is not one of the available choices "
                    "(customer, platform)."
                ]
            },
        ),
        (
            {"metadata": "no-colon"},
            {"metadata": ['Use "key:value" pairs separated by commas, e.g. "plan:pro,tier:1".']},
        ),
        (
            {"started_at_after": "yesterday"},
            {"started_at_after": ["Enter a valid date/time (ISO 8601)."]},
        ),
        ({"page_size": "ten"}, {"page_size": ["A valid integer is required."]}),
        ({"page_size": "0"}, {"page_size": ["Must be between 1 and 1000."]}),
    ],
)
def test_bad_filters_are_400_with_field_errors(
    client: httpx.Client, params: dict[str, str], errors: dict[str, list[str]]
) -> None:
    r = client.get("/api/conversations/", params=params)
    assert r.status_code == 400
    assert r.json() == errors


def test_full_is_the_default_and_false_leaves_the_transcript_out(
    client: httpx.Client, seeded: dict[str, int]
) -> None:
    full = client.get("/api/conversations/", params={"conversation_id": "c1"}).json()["results"][0]
    assert [m["content"] for m in full["messages"]] == ["I need a REFUND please"]
    assert [i["type"] for i in full["transcript"]] == ["message", "action"]
    assert [f["sentiment"] for f in full["feedbacks"]] == ["positive"]
    lean = client.get(
        "/api/conversations/", params={"conversation_id": "c1", "full": "false"}
    ).json()["results"][0]
    assert not {"messages", "transcript", "feedbacks"} & set(lean)
    assert lean["message_count"] == 1
    assert {k: v for k, v in full.items() if k in lean} == lean
    detail = client.get(f"/api/conversations/{seeded['c1']}/", params={"full": "false"}).json()
    assert "transcript" not in detail
    assert detail["name"] == "Billing question"


def test_pages_carry_the_backend_envelope(client: httpx.Client, seeded: dict[str, int]) -> None:
    first = client.get("/api/conversations/", params={"page_size": 2, "full": "false"})
    body = first.json()
    assert {k: body[k] for k in ("count", "page_size", "total_pages", "current_page")} == {
        "count": 3,
        "page_size": 2,
        "total_pages": 2,
        "current_page": 1,
    }
    assert body["previous"] is None
    assert body["next"].startswith("http://")
    assert "page=2" in body["next"]
    assert "full=false" in body["next"]
    assert "page_size=2" in body["next"]
    second = client.get(body["next"]).json()
    assert second["current_page"] == 2
    assert second["next"] is None
    assert "page=" not in second["previous"]
    seen = [c["conversation_id"] for c in body["results"] + second["results"]]
    assert sorted(seen) == ["c1", "c2", "c3"]
    for page in ("3", "0", "abc"):
        r = client.get("/api/conversations/", params={"page_size": 2, "page": page})
        assert r.status_code == 404
        assert r.json() == {"detail": "Invalid page."}


def test_lookup_needs_its_parameter(client: httpx.Client, seeded: dict[str, int]) -> None:
    r = client.get("/api/conversations/lookup/")
    assert r.status_code == 400
    assert r.json() == {"conversation_id": ["This query parameter is required."]}
    found = client.get("/api/conversations/lookup/", params={"conversation_id": "c2"})
    assert found.json() == {"id": seeded["c2"], "conversation_id": "c2"}


# -- feedback ---------------------------------------------------------------------------


@pytest.fixture
def feedback(client: httpx.Client, seeded: dict[str, int]) -> dict[str, int]:
    """Besides the seeded three: message feedback with slugs, and agent feedback."""
    c1 = client.get(f"/api/conversations/{seeded['c1']}/").json()
    message = c1["messages"][0]["id"]
    r = client.post(
        "/api/feedbacks/",
        json={
            "kind": "message",
            "message": message,
            "sentiment": "negative",
            "topic": "style",
            "reason": "too_long",
        },
    )
    assert r.status_code == 201
    r2 = client.post(
        "/api/feedbacks/",
        json={"kind": "agent", "agent": 1, "sentiment": "positive", "environment": "production"},
    )
    assert r2.status_code == 201
    return {
        "message": message,
        "message_feedback": r.json()["id"],
        "agent_feedback": r2.json()["id"],
    }


def _feedback_ids(client: httpx.Client, **params: Any) -> list[tuple[str, str, str | None]]:
    r = client.get("/api/feedbacks/", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["counts"] == {"all": body["count"]}
    return [(f["kind"], f["sentiment"], f["conversation_id"]) for f in body["results"]]


def test_feedback_listing_newest_first(client: httpx.Client, feedback: dict[str, int]) -> None:
    assert _feedback_ids(client) == [
        ("agent", "positive", None),
        ("message", "negative", "c1"),
        ("conversation", "neutral", "c3"),
        ("conversation", "negative", "c2"),
        ("conversation", "positive", "c1"),
    ]


FEEDBACK_CASES = [
    ({"kind": "message"}, [("message", "negative", "c1")]),
    ({"kind": "agent"}, [("agent", "positive", None)]),
    ({"sentiment": "neutral"}, [("conversation", "neutral", "c3")]),
    ({"source": "platform"}, [("conversation", "neutral", "c3")]),
    ({"conversation_id": "c2"}, [("conversation", "negative", "c2")]),
    ({"topic": "style", "reason": "too_long"}, [("message", "negative", "c1")]),
    ({"topic": "other"}, []),
    (
        {"has_comment": "true"},
        [("conversation", "neutral", "c3"), ("conversation", "positive", "c1")],
    ),
    ({"comment_contains": "GREAT"}, [("conversation", "positive", "c1")]),
    (
        {"environment": "development"},
        [("conversation", "neutral", "c3"), ("conversation", "negative", "c2")],
    ),
    ({"created_at_after": "2999-01-01T00:00:00Z"}, []),
    ({"created_at_before": "2000-01-01T00:00:00Z"}, []),
]


@pytest.mark.parametrize(
    ("params", "expected"), FEEDBACK_CASES, ids=[str(p) for p, _ in FEEDBACK_CASES]
)
def test_feedback_filters(
    client: httpx.Client, feedback: dict[str, int], params: dict[str, str], expected: list[Any]
) -> None:
    assert _feedback_ids(client, **params) == expected


def test_feedback_filters_by_pk_and_message(
    client: httpx.Client, seeded: dict[str, int], feedback: dict[str, int]
) -> None:
    assert _feedback_ids(client, conversation=seeded["c1"]) == [
        ("message", "negative", "c1"),
        ("conversation", "positive", "c1"),
    ]
    assert _feedback_ids(client, message=feedback["message"]) == [("message", "negative", "c1")]
    one = client.get(f"/api/feedbacks/{feedback['message_feedback']}/").json()
    assert (one["topic"], one["reason"], one["message"], one["source"]) == (
        "style",
        "too_long",
        feedback["message"],
        "customer",
    )


def test_feedback_bad_filters(client: httpx.Client) -> None:
    for params, key in (
        ({"kind": "product"}, "kind"),
        ({"sentiment": "x"}, "sentiment"),
        ({"has_comment": "x"}, "has_comment"),
        ({"conversation": "x"}, "conversation"),
        ({"created_at_after": "x"}, "created_at_after"),
    ):
        r = client.get("/api/feedbacks/", params=params)
        assert r.status_code == 400, params
        assert list(r.json()) == [key]
