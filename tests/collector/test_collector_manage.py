"""Managing conversations over HTTP: rename, mark, update, soft delete; lookup and auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from collector_support import OTHER_KEY

from agentsight_collector import LocalCollector


def _create(client: httpx.Client, conversation_id: str = "chat-1", **fields: Any) -> int:
    response = client.post(
        "/api/conversations/", json={"conversation_id": conversation_id, **fields}
    )
    assert response.status_code == 201
    pk: int = response.json()["id"]
    return pk


def _detail(client: httpx.Client, pk: int) -> dict[str, Any]:
    response = client.get(f"/api/conversations/{pk}/", params={"full": "false"})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_rename_trims_and_answers_the_conversation(client: httpx.Client) -> None:
    pk = _create(client, name="Old")
    r = client.patch(f"/api/conversations/{pk}/rename/", json={"name": "  New name  "})
    assert r.status_code == 200
    assert r.json()["id"] == pk
    assert r.json()["conversation_id"] == "chat-1"
    assert r.json()["name"] == "New name"
    assert _detail(client, pk)["name"] == "New name"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "This field is required."),
        ({"name": "   "}, "This field may not be blank."),
        ({"name": 7}, "Not a valid string."),
        ({"name": "x" * 256}, "Ensure this field has no more than 255 characters."),
    ],
)
def test_rename_refuses_bad_names(client: httpx.Client, body: dict[str, Any], message: str) -> None:
    pk = _create(client, name="Keep")
    r = client.patch(f"/api/conversations/{pk}/rename/", json=body)
    assert r.status_code == 400
    assert r.json() == {"name": [message]}
    assert _detail(client, pk)["name"] == "Keep"


def test_rename_accepts_255_characters(client: httpx.Client) -> None:
    pk = _create(client)
    r = client.patch(f"/api/conversations/{pk}/rename/", json={"name": "é" * 255})
    assert r.status_code == 200
    assert _detail(client, pk)["name"] == "é" * 255


def test_mark_and_unmark(client: httpx.Client) -> None:
    pk = _create(client)
    assert _detail(client, pk)["is_marked"] is False
    r = client.post(f"/api/conversations/{pk}/mark/", json={"is_marked": True})
    assert r.status_code == 200
    assert r.json()["is_marked"] is True
    assert _detail(client, pk)["is_marked"] is True
    assert (
        client.post(f"/api/conversations/{pk}/mark/", json={"is_marked": False}).status_code == 200
    )
    assert _detail(client, pk)["is_marked"] is False


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"is_marked": ["This field is required."]}),
        ({"is_marked": "maybe"}, {"is_marked": ["Must be a valid boolean."]}),
        ({"is_marked": None}, {"is_marked": ["This field is required."]}),
    ],
)
def test_mark_refuses_bad_bodies(
    client: httpx.Client, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    pk = _create(client)
    r = client.post(f"/api/conversations/{pk}/mark/", json=body)
    assert r.status_code == 400
    assert r.json() == errors


def test_update_changes_every_field_it_is_given(client: httpx.Client) -> None:
    pk = _create(
        client, name="N", customer_id="c0", device="desktop", language="fr", metadata={"a": 1}
    )
    body = {
        "name": "Renamed",
        "is_marked": True,
        "customer_id": "c1",
        "device": "mobile",
        "language": "en",
        "metadata": {"plan": "pro"},
    }
    r = client.patch(f"/api/conversations/{pk}/update/", json=body)
    assert r.status_code == 200
    detail = _detail(client, pk)
    for key, value in body.items():
        assert detail[key] == value, key
    # only what is sent changes; null clears an optional field
    r = client.patch(f"/api/conversations/{pk}/update/", json={"device": None})
    assert r.status_code == 200
    detail = _detail(client, pk)
    assert detail["device"] is None
    assert detail["name"] == "Renamed"
    assert detail["metadata"] == {"plan": "pro"}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                "non_field_errors": [
                    "Send at least one of: name, is_marked, customer_id, device, language, "
                    "metadata."
                ]
            },
        ),
        (
            {"conversation_id": "other"},
            {
                "conversation_id": [
                    "This field cannot be updated; updatable: name, is_marked, customer_id, "
                    "device, language, metadata."
                ]
            },
        ),
        ({"metadata": [1, 2]}, {"metadata": ["Expected a JSON object."]}),
        ({"is_marked": "x"}, {"is_marked": ["Must be a valid boolean."]}),
        (
            {"language": "x" * 256},
            {"language": ["Ensure this field has no more than 255 characters."]},
        ),
        ({"name": ""}, {"name": ["This field may not be blank."]}),
    ],
)
def test_update_refuses_bad_bodies(
    client: httpx.Client, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    pk = _create(client, name="Keep")
    r = client.patch(f"/api/conversations/{pk}/update/", json=body)
    assert r.status_code == 400
    assert r.json() == errors
    assert _detail(client, pk)["name"] == "Keep"


def test_soft_delete_hides_but_keeps(client: httpx.Client) -> None:
    pk = _create(client, name="Doomed")
    other = _create(client, "chat-2")
    r = client.delete(f"/api/conversations/{pk}/delete/")
    assert r.status_code == 200
    assert r.json()["is_deleted"] is True
    deleted_at = r.json()["deleted_at"]
    assert deleted_at
    listing = client.get("/api/conversations/", params={"full": "false"}).json()
    assert [c["id"] for c in listing["results"]] == [other]
    everything = client.get(
        "/api/conversations/", params={"include_deleted": "true", "full": "false"}
    ).json()
    assert {c["id"]: c["is_deleted"] for c in everything["results"]} == {pk: True, other: False}
    # still readable and manageable by pk
    assert _detail(client, pk)["is_deleted"] is True
    assert (
        client.patch(f"/api/conversations/{pk}/rename/", json={"name": "Still"}).status_code == 200
    )
    # lookup hides it unless asked
    assert (
        client.get("/api/conversations/lookup/", params={"conversation_id": "chat-1"}).status_code
        == 404
    )
    found = client.get(
        "/api/conversations/lookup/",
        params={"conversation_id": "chat-1", "include_deleted": "true"},
    )
    assert found.json() == {"id": pk, "conversation_id": "chat-1"}
    # deleting again is harmless and keeps the first time
    again = client.delete(f"/api/conversations/{pk}/delete/")
    assert again.status_code == 200
    assert again.json()["deleted_at"] == deleted_at


def test_tracking_into_a_deleted_conversation_is_kept_and_it_stays_deleted(
    client: httpx.Client, collector: LocalCollector
) -> None:
    pk = _create(client)
    client.delete(f"/api/conversations/{pk}/delete/")
    r = client.post(
        "/api/track/", json={"conversation_id": "chat-1", "content": "late", "sender": "agent"}
    )
    assert r.status_code == 201
    assert r.json()["conversation"] == pk
    ingest = client.post(
        "/api/ingest/",
        json={
            "conversations": [
                {
                    "conversation_id": "chat-1",
                    "spans": [
                        {
                            "span_id": "s1",
                            "kind": "button",
                            "started_at": "2026-11-28T10:00:00+00:00",
                            "attributes": {
                                "agentsight.button.event": "e",
                                "agentsight.button.label": "l",
                                "agentsight.button.value": "v",
                            },
                        }
                    ],
                }
            ]
        },
    )
    assert ingest.status_code == 201
    detail = client.get(f"/api/conversations/{pk}/").json()
    assert detail["is_deleted"] is True
    assert [m["content"] for m in detail["messages"]] == ["late"]
    assert client.get("/api/conversations/").json()["count"] == 0
    # restoring (the pages offer it) brings it back with everything
    collector.storage.restore_conversation(pk)
    assert client.get("/api/conversations/").json()["count"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/conversations/999999/rename/", {"name": "x"}),
        ("POST", "/api/conversations/999999/mark/", {"is_marked": True}),
        ("PATCH", "/api/conversations/999999/update/", {"name": "x"}),
        ("DELETE", "/api/conversations/999999/delete/", None),
        ("GET", "/api/conversations/999999/", None),
        ("GET", "/api/conversations/999999/attachments/", None),
        ("GET", "/api/feedbacks/999999/", None),
        ("GET", "/api/attachment-files/999999/", None),
    ],
)
def test_unknown_pks_are_404(
    client: httpx.Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    r = client.request(method, path, json=body)
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found."}


def test_a_bad_body_is_400_before_a_missing_pk_matters(client: httpx.Client) -> None:
    r = client.patch(
        "/api/conversations/999999/rename/",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("JSON parse error")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations/1/rename/"),
        ("PUT", "/api/conversations/1/mark/"),
        ("POST", "/api/conversations/1/delete/"),
        ("POST", "/api/conversations/1/update/"),
    ],
)
def test_wrong_method_is_405_in_drf_words(client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405
    assert r.json() == {"detail": f'Method "{method}" not allowed.'}


MANAGE = [
    ("PATCH", "/api/conversations/{pk}/rename/", {"name": "hacked"}),
    ("POST", "/api/conversations/{pk}/mark/", {"is_marked": True}),
    ("PATCH", "/api/conversations/{pk}/update/", {"name": "hacked"}),
    ("DELETE", "/api/conversations/{pk}/delete/", None),
    ("GET", "/api/feedbacks/", None),
    ("GET", "/api/feedbacks/1/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), MANAGE)
@pytest.mark.parametrize("auth", [None, f"Api-Key {OTHER_KEY}", "Bearer x"])
def test_management_needs_the_key(
    client: httpx.Client,
    collector: LocalCollector,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    auth: str | None,
) -> None:
    pk = _create(client, name="Safe")
    headers = {"Authorization": auth} if auth else {}
    with httpx.Client(base_url=collector.url, timeout=10) as anon:
        r = anon.request(method, path.format(pk=pk), json=body, headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Api-Key"
    assert isinstance(r.json()["detail"], str)
    detail = _detail(client, pk)
    assert (detail["name"], detail["is_marked"], detail["is_deleted"]) == ("Safe", False, False)
