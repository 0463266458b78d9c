"""The one span encoder: its JSON, decoded, against the §3.3-§4 mapping for every kind.

Expected spans are written out here field by field from the protocol reference
(``AGENTSIGHT_PROTOCOL.md`` §3.3 span object, §3.4 kinds, §4 mapping), with
times and ids computed independently of the SDK's helpers.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from agentsight_async import _events as ev_mod
from agentsight_async._events import ConversationBatch, Event, span_id
from agentsight_async._exporters._spans import (
    BlockEncoder,
    EncodeError,
    action_window,
    build_block,
    derived_span_id,
    encode_payload,
    otel_template,
)
from agentsight_async._version import __version__

OTEL = otel_template("instance-1")


def iso(ns: int) -> str:
    """ISO-8601 UTC as the clients send it, computed with datetime (not the SDK's helper)."""
    dt = datetime.fromtimestamp(ns // 10**9, timezone.utc).replace(microsecond=ns // 1000 % 10**6)
    return dt.isoformat()


def own_trace(ns: int, sid: str) -> str:
    return f"{ns:016x}{sid}"


def encoded(conv: ConversationBatch, **kw: Any) -> dict[str, Any]:
    """The block as the server receives it: encoded, then parsed."""
    payload = json.loads(encode_payload([build_block(conv, OTEL, **kw)]))
    assert payload["sdk"] == {"name": "agentsight-async", "version": __version__}
    assert len(payload["conversations"]) == 1
    block: dict[str, Any] = payload["conversations"][0]
    return block


def expected_span(
    sid: str,
    trace: str,
    kind: str,
    name: str,
    start_ns: int,
    end_ns: int,
    attrs: dict[str, Any],
    conv_attrs: dict[str, Any],
    *,
    status: str = "unset",
    parent: str | None = None,
    events: list[dict[str, Any]] | None = None,
    status_description: str | None = None,
) -> dict[str, Any]:
    """A span object per §3.3: every key, the common attributes first."""
    otel = dict(OTEL)
    if status_description is not None:
        otel["status_description"] = status_description
    return {
        "span_id": sid,
        "trace_id": trace,
        "parent_span_id": parent,
        "kind": kind,
        "name": name,
        "started_at": iso(start_ns),
        "ended_at": iso(end_ns),
        "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        "status": status,
        "attributes": {
            **conv_attrs,
            "agentsight.span.kind": kind,
            "agentsight.entity.name": name,
            **attrs,
        },
        "events": events or [],
        "otel": otel,
    }


def message_turn(ev: Event, sender: str, content: str, conv_attrs: dict[str, Any], **meta: Any):
    sid = span_id(ev)
    message = {"agentsight.message.sender": sender, "agentsight.message.content": content}
    if meta:
        message["agentsight.message.metadata"] = json.dumps(meta["metadata"], ensure_ascii=False)
    return expected_span(
        sid,
        own_trace(ev.ts_ns, sid),
        "turn",
        "message",
        ev.ts_ns,
        ev.ts_ns,
        {"agentsight.turn.id": sid, "agentsight.turn.complete": True},
        conv_attrs,
        status="ok",
        events=[{"name": "agentsight.message", "timestamp": iso(ev.ts_ns), "attributes": message}],
    )


TRICKY = ["é ü 日本 🎉", 'q"uo\\te', "ctl\x00\x01\x1f\x7f\n\t\r", "\u2028\u2029", "x" * 17_000, ""]


def test_messages_and_conversation_fields(make_event) -> None:
    fields = {
        "customer_id": "cust-42",
        "customer_ip_address": "203.0.113.9",
        "device": "mobile",
        "source": "web",
        "language": "en",
        "name": "Support «Chat»",
        "environment": "production",
        "metadata": {"plan": "pro", "ü": [1, 2.5, None, True], "big": 10**40},
    }
    events = [make_event.question(text) for text in TRICKY]
    events.append(make_event.answer("done", metadata={"model": "gpt", "é": "日本"}))
    block = encoded(ConversationBatch("chat-ü", events, fields))

    conv_attrs = {
        "agentsight.conversation.id": "chat-ü",
        "agentsight.conversation.customer_id": "cust-42",
        "agentsight.conversation.customer_ip": "203.0.113.9",
        "agentsight.conversation.device": "mobile",
        "agentsight.conversation.source": "web",
        "agentsight.conversation.language": "en",
        "agentsight.conversation.name": "Support «Chat»",
        "agentsight.conversation.environment": "production",
        "agentsight.conversation.metadata": json.dumps(fields["metadata"], ensure_ascii=False),
    }
    expected = [
        message_turn(ev, "end_user", text, conv_attrs)
        for ev, text in zip(events[:-1], TRICKY, strict=True)
    ]
    expected.append(
        message_turn(
            events[-1], "agent", "done", conv_attrs, metadata={"model": "gpt", "é": "日本"}
        )
    )
    assert block == {"conversation_id": "chat-ü", **fields, "spans": expected}
    assert block["metadata"]["big"] == 10**40  # beyond 64 bits, still a number


def test_a_plain_message_queued_as_text_encodes_like_its_dict(make_event) -> None:
    """The tracker queues a plain message as its text (``Event.raw``); the span is the same.

    The conversation's values carry ``%`` characters: the message template is
    a ``%`` format, so what the block shares must be escaped in it.
    """
    fields = {"name": "100% «sure» %s %d %%", "metadata": {"k%s": "%(x)s"}}
    as_dicts = [make_event.question(text) for text in TRICKY]
    as_dicts.append(make_event.answer("done %s"))
    as_text = [
        Event(e.kind, e.conversation_id, e.ts_ns, e.seq, e.data["content"], e.size)
        for e in as_dicts
    ]
    assert all(type(e.raw) is str for e in as_text)
    block = encoded(ConversationBatch("c%s", as_text, fields))
    assert block == encoded(ConversationBatch("c%s", as_dicts, fields))
    senders = [s["events"][0]["attributes"]["agentsight.message.sender"] for s in block["spans"]]
    assert senders == ["end_user"] * len(TRICKY) + ["agent"]
    assert block["spans"][0]["attributes"]["agentsight.conversation.name"] == fields["name"]
    # the dict is built only when asked for, and is what the tracker used to queue
    assert type(as_text[-1].raw) is str
    assert as_text[-1].data == {"content": "done %s", "sender": "agent", "metadata": {}}
    assert type(as_text[-1].raw) is dict


def test_action_with_times_joins_the_turn(make_event) -> None:
    q = make_event.question("refund please")
    act = make_event(
        ev_mod.ACTION,
        action_name="refund",
        started_at="2025-06-01T10:00:00+00:00",
        ended_at="2025-06-01T10:00:01.250000+00:00",
        duration_ms=1250,
        tools_used={"api": {"id": 1}, "ü": "日本"},
        response="queued",
        error_msg="refund service down",
        metadata={"m": 1},
    )
    block = encoded(ConversationBatch("c", [q, act], {}))
    conv_attrs = {"agentsight.conversation.id": "c"}
    turn = message_turn(q, "end_user", "refund please", conv_attrs)
    start = 1_748_772_000 * 10**9
    tool = expected_span(
        span_id(act),
        turn["trace_id"],
        "tool",
        "refund",
        start,
        start + 1_250_000_000,
        {
            "agentsight.turn.id": span_id(q),
            "agentsight.tool.name": "refund",
            "agentsight.tool.arguments": json.dumps(
                {"api": {"id": 1}, "ü": "日本"}, ensure_ascii=False
            ),
            "agentsight.tool.response": "queued",
            "agentsight.tool.error": "refund service down",
            "agentsight.metadata": json.dumps({"m": 1}),
        },
        conv_attrs,
        status="error",
        parent=span_id(q),
        status_description="refund service down",
    )
    assert tool["duration_ms"] == 1250.0
    # sorted by start: the action started long before the message
    assert block["spans"] == [tool, turn]


def test_action_without_turn_is_top_level_at_its_tracking_time(make_event) -> None:
    act = make_event(ev_mod.ACTION, action_name="lookup", duration_ms=12.5, metadata={})
    [span] = encoded(ConversationBatch("c", [act], {}))["spans"]
    assert span == expected_span(
        span_id(act),
        own_trace(act.ts_ns, span_id(act)),
        "tool",
        "lookup",
        act.ts_ns,
        act.ts_ns + 12_500_000,
        {"agentsight.tool.name": "lookup"},
        {"agentsight.conversation.id": "c"},
        status="ok",
    )
    assert span["duration_ms"] == 12.5


TS = 1_700_000_010_000_000_000  # 10 s after 1_700_000_000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, (TS, TS)),
        ({"duration_ms": 1500}, (TS, TS + 1_500_000_000)),
        ({"started_at": "2023-11-14T22:13:20+00:00"}, (1_700_000_000 * 10**9, TS)),
        (
            {"started_at": "2023-11-14T22:13:20Z", "duration_ms": 250},
            (1_700_000_000 * 10**9, 1_700_000_000 * 10**9 + 250_000_000),
        ),
        (
            {"ended_at": "2023-11-14T22:13:21+00:00", "duration_ms": 1000},
            (1_700_000_000 * 10**9, 1_700_000_001 * 10**9),
        ),
        (
            {"started_at": "2023-11-14T22:13:25+00:00", "ended_at": "2023-11-14T22:13:21+00:00"},
            (1_700_000_005 * 10**9, 1_700_000_005 * 10**9),
        ),
    ],
)
def test_action_window(data: dict[str, Any], expected: tuple[int, int]) -> None:
    assert action_window(data, TS) == expected


def test_token_usage_is_an_llm_span(make_event) -> None:
    a = make_event.answer("hi")
    full = make_event(
        ev_mod.TOKEN_USAGE,
        prompt_tokens=130,
        completion_tokens=35,
        total_tokens=165,
        embedding_tokens=8,
        model="gpt-4o-mini",
        system="openai",
    )
    bare = make_event(ev_mod.TOKEN_USAGE, prompt_tokens=3, completion_tokens=0, total_tokens=3)
    spans = encoded(ConversationBatch("c", [a, full, bare], {}))["spans"]
    conv_attrs = {"agentsight.conversation.id": "c"}
    in_turn = {"agentsight.turn.id": span_id(a)}
    trace = own_trace(a.ts_ns, span_id(a))
    assert spans[1:] == [
        expected_span(
            span_id(full),
            trace,
            "llm",
            "gpt-4o-mini",
            full.ts_ns,
            full.ts_ns,
            {
                **in_turn,
                "gen_ai.system": "openai",
                "gen_ai.usage.input_tokens": 130,
                "gen_ai.usage.output_tokens": 35,
                "gen_ai.request.model": "gpt-4o-mini",
                "agentsight.llm.embedding_tokens": 8,
            },
            conv_attrs,
            parent=span_id(a),
        ),
        expected_span(
            span_id(bare),
            trace,
            "llm",
            "unknown",
            bare.ts_ns,
            bare.ts_ns,
            {
                **in_turn,
                "gen_ai.system": "unknown",
                "gen_ai.usage.input_tokens": 3,
                "gen_ai.usage.output_tokens": 0,
            },
            conv_attrs,
            parent=span_id(a),
        ),
    ]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ({"button_event": "satisfaction", "label": "Yes", "value": "yes"}, "Yes"),
        ({"button_event": "satisfaction", "label": None, "value": "yes"}, "satisfaction"),
        ({"button_event": None, "label": None, "value": None}, "button"),
    ],
)
def test_button_span(make_event, data: dict[str, Any], name: str) -> None:
    ev = make_event(ev_mod.BUTTON, metadata={"position": 1}, **data)
    [span] = encoded(ConversationBatch("c", [ev], {}))["spans"]
    assert span == expected_span(
        span_id(ev),
        own_trace(ev.ts_ns, span_id(ev)),
        "button",
        name,
        ev.ts_ns,
        ev.ts_ns,
        {
            "agentsight.button.event": data["button_event"],
            "agentsight.button.label": data["label"],
            "agentsight.button.value": data["value"],
            "agentsight.metadata": '{"position": 1}',
        },
        {"agentsight.conversation.id": "c"},
    )


def files_attr(*files: tuple[str, int, str]) -> str:
    return json.dumps([{"filename": f, "size": s, "mime_type": m} for f, s, m in files])


@pytest.mark.parametrize("uploaded", [True, False])
def test_standalone_attachments(make_event, uploaded: bool) -> None:
    ev = make_event(
        ev_mod.ATTACHMENTS,
        sender="agent",
        metadata={"k": "v"},
        attachments=[
            {"filename": "r.csv", "mime_type": "text/csv", "data": b"a,b\n1,2\n"},
            {"filename": "n.txt", "mime_type": "text/plain", "data": "aGk="},
        ],
    )
    [span] = encoded(ConversationBatch("c", [ev], {}), uploaded=frozenset({0} if uploaded else ()))[
        "spans"
    ]
    attrs: dict[str, Any] = {"agentsight.attachment.sender": "agent"}
    if uploaded:
        attrs["agentsight.attachment.mode"] = "base64"
    attrs["agentsight.attachment.count"] = 2
    attrs["agentsight.attachment.files"] = files_attr(
        ("r.csv", 8, "text/csv"), ("n.txt", 2, "text/plain")
    )
    attrs["agentsight.metadata"] = '{"k": "v"}'
    assert span == expected_span(
        span_id(ev),
        own_trace(ev.ts_ns, span_id(ev)),
        "attachment",
        "2 attachment(s)",
        ev.ts_ns,
        ev.ts_ns,
        attrs,
        {"agentsight.conversation.id": "c"},
    )


def test_a_message_with_uploaded_files_gets_a_second_span(make_event) -> None:
    atts = [{"filename": "ü.txt", "mime_type": "text/plain", "data": "aGk="}]
    msg = make_event.answer("see file", attachments=atts)
    conv = ConversationBatch("c", [msg], {})
    conv_attrs = {"agentsight.conversation.id": "c"}
    turn = message_turn(msg, "agent", "see file", conv_attrs)
    asid = derived_span_id(span_id(msg), "attachments")
    at = msg.ts_ns + 1000  # one microsecond later: listed after its message
    files = expected_span(
        asid,
        own_trace(at, asid),
        "attachment",
        "1 attachment(s)",
        at,
        at,
        {
            "agentsight.attachment.sender": "agent",
            "agentsight.attachment.mode": "base64",
            "agentsight.attachment.count": 1,
            "agentsight.attachment.files": json.dumps(
                [{"filename": "ü.txt", "size": 2, "mime_type": "text/plain"}], ensure_ascii=False
            ),
        },
        conv_attrs,
    )
    assert len(asid) == 16
    assert asid != span_id(msg)
    assert encoded(conv, uploaded=frozenset({0}))["spans"] == [turn, files]
    # files that did not reach the server are not described
    assert encoded(conv)["spans"] == [turn]


@pytest.mark.parametrize(
    ("opened", "name"), [(False, "conversation"), (True, "conversation_opened")]
)
def test_conversation_spans(make_event, opened: bool, name: str) -> None:
    ev = make_event.conversation(opened=opened, name="Widget", customer_id=None)
    block = encoded(ConversationBatch("chat-1", [ev], {}))
    conv_attrs = {"agentsight.conversation.id": "chat-1", "agentsight.conversation.name": "Widget"}
    assert block == {
        "conversation_id": "chat-1",
        "name": "Widget",
        "spans": [
            expected_span(
                span_id(ev),
                own_trace(ev.ts_ns, span_id(ev)),
                "conversation",
                name,
                ev.ts_ns,
                ev.ts_ns,
                {},
                conv_attrs,
            )
        ],
    }


def test_block_fields_later_wins_tracker_last_empty_metadata_kept(make_event) -> None:
    first = make_event.conversation(name="Old", device="web", metadata={"a": 1})
    second = make_event.conversation(name="New", customer_ip_address="203.0.113.9")
    conv = ConversationBatch(
        "c", [first, second, make_event.question()], {"language": "en", "metadata": {}}
    )
    block = encoded(conv)
    assert {k: v for k, v in block.items() if k != "spans"} == {
        "conversation_id": "c",
        "customer_ip_address": "203.0.113.9",
        "device": "web",
        "language": "en",
        "name": "New",
        "metadata": {},  # sent deliberately: "clear"
    }
    attrs = block["spans"][-1]["attributes"]
    assert attrs["agentsight.conversation.customer_ip"] == "203.0.113.9"
    assert attrs["agentsight.conversation.metadata"] == "{}"
    assert "agentsight.conversation.customer_id" not in attrs


def test_environment_filtered_by_what_the_backend_listed(make_event) -> None:
    conv = ConversationBatch("c", [make_event.question()], {"environment": "staging"})
    dropped = encoded(conv, allowed_environments=frozenset({"production"}))
    assert "environment" not in dropped
    assert "agentsight.conversation.environment" not in dropped["spans"][0]["attributes"]
    kept = encoded(conv, allowed_environments=frozenset({"production", "staging"}))
    assert kept["environment"] == "staging"
    assert kept["spans"][0]["attributes"]["agentsight.conversation.environment"] == "staging"
    assert encoded(conv)["environment"] == "staging"  # nothing learned: leave it alone


def test_spans_sorted_by_start_microsecond_stably(make_event) -> None:
    a = make_event.question("a")
    same_us = Event(ev_mod.ANSWER, "c", a.ts_ns + 999, ev_mod.next_seq(), {"content": "b"}, 1)
    earlier = make_event(ev_mod.ACTION, action_name="x", started_at="2020-01-01T00:00:00Z")
    spans = encoded(ConversationBatch("c", [a, same_us, earlier], {}))["spans"]
    assert [s["span_id"] for s in spans] == [span_id(earlier), span_id(a), span_id(same_us)]
    assert spans[1]["started_at"] == spans[2]["started_at"]


def test_skip_ids_deterministic_one_turn_per_message(make_event) -> None:
    events = [make_event.question(), make_event.answer(), make_event.question("left out")]
    conv = ConversationBatch("c", events, {})
    one = encode_payload([build_block(conv, OTEL, skip=frozenset({2}))])
    two = encode_payload([build_block(conv, OTEL, skip=frozenset({2}))])
    assert one == two  # byte for byte: a retry or a replay sends the same spans
    spans = json.loads(one)["conversations"][0]["spans"]
    assert [s["span_id"] for s in spans] == [span_id(events[0]), span_id(events[1])]
    assert spans[0]["trace_id"] != spans[1]["trace_id"]


def test_several_blocks_in_one_payload(make_event) -> None:
    blocks = [
        build_block(ConversationBatch(cid, [make_event.question(cid=cid)], {}), OTEL)
        for cid in ("a", "b")
    ]
    payload = json.loads(encode_payload(blocks))
    assert [b["conversation_id"] for b in payload["conversations"]] == ["a", "b"]


def test_unknown_kind_and_unencodable_text_fail_loudly(make_event) -> None:
    encoder = BlockEncoder(ConversationBatch("c", [], {}), OTEL)
    with pytest.raises(ValueError, match="unknown event kind"):
        encoder.add(0, make_event("mystery"))
    conv = ConversationBatch("c", [make_event.question("\ud800")], {})
    with pytest.raises(EncodeError):
        encode_payload([build_block(conv, OTEL)])
