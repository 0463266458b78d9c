"""Replay what the published clients really sent, then read the transcript back."""

from __future__ import annotations

import base64
import gzip
import json

import httpx
from collector_support import conversation_by_id, load_capture, normalise, replay

from agentsight_collector import LocalCollector

LEGACY_TRANSCRIPT = [
    ("message", "end_user", "Hi, I need help with my order"),
    ("message", "agent", "Sure! What's your order number?"),
    ("action", "lookup_order", None),
    ("button", "satisfaction", "Yes", "yes"),
    ("attachment", "end_user", ("note.txt",)),
    ("attachment", "agent", ("report.csv", "attachment_1.png")),
    ("message", "end_user", "Here is a photo of the damage"),
    ("message", "agent", "Thanks, here is your return label"),
    ("message", "agent", "And the invoice"),
    # message-linked uploads are stamped at send time (protocol §2.1), so after
    ("attachment", "end_user", ("damage.png",)),
    ("attachment", "agent", ("label.txt",)),
    ("attachment", "agent", ("invoice.txt",)),
    ("message", "end_user", "Thanks, that's all"),
]

INGEST_TRANSCRIPT = [
    ("message", "end_user", "Hi, I need help with my order"),
    ("message", "agent", "Sure! What's your order number?"),
    ("message", "end_user", "It's A-1001"),
    ("action", "lookup_order", None),
    ("message", "agent", "Your order A-1001 has shipped."),
    ("button", "satisfaction", "Yes", "yes"),
    ("attachment", "end_user", ("receipt.pdf",)),
    ("attachment", "agent", ("note.txt",)),
    # the "failing" and "abandoned" turns are incomplete: archived, not shown (§3.4)
    ("message", "agent", "Anything else I can help with?"),
]


def test_legacy_capture_replays_to_the_expected_transcript(client: httpx.Client) -> None:
    answers = replay(client, "legacy_0.0.44.jsonl")
    assert all(r.status_code == 201 and isinstance(r.json()["id"], int) for r in answers)

    visit = conversation_by_id(client, "chat-visit-1")
    assert visit["is_used"] is False
    assert visit["customer_ip_address"] == "203.0.113.9"
    assert visit["metadata"] == {"page": "/pricing"}

    chat = conversation_by_id(client, "chat-123")
    assert chat["is_used"] is True
    assert chat["name"] == "Support Chat"
    assert normalise(chat["transcript"]) == LEGACY_TRANSCRIPT
    assert chat["message_count"] == 6

    action = next(i for i in chat["transcript"] if i["type"] == "action")
    assert action["duration_ms"] == 1250
    assert action["tools_used"] == {"orders_api": {"order_id": "A-1001"}}
    assert action["response"] == "Order A-1001: shipped"

    # Cumulative legacy counters were sent twice; they count once.
    usage = [i for i in chat["transcript"] if i["type"] == "token_usage"]
    assert [(u["input_tokens"], u["output_tokens"], u["total_tokens"]) for u in usage] == [
        (130, 35, 165)
    ]
    assert chat["token_usage"]["total_tokens"] == 165
    assert chat["token_usage"]["embedding_tokens"] == 8

    # message-linked attachments point at their message (the agent one arrived
    # with conversation_id "None" and was resolved through the pk)
    by_content = {i["content"]: i["id"] for i in chat["transcript"] if i["type"] == "message"}
    linked = {
        i["files"][0]["filename"]: i["message"]
        for i in chat["transcript"]
        if i["type"] == "attachment" and i["message"]
    }
    assert linked == {
        "damage.png": by_content["Here is a photo of the damage"],
        "label.txt": by_content["Thanks, here is your return label"],
        "invoice.txt": by_content["And the invoice"],
    }
    assert [f["sentiment"] for f in chat["feedbacks"]] == ["positive", "negative"]


def test_legacy_attachment_bytes_download_intact(client: httpx.Client) -> None:
    replay(client, "legacy_0.0.44.jsonl")
    chat = conversation_by_id(client, "chat-123")
    files = {
        f["filename"]: f
        for item in chat["transcript"]
        if item["type"] == "attachment"
        for f in item["files"]
    }
    note = client.get(files["note.txt"]["download_url"])
    assert note.status_code == 200
    assert note.content == b"hello attachment"
    assert note.headers["content-type"].startswith("text/plain")
    assert "attachment;" in note.headers["content-disposition"]
    csv = client.get(files["report.csv"]["download_url"])
    assert csv.content == b"a,b\n1,2\n"
    png = client.get(files["damage.png"]["download_url"]).content
    capture = load_capture("legacy_0.0.44.jsonl")
    sent = next(r for r in capture if r["seq"] == 10)["body"]["attachments"][0]["data"]
    assert png == base64.b64decode(sent)


def test_ingest_capture_replays_to_the_expected_transcript(client: httpx.Client) -> None:
    answers = replay(client, "ingest_0.1.4.jsonl")
    me = answers[0].json()
    assert me["capabilities"] == ["gzip-ingest"]
    assert {e["slug"] for e in me["environments"]} == {"production", "development"}

    visit = conversation_by_id(client, "chat-visit-1")
    assert visit["is_used"] is False  # only a conversation_opened span
    assert visit["customer_id"] == "cust-7"

    chat = conversation_by_id(client, "chat-123")
    assert chat["is_used"] is True
    assert chat["metadata"] == {"plan": "pro", "resolved": True}
    assert normalise(chat["transcript"]) == INGEST_TRANSCRIPT

    action = next(i for i in chat["transcript"] if i["type"] == "action")
    assert action["tools_used"] == {"order_id": "A-1001", "verbose": False}
    usage = [i for i in chat["transcript"] if i["type"] == "token_usage"]
    assert len(usage) == 1
    assert usage[0]["model"] == "gpt-4o-mini-2024-07-18"
    assert (usage[0]["input_tokens"], usage[0]["output_tokens"]) == (120, 30)
    assert usage[0]["cache_read_tokens"] == 64

    # The REST upload and its attachment span are one item, with bytes.
    note = next(
        i for i in chat["transcript"] if i["type"] == "attachment" and i["sender"] == "agent"
    )
    assert note["files"][0]["downloadable"] is True
    assert client.get(note["files"][0]["download_url"]).content == b"hello attachment"
    receipt = next(
        i for i in chat["transcript"] if i["type"] == "attachment" and i["sender"] == "end_user"
    )
    assert receipt["files"][0]["downloadable"] is False
    assert receipt["files"][0]["size"] == 1234


def test_replayed_ingest_batches_are_deduplicated(client: httpx.Client) -> None:
    capture = load_capture("ingest_0.1.4.jsonl")
    batch = next(r for r in capture if r["seq"] == 5)["body"]
    first = client.post("/api/ingest/", json=batch)
    assert first.status_code == 201
    assert first.json()["accepted"] == 11
    again = client.post(
        "/api/ingest/",
        content=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == {**again.json(), "accepted": 0, "duplicates": 11}
    chat = conversation_by_id(client, "chat-123")
    assert sum(1 for i in chat["transcript"] if i["type"] == "message") == 5


def _rest_scenario(client: httpx.Client) -> None:
    conv = client.post(
        "/api/conversations/",
        json={"conversation_id": "same", "name": "Same", "is_used": True},
    ).json()["id"]
    t = "2026-01-01T10:00:0{}+00:00"
    client.post(
        "/api/track/",
        json={
            "timestamp": t.format(1),
            "content": "hi",
            "sender": "end_user",
            "conversation_id": "same",
            "conversation": conv,
        },
    )
    client.post(
        "/api/action_logs/",
        json={
            "timestamp": t.format(2),
            "action_name": "search",
            "conversation_id": "same",
            "conversation": conv,
            "tools_used": {"q": "x"},
            "response": "found",
        },
    )
    client.post(
        "/api/track/",
        json={
            "timestamp": t.format(3),
            "content": "answer",
            "sender": "agent",
            "conversation_id": "same",
            "conversation": conv,
        },
    )
    client.post(
        "/api/buttons/",
        json={
            "timestamp": t.format(4),
            "button_event": "rate",
            "label": "Good",
            "value": "5",
            "conversation_id": "same",
            "conversation": conv,
        },
    )
    client.post(
        "/api/attachments/",
        json={
            "timestamp": t.format(5),
            "mode": "base64",
            "sender": "end_user",
            "conversation_id": "same",
            "conversation": conv,
            "attachments": [{"filename": "a.txt", "mime_type": "text/plain", "data": "YQ=="}],
        },
    )


def _span(span_id: str, kind: str, at: str, attrs: dict[str, object], **extra: object) -> dict:
    return {
        "span_id": span_id,
        "trace_id": "0" * 32,
        "parent_span_id": None,
        "kind": kind,
        "name": kind,
        "started_at": at,
        "ended_at": at,
        "duration_ms": 0.0,
        "status": "ok",
        "attributes": {"agentsight.conversation.id": "same", **attrs},
        "events": [],
        **extra,
    }


def _ingest_scenario(client: httpx.Client) -> None:
    t = "2026-01-01T10:00:0{}+00:00"
    turn = _span(
        "a" * 16,
        "turn",
        t.format(1),
        {"agentsight.turn.complete": True},
        events=[
            {
                "name": "agentsight.message",
                "timestamp": t.format(1),
                "attributes": {
                    "agentsight.message.sender": "end_user",
                    "agentsight.message.content": "hi",
                },
            },
            {
                "name": "agentsight.message",
                "timestamp": t.format(3),
                "attributes": {
                    "agentsight.message.sender": "agent",
                    "agentsight.message.content": "answer",
                },
            },
        ],
    )
    tool = _span(
        "b" * 16,
        "tool",
        t.format(2),
        {
            "agentsight.tool.name": "search",
            "agentsight.tool.arguments": '{"q": "x"}',
            "agentsight.tool.response": "found",
        },
    )
    button = _span(
        "c" * 16,
        "button",
        t.format(4),
        {
            "agentsight.button.event": "rate",
            "agentsight.button.label": "Good",
            "agentsight.button.value": "5",
        },
    )
    attachment = _span(
        "d" * 16,
        "attachment",
        t.format(5),
        {
            "agentsight.attachment.sender": "end_user",
            "agentsight.attachment.count": 1,
            "agentsight.attachment.files": '[{"filename": "a.txt", "size": 1}]',
        },
    )
    payload = {
        "sdk": {"name": "test", "version": "0"},
        "conversations": [
            {"conversation_id": "same", "name": "Same", "spans": [turn, tool, button, attachment]}
        ],
    }
    assert client.post("/api/ingest/", json=payload).status_code == 201


def test_rest_and_ingest_store_comparable_transcripts(tmp_path) -> None:
    transcripts = []
    for i, scenario in enumerate((_rest_scenario, _ingest_scenario)):
        with (
            LocalCollector(tmp_path / f"{i}.db") as collector,
            httpx.Client(
                base_url=collector.url,
                timeout=10,
                headers={"Authorization": f"Api-Key {collector.api_key}"},
            ) as client,
        ):
            scenario(client)
            transcripts.append(normalise(conversation_by_id(client, "same")["transcript"]))
    assert transcripts[0] == transcripts[1]
    assert transcripts[0] == [
        ("message", "end_user", "hi"),
        ("action", "search", None),
        ("message", "agent", "answer"),
        ("button", "rate", "Good", "5"),
        ("attachment", "end_user", ("a.txt",)),
    ]
