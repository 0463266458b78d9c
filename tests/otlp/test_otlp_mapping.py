"""Our OTLP requests, decoded with opentelemetry-proto, against the mapping table (docs/otlp.md).

Every tracked item kind is exported to a real OTLP receiver on loopback and
read back with the official messages: names, span kinds, parent links, trace
ids and attributes - with content capture on and off - and the promises the
turn design makes: the same events give the same spans however the batches
were cut, and no conversation's spans carry another's id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from otlp_support import EventFactory, OtlpReceiver

from agentsight_async._config import Settings
from agentsight_async._events import Batch, ConversationBatch, Event, span_id
from agentsight_async._exporters import create_exporter
from agentsight_async._exporters._otlp_map import Turns, trace_id_of
from agentsight_async._stats import Stats
from agentsight_async._version import __version__

INTERNAL, CLIENT = 1, 3
SHARED = {
    "gen_ai.conversation.id": "chat-1",
    "session.id": "chat-1",
    "user.id": "cust-42",
    "agentsight.conversation.name": "Support",
    "agentsight.conversation.device": "mobile",
    "agentsight.conversation.environment": "production",
}


def scripted(events: EventFactory) -> dict[str, Event]:
    """One of each item kind, in a realistic order."""
    return {
        "conversation": events.conversation(
            customer_id="cust-42", name="Support", device="mobile", environment="production"
        ),
        "question": events.question(
            "Where is my order?",
            metadata={"channel": "web"},
            attachments=[{"filename": "receipt.png", "mime_type": "image/png", "data": "aGk="}],
            attachment_mode="base64",
        ),
        "action": events.action(
            "lookup_order",
            started_at="2026-11-18T10:00:00+00:00",
            duration_ms=25.0,
            tools_used={"order": 12345},
            response="shipped",
        ),
        "usage": events.usage(
            model="gpt-4o", system="openai", cache_read_tokens=4, reasoning_tokens=2
        ),
        "answer": events.answer("It ships tomorrow.", metadata={"confidence": 0.9}),
        "button": events.button(),
        "failure": events.action("refund", error_msg="payment service down"),
        "files": events.files(sender="agent"),
        "bare_usage": events.usage(),
    }


async def export(settings: Settings, batches: list[list[Event]], exporter: Any = None) -> list[Any]:
    """Export each list of events as one batch (conversation blocks in order of appearance)."""
    own = exporter is None
    exporter = exporter or create_exporter(settings, Stats())
    outcomes = []
    try:
        for events in batches:
            convs: dict[str, list[Event]] = {}
            for ev in events:
                convs.setdefault(ev.conversation_id, []).append(ev)
            batch = Batch([ConversationBatch(cid, evs, {}) for cid, evs in convs.items()])
            outcomes.append(await exporter.export(batch, time.monotonic() + 20))
    finally:
        if own:
            await exporter.aclose()
    return outcomes


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["span_id"]: item for item in items}


def sid(ev: Event) -> str:
    return span_id(ev)


def trace(ev: Event) -> str:
    return f"{trace_id_of(ev.seq, ev.ts_ns):032x}"


async def test_every_item_kind_maps_as_the_table_says(
    receiver: OtlpReceiver, make_settings: Callable[..., Settings], events: EventFactory
) -> None:
    evs = scripted(events)
    settings = make_settings(
        api_endpoint=receiver.url,
        otlp_capture_content=True,
        service_name="support-bot",
        otlp_agent_name="Helper",
    )
    [outcomes] = await export(settings, [list(evs.values())])
    assert all(o.ok for row in outcomes for o in row)
    spans = by_id(receiver.spans())
    logs = receiver.logs()
    assert len(spans) == 7
    assert len(logs) == 3

    q = evs["question"]
    turn = spans[sid(q)]
    assert (turn["name"], turn["kind"], turn["parent"]) == ("invoke_agent Helper", INTERNAL, None)
    assert turn["trace_id"] == trace(q) == f"{q.ts_ns:016x}{sid(q)}"
    assert turn["start"] == turn["end"] == q.ts_ns
    attrs = turn["attributes"]
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.name"] == "Helper"
    assert attrs["agentsight.attachment.count"] == 1
    assert json.loads(attrs["agentsight.metadata"]) == {"channel": "web"}
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Where is my order?"},
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "name": "receipt.png",
                    "content": "aGk=",
                },
            ],
        }
    ]

    def child(name: str, kind: int, ev: Event) -> dict[str, Any]:
        span = spans[sid(ev)]
        assert (span["name"], span["kind"]) == (name, kind)
        assert span["parent"] == sid(q)
        assert span["trace_id"] == trace(q)
        return span

    tool = child("execute_tool lookup_order", INTERNAL, evs["action"])
    assert tool["end"] - tool["start"] == 25_000_000
    assert tool["attributes"]["gen_ai.operation.name"] == "execute_tool"
    assert tool["attributes"]["gen_ai.tool.name"] == "lookup_order"
    assert json.loads(tool["attributes"]["gen_ai.tool.call.arguments"]) == {"order": 12345}
    assert tool["attributes"]["gen_ai.tool.call.result"] == "shipped"
    assert tool["status"] == 0

    chat = child("chat gpt-4o", CLIENT, evs["usage"])
    assert {k: v for k, v in chat["attributes"].items() if k.startswith("gen_ai.")} == {
        **{k: v for k, v in SHARED.items() if k.startswith("gen_ai.")},
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10,  # every input token: the 4 read from the cache too
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gen_ai.usage.reasoning.output_tokens": 2,
    }
    bare = child("chat", CLIENT, evs["bare_usage"])
    assert "gen_ai.request.model" not in bare["attributes"]

    reply = child("agentsight.message", INTERNAL, evs["answer"])
    assert reply["attributes"]["agentsight.message.sender"] == "agent"
    assert json.loads(reply["attributes"]["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It ships tomorrow."}],
            "finish_reason": "stop",
        }
    ]

    failed = child("execute_tool refund", INTERNAL, evs["failure"])
    assert (failed["status"], failed["status_message"]) == (2, "payment service down")
    assert failed["attributes"]["error.type"] == "_OTHER"

    files = child("agentsight.message", INTERNAL, evs["files"])
    [message] = json.loads(files["attributes"]["gen_ai.output.messages"])
    assert [p["type"] for p in message["parts"]] == ["blob"]

    conversation, button, exception = sorted(logs, key=lambda r: r["event_name"])
    assert button["event_name"] == "app.widget.click"
    assert (button["trace_id"], button["span_id"]) == (trace(q), sid(q))
    assert button["attributes"]["app.widget.id"] == "feedback"
    assert button["attributes"]["app.widget.name"] == "Helpful"
    assert button["attributes"]["agentsight.button.value"] == "yes"
    assert button["attributes"]["agentsight.event.id"] == sid(evs["button"])
    assert conversation["event_name"] == "agentsight.conversation"
    assert conversation["trace_id"] is None
    assert conversation["attributes"]["agentsight.conversation.used"] is True
    assert exception["event_name"] == "exception"
    assert (exception["trace_id"], exception["span_id"]) == (trace(q), sid(evs["failure"]))
    assert exception["attributes"]["exception.message"] == "payment service down"

    for record in [*spans.values(), *logs]:  # the conversation is on everything
        assert SHARED.items() <= record["attributes"].items()
    resource = next(iter(spans.values()))["resource"]
    assert resource["service.name"] == "support-bot"
    assert resource["telemetry.sdk.name"] == "agentsight-async"
    assert resource["telemetry.sdk.version"] == __version__
    assert resource["telemetry.sdk.language"] == "python"
    assert len(resource["service.instance.id"]) == 32
    assert next(iter(spans.values()))["scope"] == ("agentsight_async", __version__)


async def test_content_is_opt_in(
    receiver: OtlpReceiver, make_settings: Callable[..., Settings], events: EventFactory
) -> None:
    evs = scripted(events)
    await export(make_settings(api_endpoint=receiver.url), [list(evs.values())])
    content = [
        b"Where is my order",
        b"It ships tomorrow",
        b"shipped",
        b"payment service down",
        b"12345",
        b"channel",
        b"Helpful",
        b"receipt.png",
        b"aGk=",
    ]
    with receiver.lock:
        bodies = [r.message.SerializeToString() for r in receiver.requests]
    for needle in content:
        assert not any(needle in body for body in bodies), needle
    spans = by_id(receiver.spans())
    turn = spans[sid(evs["question"])]["attributes"]
    assert "gen_ai.input.messages" not in turn
    assert turn["agentsight.attachment.count"] == 1
    failed = spans[sid(evs["failure"])]
    assert (failed["status"], failed["status_message"]) == (2, "")
    assert spans[sid(evs["usage"])]["attributes"]["gen_ai.usage.output_tokens"] == 5
    assert sorted(r["event_name"] for r in receiver.logs()) == [
        "agentsight.conversation",
        "app.widget.click",
    ]


def conversation_events(events: EventFactory, cid: str = "chat-1") -> list[Event]:
    return [
        events.question("one", cid=cid),
        events.action(cid=cid),
        events.usage(cid=cid, model="m"),
        events.answer("two", cid=cid),
        events.button(cid=cid),
        events.question("three", cid=cid),
        events.action("again", cid=cid),
        events.answer("four", cid=cid),
    ]


@pytest.mark.parametrize(
    "cuts",
    [
        [slice(0, 2), slice(2, 6), slice(6, None)],
        [slice(0, 1), slice(1, 5), slice(5, 6), slice(6, None)],
        # a cancelled export re-cut from the same first event, with more events this time
        [slice(0, 3), slice(0, 5), slice(5, None)],
    ],
    ids=["three-batches", "four-batches", "re-cut-after-cancel"],
)
async def test_spans_are_the_same_however_the_batches_were_cut(
    receiver: OtlpReceiver,
    make_settings: Callable[..., Settings],
    events: EventFactory,
    cuts: list[slice],
) -> None:
    evs = conversation_events(events)
    settings = make_settings(api_endpoint=receiver.url, otlp_capture_content=True)
    await export(settings, [evs])
    whole = by_id(receiver.spans())
    whole_logs = receiver.logs()
    with receiver.lock:
        receiver.requests.clear()
    await export(settings, [evs[cut] for cut in cuts])
    again = by_id(receiver.spans())
    for span in again.values():  # the resource names this exporter instance
        span.pop("resource")
    for span in whole.values():
        span.pop("resource")
    assert again == whole
    assert {json.dumps(r, sort_keys=True) for r in receiver.logs()} == {
        json.dumps(r, sort_keys=True) for r in whole_logs
    }
    second_turn = evs[5]
    assert whole[sid(evs[6])]["parent"] == sid(second_turn)
    assert whole[sid(evs[3])]["parent"] == sid(evs[0])


async def test_an_item_whose_turn_this_exporter_never_saw_is_a_root(
    receiver: OtlpReceiver, make_settings: Callable[..., Settings], events: EventFactory
) -> None:
    evs = conversation_events(events)
    await export(make_settings(api_endpoint=receiver.url), [evs[1:3]])  # a new process
    spans = receiver.spans()
    assert [s["parent"] for s in spans] == [None, None]
    assert [s["trace_id"] for s in spans] == [trace(evs[1]), trace(evs[2])]


async def test_conversations_are_never_mixed(
    receiver: OtlpReceiver, make_settings: Callable[..., Settings], events: EventFactory
) -> None:
    per_conv = {f"c{i:02d}": conversation_events(events, f"c{i:02d}") for i in range(30)}
    interleaved = [ev for group in zip(*per_conv.values(), strict=True) for ev in group]
    await export(make_settings(api_endpoint=receiver.url), [interleaved])
    owner = {sid(ev): ev.conversation_id for ev in interleaved}
    spans = receiver.spans()
    assert len(spans) == 30 * 7
    for span in spans:
        assert span["attributes"]["gen_ai.conversation.id"] == owner[span["span_id"]]
        if span["parent"]:
            assert owner[span["parent"]] == owner[span["span_id"]]
    for record in receiver.logs():
        assert record["attributes"]["gen_ai.conversation.id"] == owner[record["span_id"]]


async def test_json_encoding_follows_the_otlp_json_rules(
    receiver: OtlpReceiver, make_settings: Callable[..., Settings], events: EventFactory
) -> None:
    evs = list(scripted(events).values())
    await export(make_settings(api_endpoint=receiver.url, otlp_capture_content=True), [evs])
    as_protobuf = receiver.spans()
    with receiver.lock:
        receiver.requests.clear()
    json_settings = make_settings(
        api_endpoint=receiver.url, otlp_capture_content=True, otlp_encoding="JSON"
    )
    await export(json_settings, [evs])
    [request] = receiver.delivered("/v1/traces")
    assert request.headers["Content-Type"] == "application/json"
    import gzip

    raw = request.raw
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    body = json.loads(raw)
    span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert len(span["traceId"]) == 32
    assert int(span["traceId"], 16)
    assert len(span["spanId"]) == 16
    assert len(span["parentSpanId"]) == 16
    assert span["kind"] == 1
    assert isinstance(span["startTimeUnixNano"], str)
    counts = [a for a in span["attributes"] if a["value"].get("intValue") is not None]
    assert all(isinstance(a["value"]["intValue"], str) for a in counts)
    # the same spans as the protobuf encoding, once decoded by the official messages
    for got, want in zip(receiver.spans(), as_protobuf, strict=True):
        got.pop("resource"), want.pop("resource")
        assert got == want


def test_turn_memory_is_bounded(events: EventFactory) -> None:
    turns = Turns(max_conversations=3)
    for i in range(10):
        turns.begin(ConversationBatch(f"c{i}", [events.question(cid=f"c{i}")], {}))
    assert len(turns) == 3
    assert turns.begin(ConversationBatch("c0", [events.answer(cid="c0")], {})) is None
