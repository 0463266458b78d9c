"""Helpers for the collector tests: captured-request replay and transcript comparison.

The captures (``captures/``, copied from the protocol reference) hold the
requests the two published clients really sent; replaying them through httpx
against our collector is how the tests check wire compatibility.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx

CAPTURES = Path(__file__).parent / "captures"
#: Well-formed dummy keys; never real credentials.
KEY = "ags_" + "0123456789abcdef" * 2 + "_abc123"
OTHER_KEY = "ags_" + "fedcba9876543210" * 2 + "_def456"
AUTH = {"Authorization": f"Api-Key {KEY}"}


def load_capture(name: str) -> list[dict[str, Any]]:
    lines = (CAPTURES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- replay ---------------------------------------------------------------------------


def _remap(body: dict[str, Any], ids: dict[int, int]) -> dict[str, Any]:
    """Swap the capture server's pks for the ones our collector answered.

    A real client threads the pks it was given; the capture holds the stand-in
    server's numbers (1001, 1002, ...).
    """
    out = dict(body)
    for key in ("conversation", "message"):
        value = out.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value in ids:
            out[key] = ids[value]
        elif isinstance(value, str) and value.isdigit() and int(value) in ids:
            out[key] = str(ids[int(value)])
    return out


def _multipart(body: dict[str, Any], ids: dict[int, int]) -> tuple[dict[str, str], list[Any]]:
    fields: dict[str, str] = {}
    files: list[Any] = []
    for part in body["parts"]:
        if "filename" in part:
            if "text_preview" in part:
                data = part["text_preview"].encode()
            else:  # binary parts are captured as a preview: rebuild the size
                data = bytes.fromhex(part["hex_preview"]).ljust(part["size_bytes"], b"\0")
            assert len(data) == part["size_bytes"]
            files.append((part["name"], (part["filename"], data, part["content_type"])))
        else:
            fields[part["name"]] = part["value"]
    return {k: str(v) for k, v in _remap(fields, ids).items()}, files


def replay(client: httpx.Client, name: str) -> list[httpx.Response]:
    """Send every captured request of *name* as the client sent it; return the answers."""
    ids: dict[int, int] = {}
    answers = []
    for record in load_capture(name):
        path, body = record["path"], record.get("body")
        headers = {}
        if record["method"] == "GET":
            response = client.get(path)
        elif isinstance(body, dict) and "parts" in body:
            data, files = _multipart(body, ids)
            response = client.post(path, data=data, files=files)
        else:
            payload = json.dumps(_remap(body, ids)).encode()
            if record["headers"].get("Content-Encoding") == "gzip":
                payload = gzip.compress(payload)
                headers["Content-Encoding"] = "gzip"
            headers["Content-Type"] = "application/json"
            response = client.post(path, content=payload, headers=headers)
        answers.append(response)
        assert response.status_code == record["response_status"] or (
            record["method"] == "GET" and response.status_code == 200
        ), (path, response.status_code, response.text)
        captured_id = (record.get("response_body") or {}).get("id")
        our_id = response.json().get("id") if response.status_code < 300 else None
        if isinstance(captured_id, int) and isinstance(our_id, int):
            ids[captured_id] = our_id
    return answers


def conversation_by_id(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    page = client.get("/api/conversations/", params={"conversation_id": conversation_id}).json()
    assert page["count"] == 1, page
    pk = page["results"][0]["id"]
    response = client.get(f"/api/conversations/{pk}/")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def normalise(transcript: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must match whichever protocol stored a scenario (ids and times excluded)."""
    out: list[tuple[Any, ...]] = []
    for item in transcript:
        kind = item["type"]
        if kind == "message":
            out.append((kind, item["sender"], item["content"]))
        elif kind == "action":
            out.append((kind, item["action_name"], item["error_msg"]))
        elif kind == "button":
            out.append((kind, item["button_event"], item["label"], item["value"]))
        elif kind == "attachment":
            out.append((kind, item["sender"], tuple(f["filename"] for f in item["files"])))
    return out


# -- a known data set for the dashboard ------------------------------------------------

#: What :func:`seed_dashboard` stores, as the dashboard must show it.
DASHBOARD_EXPECTED = {
    "totals": {
        "conversations": 2,
        "messages": 4,
        "events": 10,  # 4 messages + 5 actions + 1 button
        "actions": 5,
        "action_errors": 1,
        "total_tokens": 220,
        "feedback": 3,
    },
    # UTC days 25..28 November: events and conversations started per day
    "days": ["2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28"],
    "events": [4, 3, 0, 3],
    "conversations": [1, 0, 0, 1],
    "tokens": {"gpt-4o": (150, 30, 180), "claude-sonnet": (30, 10, 40)},
    "latency": {"search": (200.0, 400.0), "lookup": (50.0, 50.0)},
    "errors": {"search": (1, 4), "lookup": (0, 1)},
    "feedback": {"positive": 2, "neutral": 0, "negative": 1},
}


def seed_dashboard(client: httpx.Client) -> dict[str, int]:
    """Store the dashboard's known data set over HTTP; the two conversations' pks."""

    def post(path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    pks = {}
    for cid, day, env in (("dash-a", "25", "production"), ("dash-b", "28", "development")):
        pks[cid] = post(
            "/api/conversations/",
            {
                "conversation_id": cid,
                "name": f"Dashboard {cid[-1].upper()}",
                "environment": env,
                "timestamp": f"2026-11-{day}T09:00:00+00:00",
            },
        )["id"]

    def at(day: str, minute: int) -> str:
        return f"2026-11-{day}T10:{minute:02d}:00+00:00"

    for cid, day, minute, sender in (
        ("dash-a", "25", 1, "end_user"),
        ("dash-a", "25", 2, "agent"),
        ("dash-b", "28", 1, "end_user"),
        ("dash-b", "28", 2, "agent"),
    ):
        post(
            "/api/track/",
            {
                "conversation_id": cid,
                "content": f"hello {minute}",
                "sender": sender,
                "timestamp": at(day, minute),
            },
        )
    for day, minute, duration, error in (
        ("25", 3, 100, None),
        ("25", 4, 200, None),
        ("26", 1, 300, "timeout"),
        ("26", 2, 400, None),
    ):
        body = {
            "conversation_id": "dash-a",
            "action_name": "search",
            "duration_ms": duration,
            "timestamp": at(day, minute),
        }
        if error:
            body["error_msg"] = error
        post("/api/action_logs/", body)
    post(
        "/api/action_logs/",
        {
            "conversation_id": "dash-b",
            "action_name": "lookup",
            "duration_ms": 50,
            "timestamp": at("28", 3),
        },
    )
    post(
        "/api/buttons/",
        {
            "conversation_id": "dash-a",
            "button_event": "click",
            "label": "Yes",
            "value": "y",
            "timestamp": at("26", 3),
        },
    )
    for index, (cid, model, prompt, completion) in enumerate(
        (
            ("dash-a", "gpt-4o", 100, 20),
            ("dash-b", "gpt-4o", 50, 10),
            ("dash-b", "claude-sonnet", 30, 10),
        )
    ):
        post(
            "/api/action_logs/",
            {
                "conversation_id": cid,
                "action_name": "token_usage",
                "metadata": {
                    "model": model,
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
                "timestamp": at("28", 10 + index),
            },
            key=f"tokens-{index}",  # one call's usage each, not cumulative counters
        )
    for cid, sentiment in (("dash-a", "positive"), ("dash-b", "positive"), ("dash-b", "negative")):
        post(
            "/api/feedbacks/",
            {"kind": "conversation", "conversation_id": cid, "sentiment": sentiment},
        )
    return pks
