"""The published AgentSight clients and our SDK store the same conversation.

One scenario (``clients/compat_scenario.py``) is told four ways, each into its
own local collector:

* ``agentsight==0.0.44`` (legacy ``ConversationTracker``, one REST call per item),
  in its own virtualenv;
* ``agentsight==0.1.4`` (OpenTelemetry spans to ``/api/ingest/`` plus REST
  uploads), in its own virtualenv, with its own API;
* our SDK over ``protocol="rest"`` and over ``protocol="ingest"``, each through
  the sync facade and the async core.

Everything is read back over the collector's HTTP read API (and file
downloads) and compared field by field.  Where the stores legitimately differ
- a documented legacy bug our SDK fixes, or something a protocol cannot
express - the comparison normalises exactly that, with a comment naming the
protocol section (``AGENTSIGHT_PROTOCOL.md``); nothing else is ignored.
``docs/compatibility.md`` lists the differences.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from compat_support import LEGACY, OURS, V014, Snapshot, scenario

Stores = Callable[[str], Snapshot]
OUR_RUNS = list(OURS)
OUR_INGEST = [n for n, (protocol, _) in OURS.items() if protocol == "ingest"]

CONVERSATION_FIELDS = (
    "name",
    "customer_id",
    "customer_ip_address",
    "device",
    "source",
    "language",
    "environment",
    "metadata",
    "is_used",
    "message_count",
)
ACTION_FIELDS = (
    "action_name",
    "started_at",
    "ended_at",
    "duration_ms",
    "tools_used",
    "response",
    "error_msg",
    "status",
    "metadata",
)
TOKEN_FIELDS = ("input_tokens", "output_tokens", "embedding_tokens")
MESSAGES = sum(
    m in ("track_human_message", "track_agent_message") for m, _, _ in scenario.SEED_STEPS
)
#: The action tracked with explicit start/end times (the others give only a duration).
TIMED_ACTION = scenario.LOOKUP["action_name"]

EXPECTED_FILES = {
    # filename: (mime type, bytes)
    "note.txt": ("text/plain", scenario.NOTE),
    "report.csv": ("text/csv", scenario.CSV),
    "attachment_1.png": ("image/png", scenario.PNG),  # named from its sniffed type
    "damage.png": ("image/png", scenario.PHOTO),
    "label.txt": ("text/plain", scenario.LABEL),  # tracked without a type
    "invoice.txt": ("text/plain", scenario.INVOICE),
}


# -- the stored transcript as plain, comparable data --------------------------------------


def view(snap: Snapshot) -> list[dict[str, Any]]:
    """The chat's transcript in stored order: every compared field, no ids or times.

    Attachments name the message they belong to by its content (pks differ per
    store) and carry their files' downloaded bytes.
    """
    transcript = snap.chat["transcript"]
    contents = {i["id"]: i["content"] for i in transcript if i["type"] == "message"}
    out: list[dict[str, Any]] = []
    for item in transcript:
        kind = item["type"]
        if kind == "message":
            row = {k: item[k] for k in ("sender", "content", "metadata")}
        elif kind == "action":
            row = {k: item[k] for k in ACTION_FIELDS}
        elif kind == "button":
            row = {k: item[k] for k in ("button_event", "label", "value", "metadata")}
        elif kind == "attachment":
            row = {
                "sender": item["sender"],
                "mode": item["mode"],
                "metadata": item["metadata"],
                "message": contents[item["message"]] if item["message"] else None,
                "files": [
                    (f["filename"], f["mime_type"], f["size"], snap.files.get(f["id"]))
                    for f in item["files"]
                ],
            }
        elif kind == "token_usage":
            row = {k: item[k] for k in TOKEN_FIELDS}
        else:
            raise AssertionError(f"unexpected transcript item {item}")
        out.append({"type": kind, **row})
    return out


def without_tokens(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Protocol §5.5 / §2.3: 0.0.44 sends token usage as one synthetic action of
    *cumulative* counters per ``send_tracked_data()``, stamped at send time and
    inserted before the batch's last item, so its place in the transcript is an
    artefact of sending.  Token usage is compared as counts in
    ``test_token_usage_*`` instead of by position."""
    return [i for i in items if i["type"] != "token_usage"]


def anchor_linked_attachments(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Protocol §2.1 (0.0.44) and §3.7 (0.1.4): files uploaded for a message are
    stamped when they are *sent* - after the whole batch, or after the 0.1.4
    read-back that learns the message's pk - while our SDK stamps them just after
    their message.  The link itself (``message``) is what they mean, so each
    linked attachment is placed right after its message.  Unlinked items keep
    their stored order.  Applied to the published clients' stores only: ours
    must already hold linked files right after their message."""
    linked = [i for i in items if i["type"] == "attachment" and i["message"]]
    out = [i for i in items if i not in linked]
    for att in linked:
        at = next(
            n
            for n, i in enumerate(out)
            if i["type"] == "message" and i["content"] == att["message"]
        )
        while (
            at + 1 < len(out)
            and out[at + 1]["type"] == "attachment"
            and out[at + 1]["message"] == att["message"]
        ):
            at += 1
        out.insert(at + 1, att)
    return out


def base64_only(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Protocol §5.6 and §4 (``track_attachments(mode="form_data")`` row):
    multipart exists only in the legacy protocol.  0.1.4 always uploads base64,
    and so does our SDK over ingest, so ``mode`` ``form_data`` reads ``base64``
    when a store that cannot send multipart is compared."""
    out = copy.deepcopy(items)
    for item in out:
        if item["type"] == "attachment" and item["mode"] == "form_data":
            item["mode"] = "base64"
    return out


def unlinked(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Protocol §4 (message ``attachments=`` row): ingest gives back no message
    pk, so over ingest files tracked with a message are stored unlinked.  Our
    SDK stamps them just after their message, and ``anchor_linked_attachments``
    puts the REST side's linked files there too, so the order comparison still
    checks that they follow the right message."""
    out = copy.deepcopy(items)
    for item in out:
        if item["type"] == "attachment":
            item["message"] = None
    return out


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def ingest_action_times(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Protocol §4 (``track_action`` row): over ingest an action is a span, and a
    span always has a start and an end.  For an action tracked with only a
    duration the span starts at the tracking time and lasts that duration; the
    read API shows those span times where REST stores none.  Checked here
    (end - start == duration), then cleared like REST."""
    out = copy.deepcopy(items)
    for item in out:
        if item["type"] == "action" and item["action_name"] != TIMED_ACTION:
            span_ms = (_iso(item["ended_at"]) - _iso(item["started_at"])).total_seconds() * 1000
            assert span_ms == pytest.approx(item["duration_ms"], abs=0.01), item
            item["started_at"] = item["ended_at"] = None
    return out


def split_timed_action(
    items: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Protocol §4 (``track_action`` row): ``started_at``/``ended_at`` become the
    span's start and end, and a span sits in the transcript at its start.  The
    scenario's timed action says it started on 2025-06-01, so over ingest it
    sorts there, while REST stores keep it at its tracking time.  Its fields
    are compared on their own and its position by
    ``test_timed_action_sits_at_its_start_over_ingest``."""
    rest = [i for i in items if not (i["type"] == "action" and i["action_name"] == TIMED_ACTION)]
    (timed,) = [i for i in items if i["type"] == "action" and i["action_name"] == TIMED_ACTION]
    return rest, timed


def without_v014_gaps(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What 0.1.4 cannot say about an action: a ``@tool`` span's times and
    duration are measured (no way to state 2025-06-01 or 1250 ms), and tool
    spans have no metadata attribute (protocol §4 ``track_action`` row, §6)."""
    out = copy.deepcopy(items)
    for item in out:
        if item["type"] == "action":
            for key in ("started_at", "ended_at", "duration_ms", "metadata"):
                item.pop(key)
    return out


def assert_same(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> None:
    """Equal lists; on failure, say at which item they part."""
    for n, (e, a) in enumerate(zip(expected, actual, strict=False)):
        assert a == e, f"item {n} differs:\n expected {e}\n actual   {a}"
    assert len(actual) == len(expected), (
        f"{len(actual)} items, expected {len(expected)}:\n"
        f" extra/missing: {actual[len(expected) :] or expected[len(actual) :]}"
    )


def sends_per_step() -> list[dict[str, int]]:
    """Per send_tracked_data(): how many real actions and token calls were tracked."""
    out, current = [], {"actions": 0, "token_calls": 0}
    for method, _, _ in scenario.SEED_STEPS:
        if method == "track_action":
            current["actions"] += 1
        elif method == "track_token_usage":
            current["token_calls"] += 1
        elif method == "send_tracked_data":
            out.append(current)
            current = {"actions": 0, "token_calls": 0}
    return out


# -- what each client reported ------------------------------------------------------------


def test_legacy_client_sent_every_item_successfully(stores: Stores) -> None:
    legacy = stores(LEGACY)
    assert legacy.result["version"] == "0.0.44"
    sends = legacy.result["sends"]
    assert len(sends) == 2
    for send in sends:
        assert send["items"], send
        failed = [i for i in send["items"] if i["success"] is not True]
        assert not failed, failed
        assert send["summary"]["errors"] == 0
    assert legacy.result["token_usage"] == {
        "prompt_tokens": 130,
        "completion_tokens": 35,
        "total_tokens": 165,
        "embedding_tokens": 8,
    }


def test_v014_client_exported_without_errors(stores: Stores) -> None:
    v014 = stores(V014)
    result = v014.result
    assert result["version"] == "0.1.4"
    assert result["init"] is True
    # flush() says True even when a batch was dropped (protocol §5.12), so the
    # client's own log is the real witness: no warning, no error.
    assert result["flush"] == [True, True]
    assert result["log"] == []
    assert v014.process is not None
    assert "Traceback" not in v014.process.stderr, v014.process.stderr
    assert [len(u["files"]) for u in result["uploads"]] == [1, 2, 1, 1, 1]


@pytest.mark.parametrize("name", OUR_RUNS)
def test_our_send_tracked_data_reports_like_the_legacy_client(stores: Stores, name: str) -> None:
    legacy, ours = stores(LEGACY), stores(name)
    expected = sends_per_step()
    assert len(ours.result) == len(legacy.result["sends"]) == len(expected)
    for ours_send, legacy_send, tracked in zip(
        ours.result, legacy.result["sends"], expected, strict=True
    ):
        assert all(i["success"] is True for i in ours_send["items"]), ours_send
        ours_summary, legacy_summary = dict(ours_send["summary"]), dict(legacy_send["summary"])
        # §5.5: 0.0.44 adds one synthetic token_usage action of cumulative
        # counters to *every* send once anything was counted (re-sent, never
        # reset); ours sends one token-usage event per track_token_usage() call.
        assert legacy_summary.pop("actions") == tracked["actions"] + 1
        assert ours_summary.pop("actions") == tracked["actions"] + tracked["token_calls"]
        assert ours_summary == legacy_summary
        # the same items in the same order, token usage aside (reported as "action")
        assert [i["type"] for i in ours_send["items"] if i["type"] != "action"] == [
            i["type"] for i in legacy_send["items"] if i["type"] != "action"
        ]


# -- the stored conversations --------------------------------------------------------------


@pytest.mark.parametrize("name", [LEGACY, V014, *OUR_RUNS])
def test_conversation_rows_hold_the_scenario_fields(stores: Stores, name: str) -> None:
    snap = stores(name)
    for conv, fields, used in (
        (snap.visit, scenario.VISIT, False),
        (snap.chat, scenario.CHAT, True),
    ):
        expected = {k: fields.get(k) for k in CONVERSATION_FIELDS if k not in ("is_used",)}
        expected["is_used"] = used
        expected["message_count"] = MESSAGES if used else 0
        assert {k: conv[k] for k in CONVERSATION_FIELDS} == expected, conv["conversation_id"]


@pytest.mark.parametrize("name", [V014, *OUR_RUNS])
def test_conversation_rows_match_the_legacy_client(stores: Stores, name: str) -> None:
    legacy, other = stores(LEGACY), stores(name)
    for cid in (scenario.VISIT_ID, scenario.CHAT_ID):
        assert {k: other.conversations[cid][k] for k in CONVERSATION_FIELDS} == {
            k: legacy.conversations[cid][k] for k in CONVERSATION_FIELDS
        }, cid


@pytest.mark.parametrize("name", [LEGACY, V014, *OUR_RUNS])
def test_attachment_bytes_download_intact(stores: Stores, name: str) -> None:
    snap = stores(name)
    files = {
        f["filename"]: (f["mime_type"], snap.files.get(f["id"]), f["size"], f["downloadable"])
        for item in snap.chat["transcript"]
        if item["type"] == "attachment"
        for f in item["files"]
    }
    assert files == {
        filename: (mime, data, len(data), True) for filename, (mime, data) in EXPECTED_FILES.items()
    }


# -- transcripts: ours against 0.0.44 ------------------------------------------------------


def test_legacy_transcript_is_the_scenario(stores: Stores) -> None:
    """The reference itself: the legacy store holds what the scenario tracked."""
    items = anchor_linked_attachments(without_tokens(view(stores(LEGACY))))
    summary = [
        (i["type"], i.get("content") or i.get("action_name") or i.get("label") or i["files"][0][0])
        for i in items
    ]
    assert summary == [
        ("message", scenario.GREETING),
        ("message", scenario.ASK_ORDER),
        ("message", scenario.GIVE_ORDER),
        ("action", "lookup_order"),
        ("action", "refund_order"),
        ("message", scenario.SHIPPED),
        ("button", "Yes"),
        ("attachment", "note.txt"),
        ("attachment", "report.csv"),
        ("message", scenario.PHOTO_MSG),
        ("attachment", "damage.png"),
        ("message", scenario.LABEL_MSG),
        ("attachment", "label.txt"),
        ("message", scenario.INVOICE_MSG),
        ("attachment", "invoice.txt"),
        ("message", scenario.BYE),
    ]
    lookup = next(i for i in items if i["type"] == "action" and i["action_name"] == TIMED_ACTION)
    assert lookup == {
        "type": "action",
        "error_msg": None,
        "status": "ok",
        **scenario.LOOKUP,
        "duration_ms": 1250.0,
    }
    refund = next(i for i in items if i["type"] == "action" and i["action_name"] != TIMED_ACTION)
    assert refund["error_msg"] == scenario.REFUND["error_msg"]
    assert refund["status"] == "error"


@pytest.mark.parametrize("name", OUR_RUNS)
def test_our_transcript_matches_the_legacy_client(stores: Stores, name: str) -> None:
    ours = stores(name)
    expected = anchor_linked_attachments(without_tokens(view(stores(LEGACY))))
    actual = without_tokens(view(ours))  # ours as stored: linked files follow their message
    if ours.kind == "ingest":
        expected = unlinked(base64_only(expected))
        actual = ingest_action_times(actual)
        expected, expected_timed = split_timed_action(expected)
        actual, actual_timed = split_timed_action(actual)
        assert actual_timed == expected_timed
    assert_same(expected, actual)


@pytest.mark.parametrize("name", OUR_INGEST)
def test_timed_action_sits_at_its_start_over_ingest(stores: Stores, name: str) -> None:
    """See ``split_timed_action``: over ingest the action is placed at the
    ``started_at`` it was tracked with (and REST stores at its tracking time)."""
    transcript = stores(name).chat["transcript"]
    timed = [i for i in transcript if i["type"] == "action" and i["action_name"] == TIMED_ACTION]
    assert [i["timestamp"] for i in timed] == [scenario.LOOKUP["started_at"]]
    rest_timed = [
        i
        for i in stores("ours-rest-sync").chat["transcript"]
        if i["type"] == "action" and i["action_name"] == TIMED_ACTION
    ]
    assert [i["started_at"] for i in rest_timed] == [scenario.LOOKUP["started_at"]]
    assert rest_timed[0]["timestamp"] != scenario.LOOKUP["started_at"]


# -- transcripts: ours against 0.1.4 -------------------------------------------------------


@pytest.mark.parametrize("name", OUR_RUNS)
def test_our_transcript_matches_the_v014_client(stores: Stores, name: str) -> None:
    ours = stores(name)
    # 0.1.4 and ours both record token usage per LLM call at the time of the
    # call, so here the token rows are compared in place.  0.1.4 links files to
    # a message with message_id (after reading the pk back), like REST does.
    expected = without_v014_gaps(anchor_linked_attachments(view(stores(V014))))
    actual = base64_only(without_v014_gaps(view(ours)))
    if ours.kind == "ingest":
        expected = unlinked(expected)
        expected, expected_timed = split_timed_action(expected)
        actual, actual_timed = split_timed_action(actual)
        assert actual_timed == expected_timed
    assert_same(expected, actual)


# -- token usage ---------------------------------------------------------------------------


def _usage_rows(snap: Snapshot) -> list[tuple[int, ...]]:
    return [
        tuple(i[k] for k in TOKEN_FIELDS)
        for i in snap.chat["transcript"]
        if i["type"] == "token_usage"
    ]


PER_CALL = [(p, c, e) for p, c, _, e in scenario.TOKEN_CALLS]
SUMS = tuple(sum(col) for col in zip(*PER_CALL, strict=True))


def test_token_usage_legacy_counts_once(stores: Stores) -> None:
    """§5.5: 0.0.44 re-sends its cumulative, never-reset counters with every
    send; stored once, as the process total (the collector keeps the growth)."""
    legacy = stores(LEGACY)
    assert _usage_rows(legacy) == [SUMS]
    assert legacy.result["sends"][1]["summary"]["actions"] == 1  # it was re-sent


@pytest.mark.parametrize("name", [V014, *OUR_RUNS])
def test_token_usage_is_stored_per_call(stores: Stores, name: str) -> None:
    assert _usage_rows(stores(name)) == PER_CALL


@pytest.mark.parametrize("name", [LEGACY, V014, *OUR_RUNS])
def test_token_usage_sums_match(stores: Stores, name: str) -> None:
    usage = stores(name).chat["token_usage"]
    assert tuple(usage[k] for k in TOKEN_FIELDS) == SUMS
    assert usage["cache_read_tokens"] == usage["cache_write_tokens"] == 0


@pytest.mark.parametrize("name", [LEGACY, V014, *OUR_RUNS])
def test_token_usage_total_matches(stores: Stores, name: str) -> None:
    """The seed's ``total_tokens`` is prompt + completion (0.0.44's counters keep
    embedding tokens apart); every store should total the same calls alike."""
    expected = sum(total for _, _, total, _ in scenario.TOKEN_CALLS)
    snap = stores(name)
    assert snap.chat["token_usage"]["total_tokens"] == expected
    assert snap.chat["total_tokens"] == expected
