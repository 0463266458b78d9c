"""Bad input raises at the call site, names the argument, and loses nothing else."""

from __future__ import annotations

import base64
import io
import math
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from agentsight_async import (
    AgentSightError,
    AsyncConversationTracker,
    InvalidAnswerDataException,
    InvalidAttachmentException,
    InvalidConversationDataException,
    InvalidQuestionDataException,
    MissingConversationIdException,
)
from agentsight_async.testing import clear_recorded, recorded

URL = "memory://validation"
B64 = base64.b64encode(b"hello").decode()


def cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def deep(n: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(n):
        d = {"k": d}
    return d


CASES: list[tuple[str, dict[str, Any], type[AgentSightError], str]] = [
    ("track_human_message", {"message": ""}, InvalidQuestionDataException, "message:"),
    ("track_human_message", {"message": "   \n"}, InvalidQuestionDataException, "message:"),
    ("track_human_message", {"message": None}, InvalidQuestionDataException, "message:"),
    (
        "track_human_message",
        {"message": 42},
        InvalidQuestionDataException,
        "message: must be a str",
    ),
    ("track_human_message", {"message": "a\ud800b"}, InvalidQuestionDataException, "surrogate"),
    ("track_agent_message", {"message": ""}, InvalidAnswerDataException, "message:"),
    (
        "track_agent_message",
        {"message": "x", "metadata": [1]},
        InvalidAnswerDataException,
        "metadata: must be a dict",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": {"n": math.nan}},
        InvalidQuestionDataException,
        "metadata: contains NaN",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": cyclic()},
        InvalidQuestionDataException,
        "metadata: contains a reference to itself",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": deep(5000)},
        InvalidQuestionDataException,
        "metadata: is nested too deeply",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": {"b": b"raw"}},
        InvalidQuestionDataException,
        "metadata: is not JSON-serialisable",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": {"d": Decimal("1.5")}},
        InvalidQuestionDataException,
        "metadata: is not JSON-serialisable",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": {"t": datetime.now()}},
        InvalidQuestionDataException,
        "metadata: is not JSON-serialisable",
    ),
    (
        "track_human_message",
        {"message": "x", "metadata": {"s": {1, 2}}},
        InvalidQuestionDataException,
        "metadata: is not JSON-serialisable",
    ),
    (
        "track_human_message",
        {"message": "x", "attachments": "file.pdf"},
        InvalidAttachmentException,
        "attachments: must be a list",
    ),
    (
        "track_human_message",
        {"message": "x", "attachments": [{"data": B64}], "attachment_mode": "zip"},
        InvalidAttachmentException,
        "attachment_mode: invalid mode 'zip'",
    ),
    ("track_action", {"action_name": ""}, InvalidConversationDataException, "action_name:"),
    ("track_action", {"action_name": 3}, InvalidConversationDataException, "action_name:"),
    (
        "track_action",
        {"action_name": "a", "duration_ms": -1},
        InvalidConversationDataException,
        "duration_ms: must not be negative",
    ),
    (
        "track_action",
        {"action_name": "a", "duration_ms": "fast"},
        InvalidConversationDataException,
        "duration_ms: must be a number",
    ),
    (
        "track_action",
        {"action_name": "a", "duration_ms": True},
        InvalidConversationDataException,
        "duration_ms:",
    ),
    (
        "track_action",
        {"action_name": "a", "started_at": "yesterday"},
        InvalidConversationDataException,
        "started_at: 'yesterday' is not an ISO-8601",
    ),
    (
        "track_action",
        {
            "action_name": "a",
            "started_at": "2025-01-01T10:00:01+00:00",
            "ended_at": "2025-01-01T10:00:00+00:00",
        },
        InvalidConversationDataException,
        "ended_at: is earlier than started_at",
    ),
    (
        "track_action",
        {"action_name": "a", "tools_used": ["db"]},
        InvalidConversationDataException,
        "tools_used: must be a dict",
    ),
    (
        "track_action",
        {"action_name": "a", "response": 5},
        InvalidConversationDataException,
        "response: must be a str",
    ),
    (
        "track_action",
        {"action_name": "a", "error_msg": b"x"},
        InvalidConversationDataException,
        "error_msg: must be a str",
    ),
    (
        "track_button",
        {"button_event": "", "label": "l", "value": "v"},
        InvalidConversationDataException,
        "button_event:",
    ),
    (
        "track_button",
        {"button_event": "e", "label": " ", "value": "v"},
        InvalidConversationDataException,
        "label:",
    ),
    (
        "track_button",
        {"button_event": "e", "label": "l", "value": None},
        InvalidConversationDataException,
        "value:",
    ),
    (
        "track_attachments",
        {"attachments": []},
        InvalidAttachmentException,
        "attachments: must not be empty",
    ),
    (
        "track_attachments",
        {"attachments": {"filename": "a"}},
        InvalidAttachmentException,
        "attachments: must be a list",
    ),
    (
        "track_attachments",
        {"attachments": ["a.pdf"]},
        InvalidAttachmentException,
        "attachments[0]: must be a dict",
    ),
    (
        "track_attachments",
        {"attachments": [{"filename": "a.pdf", "data": B64}]},
        InvalidAttachmentException,
        "attachments[0]: missing required key(s): mime_type",
    ),
    (
        "track_attachments",
        {"attachments": [{"filename": "a", "mime_type": "t/p", "data": "not base64!"}]},
        InvalidAttachmentException,
        "attachments[0].data: is not valid base64",
    ),
    (
        "track_attachments",
        {"attachments": [{"filename": "a", "mime_type": "t/p", "data": b"raw"}]},
        InvalidAttachmentException,
        "attachments[0].data: must be a base64 str",
    ),
    (
        "track_attachments",
        {"attachments": [{"data": "text"}], "mode": "form_data"},
        InvalidAttachmentException,
        "attachments[0].data: must be bytes or a file object",
    ),
    (
        "track_attachments",
        {"attachments": [{"data": io.StringIO("t")}], "mode": "form_data"},
        InvalidAttachmentException,
        "open it in binary mode",
    ),
    (
        "track_attachments",
        {"attachments": [{"filename": "x"}], "mode": "form_data"},
        InvalidAttachmentException,
        "attachments[0]: missing required key: 'data'",
    ),
    (
        "track_attachments",
        {"attachments": [{"data": b"x"}], "mode": "form_data", "sender": "bot"},
        InvalidAttachmentException,
        "sender: must be 'end_user' or 'agent'",
    ),
    (
        "track_token_usage",
        {"prompt_tokens": -1},
        InvalidConversationDataException,
        "prompt_tokens: must not be negative",
    ),
    (
        "track_token_usage",
        {"completion_tokens": 1.5},
        InvalidConversationDataException,
        "completion_tokens: must be an int",
    ),
    (
        "get_or_create_conversation",
        {"conversation_id": ""},
        MissingConversationIdException,
        "conversation_id:",
    ),
    (
        "get_or_create_conversation",
        {"conversation_id": "c", "customer_ip_address": "999.1.1.1"},
        InvalidConversationDataException,
        "customer_ip_address: '999.1.1.1' is not",
    ),
    (
        "get_or_create_conversation",
        {"conversation_id": "c", "name": "n" * 256},
        InvalidConversationDataException,
        "name: is 256 characters long",
    ),
    (
        "get_or_create_conversation",
        {"conversation_id": "c", "metadata": "k:v"},
        InvalidConversationDataException,
        "metadata: must be a dict",
    ),
]


@pytest.mark.parametrize(
    ("method", "kwargs", "exc", "needle"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_rejected_at_the_call_site_and_nothing_else_lost(
    method: str, kwargs: dict[str, Any], exc: type[AgentSightError], needle: str
) -> None:
    url = f"{URL}/{method}/{needle}"
    clear_recorded(url)
    async with AsyncConversationTracker(api_endpoint=url) as tracker:
        await tracker.track_human_message("before", conversation_id="v")
        with pytest.raises(exc) as info:
            await getattr(tracker, method)(**kwargs)
        assert isinstance(info.value, AgentSightError)
        assert needle in str(info.value)
        await tracker.track_human_message("after", conversation_id="v")
        assert await tracker.flush(timeout=10)
        stats = tracker.stats()
    assert [r["data"]["content"] for r in recorded(url, "v")] == ["before", "after"]
    assert stats["dropped_total"] == 0


async def test_message_limit_and_attachment_limit() -> None:
    async with AsyncConversationTracker(
        api_endpoint="memory://limits", max_message_chars=10, max_attachment_bytes=4
    ) as tracker:
        with pytest.raises(InvalidQuestionDataException, match="message: is 11 characters"):
            await tracker.track_human_message("x" * 11, conversation_id="l")
        with pytest.raises(InvalidAttachmentException, match=r"attachments\[0\].data: 5 bytes"):
            await tracker.track_attachments(
                [{"filename": "a", "mime_type": "t/p", "data": B64}], conversation_id="l"
            )
        with pytest.raises(InvalidAttachmentException, match="per-call limit"):
            await tracker.track_attachments(
                [{"data": io.BytesIO(b"12345")}], mode="form_data", conversation_id="l"
            )
        # the limit holds for the whole call: 3 + 2 bytes in two files is over 4
        with pytest.raises(InvalidAttachmentException, match=r"attachments\[1\].data"):
            await tracker.track_attachments(
                [{"data": b"123"}, {"data": b"45"}], mode="form_data", conversation_id="l"
            )
        with pytest.raises(InvalidConversationDataException, match=r"duration_ms: .* larger"):
            await tracker.track_action("a", duration_ms=1e308, conversation_id="l")
        with pytest.raises(InvalidConversationDataException, match=r"prompt_tokens: .* larger"):
            await tracker.track_token_usage(prompt_tokens=2**63, conversation_id="l")
        with pytest.raises(InvalidQuestionDataException, match="metadata: keys must be str"):
            await tracker.track_human_message("m", metadata={1: "a", "1": "b"}, conversation_id="l")
        with pytest.raises(InvalidQuestionDataException, match="keys must be str"):
            await tracker.track_human_message(
                "m", metadata={"deep": [{None: 1}]}, conversation_id="l"
            )


async def test_accepted_values_arrive_as_sent() -> None:
    url = "memory://accepted"
    meta = {"nested": {"list": [1, 2.5, None, True, "ünïcödé 🎉"]}, "empty": {}, "nul": "a\x00b"}
    async with AsyncConversationTracker(api_endpoint=url) as tracker:
        await tracker.track_human_message("héllo \x00 wörld 🎉", metadata=meta, conversation_id="a")
        await tracker.track_action(
            "act",
            started_at=datetime(2025, 1, 1, 10, tzinfo=timezone.utc),
            ended_at="2025-01-01T10:00:01Z",
            duration_ms=1000.5,
            conversation_id="a",
        )
        await tracker.track_attachments(
            [{"data": io.BytesIO(b"%PDF-1.7"), "filename": None}],
            mode="form-data",
            conversation_id="a",
        )
        assert await tracker.flush(timeout=10)
    recs = recorded(url, "a")
    assert recs[0]["data"]["content"] == "héllo \x00 wörld 🎉"
    assert recs[0]["data"]["metadata"] == meta
    assert recs[1]["data"]["started_at"] == "2025-01-01T10:00:00+00:00"
    assert recs[1]["data"]["ended_at"] == "2025-01-01T10:00:01Z"
    att = recs[2]["data"]["attachments"][0]
    assert att["mime_type"] == "application/pdf"
    assert att["filename"] == "attachment_0.pdf"


async def test_metadata_is_snapshotted_at_tracking_time() -> None:
    url = "memory://snapshot"
    meta: dict[str, Any] = {"step": 1}
    async with AsyncConversationTracker(api_endpoint=url) as tracker:
        await tracker.track_human_message("m", metadata=meta, conversation_id="s")
        meta["step"] = 2
        assert await tracker.flush(timeout=10)
    assert recorded(url, "s")[0]["data"]["metadata"] == {"step": 1}


@pytest.mark.parametrize("bad", [["c"], {"c": 1}, 42, b"c", "", "  "])
async def test_bad_conversation_id_is_a_clear_error(bad: Any) -> None:
    async with AsyncConversationTracker(api_endpoint="memory://bad-cid") as tracker:
        for method, args in (
            ("track_human_message", ("hi",)),
            ("track_agent_message", ("hi",)),
            ("track_button", ("e", "l", "v")),
        ):
            with pytest.raises(AgentSightError, match="conversation_id"):
                await getattr(tracker, method)(*args, conversation_id=bad)
