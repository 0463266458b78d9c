"""The ingest exporter against httpx.MockTransport: payload shapes, gzip, 400s, retries."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentsight_async import _events as ev_mod
from agentsight_async._events import Batch, ConversationBatch, Event, event_uuid, span_id
from agentsight_async._exporters._ingest import IngestExporter, rejected_blocks
from agentsight_async._exporters._spans import build_block, encode_payload

CAPTURES = Path("/work/shared/reference/captures")


class MockServer:
    """Records requests; answers through a per-request function (default: like AgentSight)."""

    def __init__(self, capabilities: list[str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.capabilities = ["gzip-ingest"] if capabilities is None else capabilities
        self.script: list[Any] = []  # answers for the next POST /api/ingest/ calls
        self.me: Any = None  # override for /api/me/

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/me/":
            if isinstance(self.me, Exception):
                raise self.me
            if isinstance(self.me, httpx.Response):
                return self.me
            return httpx.Response(
                200,
                json={
                    "role": "write",
                    "capabilities": self.capabilities,
                    "environments": [{"slug": "production"}, {"slug": "development"}],
                },
            )
        if path == "/api/ingest/" and self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if path == "/api/conversations/":
            return httpx.Response(201, json={"id": 1002})
        return httpx.Response(201, json={"id": len(self.requests)})

    def posts(self, path: str = "/api/ingest/") -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.path == path]


def body_of(request: httpx.Request) -> Any:
    raw = request.content
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    return json.loads(raw)


@pytest.fixture
def server() -> MockServer:
    return MockServer()


@pytest.fixture
def exporter(make_settings, stats, server, clock) -> IngestExporter:
    return IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(server.handler),
        sleep=clock.sleep,
        clock=clock,
    )


def batch_of(*convs: ConversationBatch) -> Batch:
    return Batch(list(convs))


def capture_spans() -> dict[str, dict[str, Any]]:
    """One span per kind from the 0.1.4 capture (the gzipped batch, plus conversation)."""
    spans: dict[str, dict[str, Any]] = {}
    for line in (CAPTURES / "ingest_0.1.4.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["path"] != "/api/ingest/":
            continue
        for block in rec["body"]["conversations"]:
            for span in block["spans"]:
                spans.setdefault(span["kind"], span)
    return spans


# --- shapes ---------------------------------------------------------------------


async def test_every_kind_matches_capture_shapes(exporter, server, make_event, clock) -> None:
    e = make_event
    events = [
        e.conversation(name="Support Chat", customer_id="cust-42", environment="development"),
        e.question("Hi, I need help"),
        e(
            ev_mod.ACTION,
            action_name="lookup_order",
            tools_used={"order_id": "A-1001"},
            response="shipped",
            metadata={"source": "scenario"},
        ),
        e(
            ev_mod.TOKEN_USAGE,
            prompt_tokens=120,
            completion_tokens=30,
            total_tokens=150,
            embedding_tokens=0,
            model="gpt-4o-mini",
            system="openai",
        ),
        e.answer("Your order has shipped."),
        e(
            ev_mod.BUTTON,
            button_event="satisfaction",
            label="Yes",
            value="yes",
            metadata={"position": 1},
        ),
        e(
            ev_mod.ATTACHMENTS,
            mode="base64",
            sender="end_user",
            metadata={"kind": "x"},
            attachments=[
                {
                    "filename": "n.txt",
                    "mime_type": "text/plain",
                    "data": base64.b64encode(b"hello attachment").decode(),
                }
            ],
        ),
    ]
    conv = ConversationBatch("chat-123", events, {"name": "Support Chat"})
    outcomes = await exporter.export(batch_of(conv), clock.now + 60)
    assert all(o.ok for o in outcomes[0])
    assert outcomes[0][0].response == {"id": len(server.requests)}

    payload = body_of(server.posts()[0])
    assert payload["sdk"] == {"name": "agentsight-async", "version": payload["sdk"]["version"]}
    block = payload["conversations"][0]
    ours: dict[str, dict[str, Any]] = {}
    for span in block["spans"]:
        ours.setdefault(span["kind"], span)
    theirs = capture_spans()
    for kind in ("turn", "tool", "llm", "button", "attachment", "conversation"):
        mine, ref = ours[kind], theirs[kind]
        assert set(mine) == set(ref), kind
        assert set(mine["otel"]) == set(ref["otel"]), kind
        assert set(mine["otel"]["resource"]) == set(ref["otel"]["resource"])
        assert len(mine["span_id"]) == 16
        assert len(mine["trace_id"]) == 32
        int(mine["trace_id"], 16)
        # every attribute the reference sends for this kind (besides optional ones) is here
        optional = {
            "agentsight.conversation.customer_ip",
            "agentsight.conversation.device",
            "agentsight.conversation.source",
            "agentsight.conversation.language",
            "agentsight.conversation.metadata",
            "agentsight.llm.requested_model",
            "gen_ai.operation.name",
            "agentsight.llm.cache_read_tokens",
            "agentsight.message.metadata",
        }
        missing = set(ref["attributes"]) - set(mine["attributes"]) - optional
        assert not missing, (kind, missing)
    turn = ours["turn"]
    assert turn["status"] == "ok"
    assert turn["attributes"]["agentsight.turn.complete"] is True
    assert turn["attributes"]["agentsight.turn.id"] == turn["span_id"] == span_id(events[1])
    assert turn["events"][0]["name"] == "agentsight.message"
    assert set(turn["events"][0]) == set(theirs["turn"]["events"][0])


async def test_block_fields_non_null_and_ip_naming(exporter, server, make_event, clock) -> None:
    conv_ev = make_event.conversation(
        customer_ip_address="203.0.113.9", device="mobile", metadata={"plan": "pro"}
    )
    conv = ConversationBatch(
        "chat-1", [conv_ev, make_event.question()], {"name": "Chat", "language": "en"}
    )
    await exporter.export(batch_of(conv), clock.now + 60)
    block = body_of(server.posts()[0])["conversations"][0]
    assert {k: v for k, v in block.items() if k != "spans"} == {
        "conversation_id": "chat-1",
        "customer_ip_address": "203.0.113.9",
        "device": "mobile",
        "metadata": {"plan": "pro"},
        "name": "Chat",
        "language": "en",
    }
    attrs = block["spans"][0]["attributes"]
    assert attrs["agentsight.conversation.customer_ip"] == "203.0.113.9"
    assert json.loads(attrs["agentsight.conversation.metadata"]) == {"plan": "pro"}
    assert "agentsight.conversation.customer_id" not in attrs
    kinds = [(s["kind"], s["name"]) for s in block["spans"]]
    assert kinds == [("conversation", "conversation"), ("turn", "message")]


# --- attachments ---------------------------------------------------------------------


async def test_attachments_uploaded_before_ingest(exporter, server, make_event, clock) -> None:
    att = make_event(
        ev_mod.ATTACHMENTS,
        mode="form_data",
        sender="agent",
        metadata={"k": "v"},
        attachments=[{"filename": "r.csv", "mime_type": "text/csv", "data": b"a,b\n1,2\n"}],
    )
    msg = make_event.answer(
        "see file",
        attachments=[{"filename": "n.txt", "mime_type": "text/plain", "data": "aGk="}],
        attachment_mode="base64",
    )
    conv = ConversationBatch("chat-9", [att, msg], {"environment": "production"})
    outcomes = await exporter.export(batch_of(conv), clock.now + 60)
    assert all(o.ok for o in outcomes[0])
    paths = [(r.method, r.url.path) for r in server.requests]
    assert paths == [
        ("GET", "/api/me/"),
        ("POST", "/api/conversations/"),
        ("POST", "/api/attachments/"),
        ("POST", "/api/attachments/"),
        ("POST", "/api/ingest/"),
    ]
    assert body_of(server.requests[1]) == {"conversation_id": "chat-9", "environment": "production"}
    up = body_of(server.requests[2])
    assert up["conversation"] == "1002"
    assert up["conversation_id"] == "chat-9"
    assert up["mode"] == "base64"
    assert up["sender"] == "agent"
    assert up["attachments"] == [
        {
            "filename": "r.csv",
            "mime_type": "text/csv",
            "data": base64.b64encode(b"a,b\n1,2\n").decode(),
        }
    ]
    assert server.requests[2].headers["Idempotency-Key"] == event_uuid(att)
    assert server.requests[3].headers["Idempotency-Key"] == event_uuid(msg) + ":attachments"
    spans = body_of(server.posts()[0])["conversations"][0]["spans"]
    kinds = [s["kind"] for s in spans]
    assert kinds == ["attachment", "turn", "attachment"]
    files = json.loads(spans[0]["attributes"]["agentsight.attachment.files"])
    assert files == [{"filename": "r.csv", "size": 8, "mime_type": "text/csv"}]
    assert spans[0]["attributes"]["agentsight.attachment.mode"] == "base64"
    assert spans[0]["attributes"]["agentsight.attachment.count"] == 1
    assert spans[2]["span_id"] != spans[1]["span_id"]
    assert json.loads(spans[2]["attributes"]["agentsight.attachment.files"])[0]["size"] == 2
    # the pk is remembered: a second batch does not upsert again
    att2 = make_event(
        ev_mod.ATTACHMENTS,
        mode="base64",
        sender="end_user",
        metadata={},
        attachments=[{"filename": "a", "mime_type": "text/plain", "data": "aGk="}],
    )
    await exporter.export(batch_of(ConversationBatch("chat-9", [att2], {})), clock.now + 60)
    assert len(server.posts("/api/conversations/")) == 1


async def test_failed_upload_drops_only_that_event(make_settings, stats, make_event, clock) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/api/attachments/":
            return httpx.Response(413, json={"detail": "too large"})
        return httpx.Response(201, json={"id": 7})

    exp = IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
    )
    att = make_event(
        ev_mod.ATTACHMENTS,
        mode="base64",
        sender="end_user",
        metadata={},
        attachments=[{"filename": "a", "mime_type": "text/plain", "data": "aGk="}],
    )
    q = make_event.question()
    out = await exp.export(batch_of(ConversationBatch("c", [att, q], {})), clock.now + 60)
    assert out[0][0].ok is False
    assert out[0][0].drop_reason == "rejected"
    assert out[0][1].ok is True
    assert seen[-1] == "/api/ingest/"


# --- gzip negotiation ------------------------------------------------------------------


@pytest.mark.parametrize("capable", [True, False])
@pytest.mark.parametrize("big", [True, False])
async def test_gzip_negotiation(make_settings, stats, make_event, clock, capable, big) -> None:
    server = MockServer(capabilities=["GZIP-Ingest"] if capable else [])
    exp = IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(server.handler),
        sleep=clock.sleep,
        clock=clock,
    )
    content = "x" * (9000 if big else 10)
    conv = ConversationBatch("c", [make_event.question(content)], {})
    await exp.export(batch_of(conv), clock.now + 60)
    req = server.posts()[0]
    compressed = req.headers.get("Content-Encoding") == "gzip"
    assert compressed == (capable and big)
    assert (
        body_of(req)["conversations"][0]["spans"][0]["events"][0]["attributes"][
            "agentsight.message.content"
        ]
        == content
    )


@pytest.mark.parametrize(
    ("endpoint", "compressed"),
    [("http://127.0.0.1:8765", False), ("http://localhost:8765", False), ("https://a.test", True)],
)
async def test_no_gzip_over_loopback(make_settings, stats, make_event, clock, endpoint, compressed):
    """A collector on this machine gets plain JSON: no bandwidth to save, only CPU to spend."""
    server = MockServer(capabilities=["gzip-ingest"])
    exp = IngestExporter(
        make_settings(api_endpoint=endpoint),
        stats,
        transport=httpx.MockTransport(server.handler),
        sleep=clock.sleep,
        clock=clock,
    )
    conv = ConversationBatch("c", [make_event.question("x" * 9000)], {})
    await exp.export(batch_of(conv), clock.now + 60)
    assert (server.posts()[0].headers.get("Content-Encoding") == "gzip") is compressed


async def test_bytes_identical_across_retries(exporter, server, make_event, clock) -> None:
    server.script = [
        httpx.Response(503),
        httpx.ReadError("reset"),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(201, json={"ok": True}),
    ]
    conv = ConversationBatch("c", [make_event.question("y" * 10_000)], {})
    outcomes = await exporter.export(batch_of(conv), clock.now + 60)
    assert outcomes == [[outcomes[0][0]]]
    assert outcomes[0][0].response == {"ok": True}
    posts = server.posts()
    assert len(posts) == 4
    assert len({p.content for p in posts}) == 1
    assert all(p.headers["Content-Encoding"] == "gzip" for p in posts)
    assert 2.0 <= clock.sleeps[-1] <= 3.0  # the widened interval (2 s) past Retry-After, + 50 %
    assert exporter.stats.retried == 3


# --- preflight -----------------------------------------------------------------------


async def test_preflight_runs_once(exporter, server, make_event, clock) -> None:
    for _ in range(3):
        await exporter.export(
            batch_of(ConversationBatch("c", [make_event.question()], {})), clock.now + 60
        )
    assert [r.url.path for r in server.requests].count("/api/me/") == 1
    assert exporter.capabilities == {"gzip-ingest"}
    assert exporter.environments == {"production", "development"}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ConnectError("down"),
        httpx.Response(404),
        httpx.Response(500),
        httpx.Response(200, json={"capabilities": "gzip-ingest"}),
    ],
)
async def test_preflight_never_fatal(exporter, server, make_event, clock, answer) -> None:
    server.me = answer
    conv = ConversationBatch("c", [make_event.question("z" * 9000)], {})
    out = await exporter.export(batch_of(conv), clock.now + 60)
    assert out[0][0].ok
    assert "Content-Encoding" not in server.posts()[0].headers


# --- rejections -----------------------------------------------------------------------


async def test_per_block_400_drops_only_named_blocks(exporter, server, make_event, clock) -> None:
    convs = [
        ConversationBatch(cid, [make_event.question(cid=cid), make_event.answer(cid=cid)], {})
        for cid in ("chat-a", "chat-bad", "chat-c")
    ]
    server.script = [
        httpx.Response(
            400,
            json={
                "detail": "Invalid ingest payload.",
                "conversations": [
                    {
                        "index": 1,
                        "conversation_id": "chat-bad",
                        "errors": {"environment": ["Unknown environment 'staging'."]},
                    }
                ],
                "truncated": False,
            },
        ),
        httpx.Response(201, json={"accepted": 2}),
    ]
    out = await exporter.export(Batch(convs), clock.now + 60)
    assert [o.ok for o in out[0]] == [True, True]
    assert [o.ok for o in out[2]] == [True, True]
    assert all(o.drop_reason == "rejected" for o in out[1])
    assert "Unknown environment 'staging'." in (out[1][0].error or "")
    first, second = (body_of(r) for r in server.posts())
    assert [b["conversation_id"] for b in first["conversations"]] == [
        "chat-a",
        "chat-bad",
        "chat-c",
    ]
    assert [b["conversation_id"] for b in second["conversations"]] == ["chat-a", "chat-c"]
    assert out[0][0].response == {"accepted": 2}
    assert exporter.stats.last_error is not None


async def test_400_without_blocks_rejects_batch(exporter, server, make_event, clock) -> None:
    server.script = [httpx.Response(400, json={"detail": "bad shape"})]
    convs = [ConversationBatch(c, [make_event.question(cid=c)], {}) for c in ("a", "b")]
    out = await exporter.export(Batch(convs), clock.now + 60)
    assert [o.drop_reason for r in out for o in r] == ["rejected", "rejected"]
    assert len(server.posts()) == 1


def test_rejected_blocks_matching() -> None:
    blocks = [{"conversation_id": "a"}, {"conversation_id": "b"}]
    assert rejected_blocks({"conversations": [{"index": 1}]}, blocks) == {1: "HTTP 400: rejected"}
    assert list(
        rejected_blocks({"conversations": [{"index": 0, "conversation_id": "b"}]}, blocks)
    ) == [1]
    assert rejected_blocks({"conversations": [{"conversation_id": "zzz"}]}, blocks) == {}
    assert rejected_blocks({"detail": "x"}, blocks) == {}
    assert rejected_blocks(["x"], blocks) == {}


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failure_logged_once_without_key(
    make_settings, stats, make_event, clock, caplog, api_key, status
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"detail": f"Invalid key {api_key}"})

    exp = IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(handler),
        sleep=clock.sleep,
        clock=clock,
    )
    errors: list[BaseException | None] = []
    for _ in range(2):
        out = await exp.export(
            batch_of(ConversationBatch("c", [make_event.question()], {})), clock.now + 60
        )
        assert out[0][0].drop_reason == "rejected"
        errors.append(out[0][0].exception)
    assert len(seen) == 3  # preflight + one POST per batch, no retries
    refused = [r for r in caplog.records if "refused the API key" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].levelno == logging.ERROR
    assert api_key not in caplog.text
    assert api_key[4:20] not in caplog.text
    assert api_key not in str(stats.last_error)
    assert all(e is not None for e in errors)
    assert all(api_key not in str(e) for e in errors)


async def test_retries_exhausted(make_settings, stats, server, make_event, clock) -> None:
    server.script = [httpx.Response(503)] * 100
    exporter = IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(server.handler),
        sleep=clock.sleep,
        clock=clock,
    )
    out = await exporter.export(
        batch_of(ConversationBatch("c", [make_event.question()], {})), clock.now + 10
    )
    assert out[0][0].drop_reason == "retries_exhausted"
    assert "HTTP 503" in (out[0][0].error or "")
    assert getattr(out[0][0].exception, "status_code", None) == 503
    assert clock.now < 1000 + 10 + 1


# --- the body -----------------------------------------------------------------------


async def test_export_body_is_the_encoded_payload(exporter, server, make_event, clock) -> None:
    events = [make_event.question(f"q{i} é") for i in range(300)]
    conv = ConversationBatch("c", events, {})
    await exporter.export(batch_of(conv), clock.now + 60)
    [post] = server.posts()
    sent = gzip.decompress(post.content)
    assert sent == encode_payload([build_block(conv, exporter.otel)])  # byte for byte
    assert len(json.loads(sent)["conversations"][0]["spans"]) == 300


async def test_environment_filtered_by_preflight(exporter, server, make_event, clock) -> None:
    convs = [
        ConversationBatch(cid, [make_event.question(cid=cid)], {"environment": env})
        for cid, env in (("known", "production"), ("unknown", "staging"))
    ]
    out = await exporter.export(Batch(convs), clock.now + 60)
    assert all(o.ok for row in out for o in row)
    known, unknown = body_of(server.posts()[0])["conversations"]
    assert known["environment"] == "production"
    assert "environment" not in unknown
    assert "agentsight.conversation.environment" not in unknown["spans"][0]["attributes"]


async def test_an_unencodable_block_is_dropped_alone(make_settings, stats, server, clock) -> None:
    exporter = IngestExporter(
        make_settings(),
        stats,
        transport=httpx.MockTransport(server.handler),
        sleep=clock.sleep,
        clock=clock,
    )
    # validation refuses lone surrogates when tracked; a bug must not sink the batch
    bad = Event(
        ev_mod.QUESTION, "bad", 1_795_000_000 * 10**9, ev_mod.next_seq(), {"content": "\ud800"}, 1
    )
    good = Event(
        ev_mod.QUESTION, "good", 1_795_000_000 * 10**9, ev_mod.next_seq(), {"content": "ok"}, 1
    )
    out = await exporter.export(
        Batch([ConversationBatch("bad", [bad], {}), ConversationBatch("good", [good], {})]),
        clock.now + 60,
    )
    assert out[0][0].ok is False
    assert out[0][0].drop_reason == "rejected"
    assert out[1][0].ok is True
    [post] = server.posts()
    assert [b["conversation_id"] for b in body_of(post)["conversations"]] == ["good"]
    assert out[0][0].exception is not None  # what the flusher hands on_error


async def test_one_batch_builds_at_a_time_while_several_are_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Building is CPU only: batches in flight together take turns building, so that
    each turn of the event loop holds one slice of one batch, not one of each."""
    import asyncio

    from agentsight_async import AsyncConversationTracker
    from agentsight_async._exporters import _ingest, _spans
    from agentsight_collector import LocalCollector

    monkeypatch.setattr(_ingest, "SLICE_SECONDS", 0.0)  # yield at every slice check
    building: set[object] = set()
    most = [0]
    exports = [0]
    real_init, real_encode = _spans.BlockEncoder.__init__, _ingest.encode_payload

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        building.add(asyncio.current_task())
        most[0] = max(most[0], len(building))
        real_init(self, *args, **kwargs)

    def encode(blocks: Any) -> bytes:
        building.discard(asyncio.current_task())
        exports[0] += 1
        return real_encode(blocks)

    monkeypatch.setattr(_spans.BlockEncoder, "__init__", init)
    monkeypatch.setattr(_ingest, "encode_payload", encode)
    with LocalCollector(dev=True) as collector:
        async with AsyncConversationTracker(
            endpoint=collector.url, batch_size=40, max_concurrency=4
        ) as tracker:
            for c in range(8):
                for i in range(40):
                    await tracker.track_human_message(f"m{i}", conversation_id=f"c{c}")
            result = await tracker.flush(timeout=20)
    assert result.delivered == 320
    assert exports[0] >= 8  # several batches (up to four in flight at once)
    assert most[0] == 1
