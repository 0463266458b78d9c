"""The REST exporter against httpx.MockTransport: routes, pk threading, idempotency, order."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from typing import Any

import httpx
import pytest

from agentsight_async import _events as ev_mod
from agentsight_async._events import Batch, ConversationBatch, event_uuid
from agentsight_async._exporters._rest import RestExporter


def parse_multipart(request: httpx.Request) -> list[dict[str, Any]]:
    boundary = request.headers["Content-Type"].split("boundary=")[1].encode()
    parts = []
    for chunk in request.content.split(b"--" + boundary)[1:-1]:
        head, _, data = chunk.strip(b"\r\n").partition(b"\r\n\r\n")
        headers = head.decode()
        name = re.search(r'name="([^"]*)"', headers)
        filename = re.search(r'filename="([^"]*)"', headers)
        ctype = re.search(r"Content-Type: (\S+)", headers)
        parts.append(
            {
                "name": name.group(1) if name else None,
                "filename": filename.group(1) if filename else None,
                "content_type": ctype.group(1) if ctype else None,
                "data": data,
            }
        )
    return parts


class Backend:
    """Answers like AgentSight (201 + id); conversation pks are stable per id."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.faults: dict[int, Any] = {}  # request number -> answer
        self.next_id = 2000

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        fault = self.faults.pop(len(self.requests), None)
        if isinstance(fault, Exception):
            raise fault
        if fault is not None:
            return fault
        if request.url.path == "/api/conversations/":
            return httpx.Response(201, json={"id": 1002})
        self.next_id += 1
        return httpx.Response(201, json={"id": self.next_id})

    def json_bodies(self) -> list[tuple[str, Any]]:
        out = []
        for r in self.requests:
            ctype = r.headers.get("Content-Type", "")
            body = json.loads(r.content) if ctype == "application/json" else parse_multipart(r)
            out.append((r.url.path, body))
        return out


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def exporter(make_settings, stats, backend, clock) -> RestExporter:
    return RestExporter(
        make_settings(protocol="rest"),
        stats,
        transport=httpx.MockTransport(backend.handler),
        sleep=clock.sleep,
        clock=clock,
    )


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()


async def test_quickstart_scenario_routes_and_bodies(exporter, backend, make_event, clock) -> None:
    e = make_event
    events = [
        e.conversation(name="Support Chat", environment="development"),
        e.question("Hi"),
        e.answer(
            "Photo?",
            attachments=[{"filename": "d.png", "mime_type": "image/png", "data": PNG}],
            attachment_mode="base64",
        ),
        e.answer(
            "Label",
            attachments=[{"filename": "l.txt", "mime_type": "text/plain", "data": b"RETURN"}],
            attachment_mode="form_data",
        ),
        e(
            ev_mod.ACTION,
            action_name="lookup",
            metadata={"s": 1},
            duration_ms=1250,
            tools_used={"api": {}},
            response="ok",
        ),
        e(ev_mod.BUTTON, button_event="satisfaction", label="Yes", value="yes", metadata={}),
        e(
            ev_mod.ATTACHMENTS,
            mode="base64",
            sender="end_user",
            metadata={"k": 1},
            attachments=[{"filename": "n.txt", "mime_type": "text/plain", "data": "aGk="}],
        ),
        e(
            ev_mod.ATTACHMENTS,
            mode="form_data",
            sender="agent",
            metadata={},
            attachments=[
                {"filename": "r.csv", "mime_type": "text/csv", "data": b"a,b\n"},
                {"filename": "x.png", "mime_type": "image/png", "data": b"\x89PNG"},
            ],
        ),
        e(
            ev_mod.TOKEN_USAGE,
            prompt_tokens=130,
            completion_tokens=35,
            total_tokens=165,
            embedding_tokens=8,
            model="gpt-4o",
        ),
    ]
    outcomes = await exporter.export(
        Batch([ConversationBatch("chat-1", events, {})]), clock.now + 60
    )
    assert all(o.ok for o in outcomes[0]), outcomes
    bodies = backend.json_bodies()
    assert [p for p, _ in bodies] == [
        "/api/conversations/",
        "/api/track/",
        "/api/track/",
        "/api/attachments/",
        "/api/track/",
        "/api/attachments/",
        "/api/action_logs/",
        "/api/buttons/",
        "/api/attachments/",
        "/api/attachments/",
        "/api/action_logs/",
    ]
    conv = bodies[0][1]
    assert conv == {
        "timestamp": events[0].timestamp,
        "conversation_id": "chat-1",
        "customer_id": None,
        "customer_ip_address": None,
        "device": None,
        "source": None,
        "language": None,
        "name": "Support Chat",
        "is_used": True,
        "environment": "development",
        "metadata": None,
    }
    assert bodies[1][1] == {
        "timestamp": events[1].timestamp,
        "content": "Hi",
        "sender": "end_user",
        "conversation_id": "chat-1",
        "metadata": {},
        "conversation": 1002,
    }
    linked = bodies[3][1]
    assert linked["message"] == 2002
    assert linked["conversation"] == "1002"
    assert linked["conversation_id"] == "chat-1"  # the legacy client sent "None" here
    assert linked["sender"] == "agent"
    assert linked["timestamp"] == events[2].timestamp  # tracking time, stable on retry
    assert "mode" not in linked
    parts_d = bodies[5][1]
    assert [p["name"] for p in parts_d] == [
        "timestamp",
        "conversation",
        "conversation_id",
        "sender",
        "mode",
        "metadata",
        "attachment_0",
        "message",
    ]
    assert parts_d[1]["data"] == b"1002"
    assert parts_d[6]["filename"] == "l.txt"
    assert parts_d[6]["data"] == b"RETURN"
    assert parts_d[7]["data"] == b"2004"
    action = bodies[6][1]
    assert action["duration_ms"] == 1250
    assert action["conversation"] == 1002
    assert "started_at" not in action
    assert bodies[7][1]["button_event"] == "satisfaction"
    standalone = bodies[8][1]
    assert standalone["mode"] == "base64"
    assert standalone["conversation"] == 1002
    assert standalone["conversation_id"] == "chat-1"
    parts_c = bodies[9][1]
    assert [p["name"] for p in parts_c] == [
        "timestamp",
        "conversation",
        "conversation_id",
        "sender",
        "mode",
        "metadata",
        "attachment_0",
        "attachment_1",
    ]
    assert parts_c[7]["content_type"] == "image/png"
    assert json.loads(parts_c[5]["data"]) == {}
    tokens = bodies[10][1]
    assert tokens["action_name"] == "token_usage"
    assert tokens["timestamp"] == events[8].timestamp
    assert tokens["metadata"] == {
        "prompt_tokens": 130,
        "completion_tokens": 35,
        "total_tokens": 165,
        "embedding_tokens": 8,
        "model": "gpt-4o",
    }
    # Idempotency keys: one per item, ":attachments" for a message's linked upload
    keys = [r.headers.get("Idempotency-Key") for r in backend.requests]
    assert keys[0] == event_uuid(events[0])
    assert keys[3] == event_uuid(events[2]) + ":attachments"
    assert keys[2] == event_uuid(events[2])
    assert len(set(keys)) == len(keys)
    # each outcome carries its own request's answer
    assert outcomes[0][0].response == {"id": 1002}
    assert outcomes[0][2].response == {"id": 2002}


async def test_opened_conversation_is_not_used(make_settings, stats, backend, make_event) -> None:
    exporter = RestExporter(
        make_settings(protocol="rest"), stats, transport=httpx.MockTransport(backend.handler)
    )
    ev = make_event.conversation(opened=True, name="Widget")
    [[out]] = await exporter.export(Batch([ConversationBatch(ev.conversation_id, [ev], {})]), 1e12)
    assert out.ok
    body = json.loads(backend.requests[0].content)
    assert body["is_used"] is False
    assert "environment" not in body  # unknown: the backend's default applies


async def test_pk_resolved_by_upsert_then_cached(exporter, backend, make_event, clock) -> None:
    conv = ConversationBatch("chat-7", [make_event.question()], {"name": "N", "device": None})
    await exporter.export(Batch([conv]), clock.now + 60)
    upsert, track = backend.json_bodies()
    assert upsert == (
        "/api/conversations/",
        {"conversation_id": "chat-7", "name": "N", "is_used": True},
    )
    assert track[1]["conversation"] == 1002
    await exporter.export(
        Batch([ConversationBatch("chat-7", [make_event.answer()], {})]), clock.now + 60
    )
    assert [p for p, _ in backend.json_bodies()][2:] == ["/api/track/"]
    assert backend.json_bodies()[2][1]["conversation"] == 1002


async def test_idempotency_key_and_bytes_stable_across_retries(
    exporter, backend, make_event, clock
) -> None:
    backend.faults = {
        2: httpx.Response(503),
        3: httpx.ConnectError("x"),
        4: httpx.Response(429, headers={"Retry-After": "2"}),
    }
    att = make_event(
        ev_mod.ATTACHMENTS,
        mode="form_data",
        sender="agent",
        metadata={},
        attachments=[
            {"filename": "r.bin", "mime_type": "application/octet-stream", "data": b"\x00\x01"}
        ],
    )
    out = await exporter.export(Batch([ConversationBatch("c", [att], {})]), clock.now + 60)
    assert out[0][0].ok
    uploads = [r for r in backend.requests if r.url.path == "/api/attachments/"]
    assert len(uploads) == 4
    assert {r.headers["Idempotency-Key"] for r in uploads} == {event_uuid(att)}
    assert len({r.content for r in uploads}) == 1
    assert 2.0 <= clock.sleeps[-1] <= 3.0  # Retry-After (the widened interval), + up to 50 %
    assert exporter.stats.retried == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
async def test_rejected_item_continues_chain(exporter, backend, make_event, clock, status) -> None:
    events = [make_event.conversation(), make_event.question(), make_event.answer()]
    backend.faults = {2: httpx.Response(status, json={"content": ["This field may not be blank."]})}
    out = await exporter.export(Batch([ConversationBatch("chat-1", events, {})]), clock.now + 60)
    assert [o.ok for o in out[0]] == [True, False, True]
    assert out[0][1].drop_reason == "rejected"
    assert "content: This field may not be blank." in (out[0][1].error or "")
    assert len(backend.requests) == 3  # no retry


@pytest.mark.parametrize("status", [202, 204, 200])
async def test_any_2xx_is_success(exporter, backend, make_event, clock, status) -> None:
    backend.faults = {1: httpx.Response(status)}
    ev = make_event.conversation()
    out = await exporter.export(Batch([ConversationBatch("c", [ev], {})]), clock.now + 60)
    assert len(backend.requests) == 1
    assert out[0][0].drop_reason == "rejected"  # no id: a conversation answer must carry one


async def test_exhausted_item_stops_its_chain_only(make_settings, stats, make_event) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("conversation_id") == "bad" and request.url.path == "/api/track/":
            return httpx.Response(503)
        return httpx.Response(201, json={"id": 1})

    exp = RestExporter(
        make_settings(protocol="rest"), stats, transport=httpx.MockTransport(handler)
    )
    bad = ConversationBatch(
        "bad",
        [
            make_event.conversation("bad"),
            make_event.question(cid="bad"),
            make_event.answer(cid="bad"),
        ],
        {},
    )
    good = ConversationBatch(
        "good", [make_event.conversation("good"), make_event.question(cid="good")], {}
    )
    started = time.monotonic()
    out = await exp.export(Batch([bad, good]), time.monotonic() + 0.3)
    assert time.monotonic() - started < 1.0
    assert [o.drop_reason for o in out[0]] == [None, "retries_exhausted", "retries_exhausted"]
    assert "earlier item" in (out[0][2].error or "")
    assert [o.ok for o in out[1]] == [True, True]


async def test_concurrency_bound_and_order(make_settings, stats, make_event) -> None:
    in_flight = 0
    peak = 0
    arrivals: dict[str, list[str]] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        body = json.loads(request.content)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        if request.url.path == "/api/track/":
            arrivals.setdefault(body["conversation_id"], []).append(body["content"])
        return httpx.Response(201, json={"id": 1})

    exp = RestExporter(
        make_settings(protocol="rest", max_concurrency=3),
        stats,
        transport=httpx.MockTransport(handler),
    )
    convs = [
        ConversationBatch(
            f"c{i}", [make_event.question(f"m{j}", cid=f"c{i}") for j in range(4)], {}
        )
        for i in range(9)
    ]
    out = await exp.export(Batch(convs), time.monotonic() + 30)
    assert all(o.ok for row in out for o in row)
    assert peak == 3
    assert all(arrivals[f"c{i}"] == ["m0", "m1", "m2", "m3"] for i in range(9))


async def test_order_kept_under_retries(exporter, backend, make_event, clock) -> None:
    backend.faults = {3: httpx.Response(503), 4: httpx.ReadTimeout("slow"), 7: httpx.Response(500)}
    events = [make_event.question(f"m{i}") for i in range(5)]
    out = await exporter.export(Batch([ConversationBatch("c", events, {})]), clock.now + 60)
    assert all(o.ok for o in out[0])
    delivered = [
        json.loads(r.content)["content"]
        for i, r in enumerate(backend.requests, 1)
        if r.url.path == "/api/track/" and i not in (3, 4, 7)
    ]
    assert delivered == ["m0", "m1", "m2", "m3", "m4"]


async def test_401_logs_never_contain_key(
    make_settings, stats, make_event, clock, caplog, api_key
) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401, json={"detail": f"Bad credentials: {request.headers['Authorization']}"}
        )

    exp = RestExporter(
        make_settings(protocol="rest"),
        stats,
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
    )
    out = await exp.export(
        Batch([ConversationBatch("c", [make_event.conversation(), make_event.question()], {})]),
        clock.now + 60,
    )
    assert all(o.drop_reason == "rejected" for o in out[0])
    assert "refused the API key" in caplog.text
    assert api_key not in caplog.text
    assert api_key not in "".join(o.error or "" for o in out[0])
    assert api_key not in str(stats.as_dict())


async def test_unknown_pk_sends_null_only_when_backend_gives_none(
    exporter, backend, make_event, clock
) -> None:
    backend.faults = {1: httpx.Response(400, json={"detail": "nope"})}  # the upsert is refused
    out = await exporter.export(
        Batch([ConversationBatch("c", [make_event.question()], {})]), clock.now + 60
    )
    assert out[0][0].ok
    assert json.loads(backend.requests[1].content)["conversation"] is None


async def test_message_without_id_skips_attachments(exporter, backend, make_event, clock) -> None:
    backend.faults = {2: httpx.Response(201, json={})}
    msg = make_event.question(
        attachments=[{"filename": "a", "mime_type": "text/plain", "data": "aGk="}],
        attachment_mode="base64",
    )
    out = await exporter.export(Batch([ConversationBatch("c", [msg], {})]), clock.now + 60)
    assert out[0][0].ok
    assert [r.url.path for r in backend.requests] == ["/api/conversations/", "/api/track/"]
    assert "without an id" in str(exporter.stats.last_error)
