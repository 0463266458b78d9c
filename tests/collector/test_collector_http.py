"""The HTTP surface: routes, statuses, auth, limits, encodings."""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_support import AUTH, KEY, OTHER_KEY

from agentsight_collector import LocalCollector


def _raw_request(collector: LocalCollector, request_line: str, body: bytes) -> bytes:
    """Send a request byte for byte (httpx would normalise ``//api``)."""
    head = (
        f"{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# -- auth ----------------------------------------------------------------------------

WRITE_ROUTES = [
    "/api/conversations/",
    "/api/track/",
    "/api/action_logs/",
    "/api/buttons/",
    "/api/attachments/",
    "/api/conversation-feedbacks/",
    "/api/feedbacks/",
]


BAD_AUTH = [None, f"Api-Key {OTHER_KEY}", f"Bearer {KEY}", "Api-Key", KEY, f"Api-Key {KEY}x"]


def test_missing_or_wrong_key_is_401_with_challenge(collector: LocalCollector) -> None:
    anon = httpx.Client(base_url=collector.url, timeout=10)
    for path in WRITE_ROUTES:
        for auth in BAD_AUTH:
            headers = {"Authorization": auth} if auth else {}
            r = anon.post(path, json={"conversation_id": "x"}, headers=headers)
            assert r.status_code == 401, (path, auth)
            assert r.headers["www-authenticate"] == "Api-Key"
            assert isinstance(r.json()["detail"], str)
    anon.close()
    assert collector.storage.lookup("x") is None


READ_ROUTES = [
    "/api/me/",
    "/api/conversations/",
    "/api/conversations/1/",
    "/api/conversations/1/attachments/",
    "/api/attachment-files/1/",
    "/api/conversations/lookup/?conversation_id=x",
]


def test_reads_need_a_key_too(collector: LocalCollector) -> None:
    for path in READ_ROUTES:
        r = httpx.get(collector.url + path, headers={"Authorization": f"Api-Key {OTHER_KEY}"})
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Api-Key"


def test_ingest_refuses_bad_keys_with_403(collector: LocalCollector) -> None:
    for auth in BAD_AUTH:
        headers = {"Authorization": auth} if auth else {}
        r = httpx.post(collector.url + "/api/ingest/", json={"conversations": []}, headers=headers)
        assert r.status_code == 403, auth
        assert "www-authenticate" not in r.headers
        assert isinstance(r.json()["detail"], str)


def test_several_keys_and_dev_mode(tmp_path: Path) -> None:
    with LocalCollector(tmp_path / "k.db", api_keys=[KEY, OTHER_KEY]) as c:
        for key in (KEY, OTHER_KEY):
            r = httpx.get(c.url + "/api/me/", headers={"Authorization": f"Api-Key {key}"})
            assert r.status_code == 200
    with LocalCollector(tmp_path / "dev.db", dev=True) as c:
        any_key = "ags_" + "a" * 32 + "_" + "B" * 6  # any well-formed key, any case
        ok = httpx.get(c.url + "/api/me/", headers={"Authorization": f"Api-Key {any_key}"})
        assert ok.status_code == 200
        bad = httpx.get(c.url + "/api/me/", headers={"Authorization": "Api-Key not-a-key"})
        assert bad.status_code == 401


def test_healthz_needs_no_key(collector: LocalCollector) -> None:
    r = httpx.get(collector.url + "/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_me_advertises_gzip_and_write_role(client: httpx.Client) -> None:
    me = client.get("/api/me/").json()
    assert me["role"] == "write"
    assert me["capabilities"] == ["gzip-ingest"]
    assert [e["slug"] for e in me["environments"]] == ["production", "development"]


# -- routing -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/track", "/api/ingest", "/api/conversations"])
def test_missing_trailing_slash_is_404_not_a_redirect(client: httpx.Client, path: str) -> None:
    r = client.post(path, json={})
    assert r.status_code == 404
    assert r.json() == {"detail": "Not found."}


def test_leading_double_slash_is_accepted(collector: LocalCollector) -> None:
    body = json.dumps({"conversation_id": "slash-test", "is_used": False}).encode()
    answer = _raw_request(collector, "POST //api/conversations/ HTTP/1.1", body)
    assert answer.startswith(b"HTTP/1.1 201")
    assert collector.storage.lookup("slash-test") is not None


def test_wrong_method_is_405(client: httpx.Client) -> None:
    assert client.get("/api/track/").status_code == 405


# -- bodies and statuses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "JSON parse error"),
        (b"", "empty"),
        (b"[1, 2]", "Expected a JSON object"),
        (b'{"a": NaN}', "NaN"),
        (b"\xff\xfe", "JSON parse error"),
    ],
)
def test_malformed_json_is_400_with_a_useful_detail(
    client: httpx.Client, body: bytes, fragment: str
) -> None:
    for path in ("/api/track/", "/api/ingest/"):
        r = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        assert fragment in r.json()["detail"]


def test_json_bodies_the_standard_parser_accepts_stay_accepted(client: httpx.Client) -> None:
    # A UTF-8 byte order mark: refused by the fast parser, accepted by json.loads as before.
    body = b"\xef\xbb\xbf" + json.dumps({"conversation_id": "bom"}).encode()
    r = client.post("/api/conversations/", content=body)
    assert r.status_code == 201
    assert r.json()["conversation_id"] == "bom"


def test_field_errors_are_drf_shaped_with_string_messages(client: httpx.Client) -> None:
    r = client.post("/api/track/", json={"conversation_id": "c", "sender": "robot", "content": 5})
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"content", "sender"}
    assert all(isinstance(m, str) for msgs in body.values() for m in msgs)


def test_writes_answer_201_with_an_id(client: httpx.Client) -> None:
    conv = client.post("/api/conversations/", json={"conversation_id": "c", "name": "N"})
    assert conv.status_code == 201
    pk = conv.json()["id"]
    items = [
        ("/api/track/", {"content": "hi", "sender": "end_user"}),
        ("/api/action_logs/", {"action_name": "a", "error_msg": "boom", "duration_ms": 3}),
        ("/api/buttons/", {"button_event": "e", "label": "l", "value": "v"}),
        (
            "/api/attachments/",
            {
                "attachments": [{"filename": "f", "mime_type": "text/plain", "data": "Zg=="}],
                "mode": "base64",
            },
        ),
        ("/api/conversation-feedbacks/", {"sentiment": "neutral"}),
        ("/api/feedbacks/", {"kind": "conversation", "sentiment": "positive"}),
    ]
    for path, body in items:
        r = client.post(path, json={**body, "conversation_id": "c", "conversation": pk})
        assert r.status_code == 201, (path, r.text)
        assert isinstance(r.json()["id"], int)
    again = client.post("/api/conversations/", json={"conversation_id": "c"})
    assert again.json()["id"] == pk  # upsert
    lookup = client.get("/api/conversations/lookup/", params={"conversation_id": "c"})
    assert lookup.json()["id"] == pk
    missing = client.get("/api/conversations/lookup/", params={"conversation_id": "nope"})
    assert missing.status_code == 404
    detail = client.get(f"/api/conversations/{pk}/").json()
    action = next(i for i in detail["transcript"] if i["type"] == "action")
    assert (action["status"], action["error_msg"]) == ("error", "boom")
    assert client.get("/api/conversations/999999/").status_code == 404


def test_invalid_base64_attachment_is_400(client: httpx.Client) -> None:
    r = client.post(
        "/api/attachments/",
        json={
            "conversation_id": "c",
            "attachments": [{"filename": "f", "mime_type": "text/plain", "data": "not base64!"}],
        },
    )
    assert r.status_code == 400
    assert "attachments" in r.json()


def test_multipart_variants_c_and_d(client: httpx.Client) -> None:
    pk = client.post("/api/conversations/", json={"conversation_id": "mp"}).json()["id"]
    message = client.post(
        "/api/track/",
        json={
            "conversation_id": "mp",
            "content": "see file",
            "sender": "agent",
            "conversation": pk,
        },
    ).json()
    standalone = client.post(
        "/api/attachments/",
        data={
            "timestamp": "2026-01-01T00:00:00+00:00",
            "conversation": str(pk),
            "sender": "agent",
            "mode": "form_data",
            "metadata": '{"k": 1}',
        },
        files=[
            ("attachment_0", ("r.csv", b"a,b\n", "text/csv")),
            ("attachment_1", ("i.bin", b"\x00\x01", "application/octet-stream")),
        ],
    )
    assert standalone.status_code == 201
    assert [f["filename"] for f in standalone.json()["files"]] == ["r.csv", "i.bin"]
    linked = client.post(
        "/api/attachments/",
        data={
            "conversation": "None",
            "sender": "agent",
            "mode": "form_data",
            "metadata": "{}",
            "message": str(message["id"]),
        },
        files=[("attachment_0", ("label.txt", b"LABEL", "application/octet-stream"))],
    )
    assert linked.status_code == 201
    assert linked.json()["message"] == message["id"]
    orphan = client.post(
        "/api/attachments/",
        data={"sender": "agent", "mode": "form_data"},
        files=[("attachment_0", ("x.txt", b"x", "text/plain"))],
    )
    assert orphan.status_code == 400
    assert "conversation" in orphan.json()
    listed = client.get(f"/api/conversations/{pk}/attachments/").json()
    assert listed["count"] == 2
    file_id = listed["results"][0]["files"][1]["id"]
    assert client.get(f"/api/attachment-files/{file_id}/").content == b"\x00\x01"


def test_rest_idempotency_key_over_http(client: httpx.Client) -> None:
    body = {"conversation_id": "idem", "content": "once", "sender": "end_user"}
    headers = {"Idempotency-Key": "0190f3c2-aaaa-7bbb-8ccc-000000000001"}
    first = client.post("/api/track/", json=body, headers=headers)
    second = client.post("/api/track/", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    pk = client.get("/api/conversations/lookup/", params={"conversation_id": "idem"}).json()["id"]
    assert client.get(f"/api/conversations/{pk}/").json()["message_count"] == 1


def test_ingest_per_block_400_body_over_http(client: httpx.Client) -> None:
    span = {"span_id": "ab" * 8, "kind": "turn", "started_at": "2026-01-01T00:00:00+00:00"}
    payload = {
        "conversations": [
            {"conversation_id": "good", "spans": [span]},
            {"conversation_id": "chat-bad", "environment": "staging", "spans": [span]},
        ]
    }
    r = client.post("/api/ingest/", json=payload)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"detail", "conversations", "truncated"}
    assert body["conversations"] == [
        {"index": 1, "conversation_id": "chat-bad", "errors": body["conversations"][0]["errors"]}
    ]
    assert list(body["conversations"][0]["errors"]) == ["environment"]
    assert body["truncated"] is False


def test_ingest_accepts_gzip(client: httpx.Client) -> None:
    span = {
        "span_id": "cd" * 8,
        "kind": "button",
        "started_at": "2026-01-01T00:00:00+00:00",
        "attributes": {"agentsight.button.label": "x" * 20_000},
    }
    raw = json.dumps({"conversations": [{"conversation_id": "gz", "spans": [span]}]}).encode()
    r = client.post(
        "/api/ingest/",
        content=gzip.compress(raw),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 201
    assert r.json()["accepted"] == 1


def test_corrupt_gzip_and_unknown_encoding(client: httpx.Client) -> None:
    bad = client.post(
        "/api/ingest/", content=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert bad.status_code == 400
    truncated = client.post(
        "/api/ingest/",
        content=gzip.compress(b'{"conversations": []}')[:-12],
        headers={"Content-Encoding": "gzip"},
    )
    assert truncated.status_code == 400
    br = client.post("/api/ingest/", content=b"{}", headers={"Content-Encoding": "br"})
    assert br.status_code == 415


# -- limits --------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path):
    with LocalCollector(
        tmp_path / "small.db",
        api_keys=[KEY],
        max_body_bytes=64 * 1024,
        max_decompressed_bytes=256 * 1024,
    ) as c:
        yield c


def test_oversize_body_is_413(small: LocalCollector) -> None:
    big = json.dumps({"conversation_id": "c", "content": "x" * 100_000, "sender": "agent"})
    r = httpx.post(small.url + "/api/track/", content=big, headers=AUTH)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: cut off while streaming
        for _ in range(20):
            yield b"x" * 10_000

    streamed = httpx.post(small.url + "/api/ingest/", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert small.storage.lookup("c") is None


def test_gzip_bomb_is_413_without_inflating_it(small: LocalCollector) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB -> ~64 KiB
    assert len(bomb) < 64 * 1024
    r = httpx.post(
        small.url + "/api/ingest/",
        content=bomb,
        headers={**AUTH, "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert r.status_code == 413
    assert "Decompressed" in r.json()["detail"]


def test_gzip_bomb_against_default_limits(collector: LocalCollector) -> None:
    bomb = gzip.compress(b"\0" * (80 * 1024 * 1024), compresslevel=9)
    r = httpx.post(
        collector.url + "/api/ingest/",
        content=bomb,
        headers={**AUTH, "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert r.status_code == 413


# -- read API ------------------------------------------------------------------------


def test_read_api_pagination_urls_and_filters(client: httpx.Client) -> None:
    for i in range(5):
        client.post(
            "/api/conversations/",
            json={
                "conversation_id": f"p{i}",
                "customer_id": "vip" if i % 2 else "std",
                "timestamp": f"2026-02-0{i + 1}T00:00:00+00:00",
            },
        )
    page = client.get("/api/conversations/", params={"page_size": 2}).json()
    assert page["count"] == 5
    assert page["previous"] is None
    nxt = client.get(page["next"]).json()
    assert [r["conversation_id"] for r in nxt["results"]] == ["p2", "p1"]
    assert client.get(nxt["previous"]).json() == page
    assert client.get("/api/conversations/", params={"customer_id": "vip"}).json()["count"] == 2
    after = client.get(
        "/api/conversations/", params={"started_at_after": "2026-02-04T00:00:00Z"}
    ).json()
    assert {r["conversation_id"] for r in after["results"]} == {"p3", "p4"}
    assert client.get("/api/conversations/", params={"page": 9}).status_code == 404
    assert client.get("/api/conversations/", params={"page_size": "x"}).status_code == 400
    assert (
        client.get("/api/conversations/", params={"started_at_before": "soon"}).status_code == 400
    )


# -- server set-up -------------------------------------------------------------------


def test_local_collector_runs_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentsight_collector import _server

    made: list[object] = []
    real = _server.new_event_loop

    def spy() -> object:
        loop = real()
        made.append(loop)
        return loop

    monkeypatch.setattr(_server, "new_event_loop", spy)
    with LocalCollector(api_keys=[KEY]) as c:
        r = httpx.post(
            c.url + "/api/conversations/", json={"conversation_id": "loop-c"}, headers=AUTH
        )
        assert r.status_code == 201
    assert len(made) == 1
    assert made[0].is_closed()  # type: ignore[attr-defined]
    try:
        import uvloop
    except ImportError:
        return
    assert isinstance(made[0], uvloop.Loop)


def test_write_answers_are_compact_json(collector: LocalCollector) -> None:
    r = httpx.post(
        collector.url + "/api/conversations/", json={"conversation_id": "json-c"}, headers=AUTH
    )
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    assert r.json()["conversation_id"] == "json-c"
    m = httpx.post(
        collector.url + "/api/track/",
        json={"conversation": r.json()["id"], "content": "é", "sender": "agent"},
        headers={**AUTH, "Idempotency-Key": "k-json-1"},
    )
    again = httpx.post(
        collector.url + "/api/track/",
        json={"conversation": r.json()["id"], "content": "é", "sender": "agent"},
        headers={**AUTH, "Idempotency-Key": "k-json-1"},
    )
    assert m.status_code == again.status_code == 201
    assert m.json() == again.json()  # the retried request answers the first answer


def _request(path: str, body: bytes = b"", method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def test_a_response_leaves_in_one_send(
    collector: LocalCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentsight_collector import _server

    sent: list[bytes] = []  # what reaches the real transport, write by write

    class Spy(_server.OneWriteTransport):
        def __init__(self, transport: Any, loop: Any) -> None:
            class Recording:
                def write(self, data: bytes) -> None:
                    sent.append(data)
                    transport.write(data)

                def __getattr__(self, name: str) -> Any:
                    return getattr(transport, name)

            super().__init__(Recording(), loop)  # type: ignore[arg-type]

    monkeypatch.setattr(_server, "OneWriteTransport", Spy)
    with socket.create_connection(("127.0.0.1", collector.port), timeout=10) as sock:
        for i in range(3):  # keep-alive: several requests on one connection
            body = json.dumps({"conversation_id": f"one-send-{i}"}).encode()
            sock.sendall(_request("/api/conversations/", body))
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 201 ")
            head, _, answer = first.partition(b"\r\n\r\n")
            assert json.loads(answer)["conversation_id"] == f"one-send-{i}"  # body came along
        # a response without a body (HEAD) is not held back
        sock.sendall(_request("/healthz", method="HEAD"))
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert head.endswith(b"\r\n\r\n")
    assert len(sent) == 4  # one write per response: head and body together
    assert all(w.startswith(b"HTTP/1.1 201 ") and w.endswith(b"}") for w in sent[:3])


def test_one_write_transport_holds_only_a_head() -> None:
    import asyncio

    from agentsight_collector._server import OneWriteTransport

    class Recording:
        def __init__(self) -> None:
            self.writes: list[bytes] = []
            self.closed = False

        def write(self, data: bytes) -> None:
            self.writes.append(data)

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            self.closed = True

        def get_extra_info(self, name: str) -> str:
            return f"info:{name}"

    loop = asyncio.new_event_loop()
    try:
        inner = Recording()
        t = OneWriteTransport(inner, loop)  # type: ignore[arg-type]
        head = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"
        t.write(head)
        assert inner.writes == []
        t.write(b"{}")
        assert inner.writes == [head + b"{}"]
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")  # no body follows: sent at the end of the turn
        loop.run_until_complete(asyncio.sleep(0))
        assert inner.writes[-1] == b"HTTP/1.1 200 OK\r\n\r\n"
        t.write(b"chunk")  # not a head: straight through
        assert inner.writes[-1] == b"chunk"
        t.write(head)
        t.close()  # a held head goes out before the close
        assert inner.writes[-1] == head
        assert inner.closed
        assert t.get_extra_info("peername") == "info:peername"
        loop.run_until_complete(asyncio.sleep(0))  # the pending flush finds nothing
        assert inner.writes[-1] == head
    finally:
        loop.close()
