"""The published 0.0.44 ``agentsight_api`` and ``conversation_manager`` against our collector.

The scenario (``clients/manage_scenario.py``) seeds a fresh collector over
HTTP, then runs every method of the two singletons - unchanged, in the
0.0.44 virtualenv (``clients/legacy_manage.py``) - and records what they
returned.  Each test checks one effect twice: in what the client returned,
and in what the collector holds when read back over HTTP.  Finally the
published 0.1.4 data plane (``clients/v014_read.py``) reads the same data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import manage_scenario as ms  # clients/ is on sys.path (compat_support puts it there)
import pytest
from compat_support import AUTH, KEY, client_env, run_client_script

from agentsight_collector import LocalCollector


@dataclass
class Managed:
    """The outcome: both clients' results, the seeded pks, and a client of the running server."""

    legacy: dict[str, Any]
    v014: dict[str, Any]
    pks: dict[str, int]
    http: httpx.Client


def _seed(http: httpx.Client) -> dict[str, int]:
    pks = {}
    for conversation_id, fields in ms.SEED.items():
        r = http.post("/api/conversations/", json={"conversation_id": conversation_id, **fields})
        assert r.status_code == 201, r.text
        pks[conversation_id] = r.json()["id"]
    for conversation_id, sender, content, timestamp in ms.MESSAGES:
        body = {
            "conversation_id": conversation_id,
            "sender": sender,
            "content": content,
            "timestamp": timestamp,
        }
        assert http.post("/api/track/", json=body).status_code == 201
    for conversation_id, action_name in ms.ACTIONS:
        body = {
            "conversation_id": conversation_id,
            "action_name": action_name,
            "timestamp": ms.SEED[conversation_id]["timestamp"],
        }
        assert http.post("/api/action_logs/", json=body).status_code == 201
    upload = http.post("/api/attachments/", json=ms.attachment_body(pks[ms.ATTACHMENT[0]]))
    assert upload.status_code == 201, upload.text
    return pks


@pytest.fixture(scope="module")
def managed(client_pythons: dict[str, Path]) -> Iterator[Managed]:
    with (
        LocalCollector(api_keys=(KEY,)) as collector,
        httpx.Client(base_url=collector.url, headers=AUTH, timeout=30) as http,
    ):
        pks = _seed(http)
        env = client_env(AGENTSIGHT_API_KEY=KEY, AGENTSIGHT_API_ENDPOINT=collector.url)
        legacy, _ = run_client_script(
            client_pythons["0.0.44"], "legacy_manage.py", [json.dumps(pks)], env
        )
        v014, _ = run_client_script(
            client_pythons["0.1.4"], "v014_read.py", [collector.url, KEY], client_env()
        )
        yield Managed(legacy, v014, pks, http)


def _detail(m: Managed, conversation_id: str) -> dict[str, Any]:
    r = m.http.get(f"/api/conversations/{m.pks[conversation_id]}/")
    assert r.status_code == 200
    result: dict[str, Any] = r.json()
    return result


def test_the_published_client_ran(managed: Managed) -> None:
    assert managed.legacy["version"] == "0.0.44"
    assert managed.v014["version"] == "0.1.4"


@pytest.mark.parametrize(
    "index", range(len(ms.FILTER_CASES)), ids=[repr(k) for k, _ in ms.FILTER_CASES]
)
def test_fetch_conversations_with_each_filter(managed: Managed, index: int) -> None:
    _, expected = ms.FILTER_CASES[index]
    assert managed.legacy["filters"][index] == sorted(expected)


def test_fetch_conversations_pages(managed: Managed) -> None:
    page = managed.legacy["page"]
    assert page["count"] == 3
    assert page["previous"] is None
    assert "page=2" in page["next"]


def test_fetch_conversation_by_pk_and_by_string_id(managed: Managed) -> None:
    pk = managed.pks["m-1"]
    messages = [content for cid, _, content, _ in ms.MESSAGES if cid == "m-1"]
    expected = {"id": pk, "name": ms.SEED["m-1"]["name"], "messages": messages}
    assert managed.legacy["fetch_by_pk"] == expected
    # by string id 0.0.44 returns the list row; the backend's full=true default carries messages
    assert managed.legacy["fetch_by_id"] == expected


def test_fetch_conversation_attachments_by_pk_and_by_string_id(managed: Managed) -> None:
    by_pk, by_id = managed.legacy["attachments_by_pk"], managed.legacy["attachments_by_id"]
    assert by_pk == by_id
    assert by_pk["count"] == 1
    files = by_pk["results"][0]["files"]
    _, filename, mime, data = ms.ATTACHMENT
    assert [(f["filename"], f["mime_type"], f["size"]) for f in files] == [
        (filename, mime, len(data))
    ]
    assert managed.http.get(files[0]["download_url"]).content == data


def test_unknown_conversations_raise_not_found(managed: Managed) -> None:
    assert managed.legacy["fetch_missing"] == {"type": "NotFoundException", "message": "Not found."}
    assert managed.legacy["fetch_missing_id"]["type"] == "NotFoundException"
    assert managed.legacy["rename_missing"] == {
        "type": "NotFoundException",
        "message": "Not found.",
    }
    assert managed.legacy["mark_missing_pk"] == {
        "type": "NotFoundException",
        "message": "Not found.",
    }


def test_rename_shows_the_new_name(managed: Managed) -> None:
    assert managed.legacy["rename_by_id"]["name"] == "Parcel question (renamed)"
    assert managed.legacy["rename_by_id"]["id"] == managed.pks["m-1"]
    assert _detail(managed, "m-1")["name"] == "Parcel question (renamed)"


def test_mark_and_unmark(managed: Managed) -> None:
    assert managed.legacy["mark_by_pk"]["is_marked"] is True
    assert managed.legacy["unmark_then_mark"] == [False, True]
    assert _detail(managed, "m-1")["is_marked"] is True


def test_update_changes_every_field(managed: Managed) -> None:
    returned = managed.legacy["update_by_id"]
    stored = _detail(managed, "m-2")
    for key, value in ms.UPDATE.items():
        assert returned[key] == value, key
        assert stored[key] == value, key


def test_feedback_is_stored(managed: Managed) -> None:
    for step, conversation_id, sentiment in (
        ("feedback_by_id", "m-1", "positive"),
        ("feedback_by_pk", "m-2", "negative"),
    ):
        returned = managed.legacy[step]
        assert (returned["sentiment"], returned["conversation"]) == (
            sentiment,
            managed.pks[conversation_id],
        )
    stored = managed.http.get("/api/feedbacks/", params={"conversation_id": "m-1"}).json()
    assert [
        (f["sentiment"], f["comment"], f["metadata"], f["route"], f["source"])
        for f in stored["results"]
    ] == [
        ("positive", "Found my parcel", {"widget": "thumbs"}, "conversation-feedbacks", "customer")
    ]
    assert [f["sentiment"] for f in _detail(managed, "m-2")["feedbacks"]] == ["negative"]


def test_delete_hides_the_conversation(managed: Managed) -> None:
    returned = managed.legacy["delete_by_id"]
    assert (returned["id"], returned["is_deleted"]) == (managed.pks["m-3"], True)
    assert managed.legacy["deleted_by_pk"] is True
    assert _detail(managed, "m-3")["is_deleted"] is True
    # deleted conversations are hidden from lookup too, so a second delete by string id is 404
    assert managed.legacy["delete_deleted"] == {
        "type": "NotFoundException",
        "message": "Not found.",
    }


@pytest.mark.parametrize(
    "index", range(len(ms.AFTER_CASES)), ids=[repr(k) for k, _ in ms.AFTER_CASES]
)
def test_filters_see_the_changes(managed: Managed, index: int) -> None:
    _, expected = ms.AFTER_CASES[index]
    assert managed.legacy["after"][index] == sorted(expected)


def test_the_v014_data_plane_reads_the_same_data(managed: Managed) -> None:
    v014 = managed.v014
    assert v014["listed"] == ["m-1", "m-2"]
    assert v014["everything"] == [["m-1", False], ["m-2", False], ["m-3", True]]  # JSON lists
    assert v014["marked"] == ["m-1", "m-2"]
    assert v014["count"] == 3
    assert v014["get"] == {
        "name": "Parcel question (renamed)",
        "messages": [content for cid, _, content, _ in ms.MESSAGES if cid == "m-1"],
    }
    assert v014["deleted"] == {"is_deleted": True, "has_transcript": False}
    assert v014["attachments"] == [ms.ATTACHMENT[1]]
    assert sorted(v014["feedback"]) == [
        ["m-1", "positive", "Found my parcel"],
        ["m-2", "negative", None],
    ]
