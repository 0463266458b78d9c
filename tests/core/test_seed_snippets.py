"""Every code block of the original documentation page, run verbatim (import swapped).

Each snippet runs against ``memory://`` and the test asserts on what was
recorded for delivery, not merely that nothing raised.
"""

from __future__ import annotations

import asyncio
import base64
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentsight_async import NoDataToSendException, conversation_tracker
from agentsight_async.testing import recorded

pytestmark = pytest.mark.usefixtures("memory_singleton")

QUICK_START = """
from agentsight_async import conversation_tracker
from dotenv import load_dotenv
load_dotenv() # Loads AGENTSIGHT_API_KEY from .env
# Create conversation
conversation_tracker.get_or_create_conversation(
conversation_id="chat-123",
name="Support Chat"
)
# Track events
conversation_tracker.track_human_message("Hello!")
conversation_tracker.track_agent_message("Hi! How can I help?")
# Send to AgentSight
conversation_tracker.send_tracked_data()
"""

CREATE_STORE = """
conversation_tracker.get_or_create_conversation(
conversation_id="support-123",
customer_id="user-456",
name="Password Reset",
device="desktop",
environment="production",
metadata={"session_id": "abc123"}
)
"""

CREATE_NOW = """
# Sends to API right away
conversation_tracker.initialize_conversation(
conversation_id="support-123",
name="Password Reset"
)
"""

TRACKING = """
conversation_tracker.track_human_message(
message="How do I reset my password?",
metadata={"message_id": "msg_001"}
)
conversation_tracker.track_agent_message(
message="Click 'Forgot Password' on the login page.",
metadata={"model": "gpt-4"}
)
conversation_tracker.track_action(
action_name="database_lookup",
duration_ms=150,
tools_used={"database": "PostgreSQL"},
response="User found"
)
conversation_tracker.track_button(
button_event="user_confirmation",
label="Confirm Order",
value="order_123"
)
"""

BASE64_MODE = """
import asyncio
import base64
with open('report.pdf', 'rb') as f:
    file_data = base64.b64encode(f.read()).decode('utf-8')
conversation_tracker.track_attachments(
attachments=[{
'filename': 'report.pdf',
'data': file_data,
'mime_type': 'application/pdf'
}],
mode='base64'
)
"""

FORM_DATA_MODE = """
with open('document.pdf', 'rb') as f:
    file_bytes = f.read()
conversation_tracker.track_attachments(
attachments=[{
'data': file_bytes,
'filename': 'document.pdf'
}],
mode='form_data'
)
"""

TOKENS = """
conversation_tracker.track_token_usage(
prompt_tokens=100,
completion_tokens=25,
total_tokens=125
)
# Get current usage
usage = conversation_tracker.get_token_usage()
print(f"Total tokens: {usage['total_tokens']}")
"""

SENDING = """
# Send all tracked data at once
response = conversation_tracker.send_tracked_data()
# Check results
print(f"Questions: {response['summary']['questions']}")
print(f"Answers: {response['summary']['answers']}")
print(f"Actions: {response['summary']['actions']}")
print(f"Errors: {response['summary']['errors']}")
"""

VIEW = """
# View what's in memory before sending
summary = conversation_tracker.get_tracked_data_summary()
print(f"Total items: {summary['summary']['total']}")
# View chronological order
for item in summary['items']:
    print(f"{item['index']}. [{item['type']}] {item['timestamp']}")
"""

ORDER = """
# Correct chronological order
conversation_tracker.track_human_message("Question")
conversation_tracker.track_action("search")
conversation_tracker.track_agent_message("Answer")
"""

SEND_TIMES = """
# Option 1: After each interaction
def handle_query(query):
    conversation_tracker.track_human_message(query)
    answer = agent.process(query)
    conversation_tracker.track_agent_message(answer)
    conversation_tracker.send_tracked_data()
# Option 2: Batch multiple interactions
def handle_session(queries):
    for query in queries:
        conversation_tracker.track_human_message(query)
        conversation_tracker.track_agent_message(agent.process(query))
    conversation_tracker.send_tracked_data()
"""


class EchoAgent:
    def process(self, query: str) -> str:
        return f"echo: {query}"


def run(snippet: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    ns: dict[str, Any] = {"conversation_tracker": conversation_tracker}
    ns.update(namespace or {})
    exec(compile(textwrap.dedent(snippet), "<seed snippet>", "exec"), ns)
    return ns


def contents(url: str, conversation_id: str) -> list[tuple[str, Any]]:
    out = []
    for rec in recorded(url, conversation_id):
        data = rec["data"]
        out.append(
            (
                rec["type"],
                data.get("content")
                or data.get("action_name")
                or data.get("label")
                or data.get("conversation_id"),
            )
        )
    return out


def test_quick_start(memory_singleton: str, capsys: pytest.CaptureFixture[str]) -> None:
    run(QUICK_START)
    recs = recorded(memory_singleton, "chat-123")
    assert [(r["type"], r["data"].get("content")) for r in recs] == [
        ("conversation", None),
        ("question", "Hello!"),
        ("answer", "Hi! How can I help?"),
    ]
    assert recs[0]["data"]["name"] == "Support Chat"
    assert recs[0]["data"]["is_used"] is True


def test_conversation_store_in_memory_then_track_and_send(memory_singleton: str) -> None:
    run(CREATE_STORE)
    run(TRACKING)
    ns = run(SENDING)
    response = ns["response"]
    assert response["summary"] == {
        "questions": 1,
        "answers": 1,
        "attachments": 0,
        "actions": 1,
        "buttons": 1,
        "errors": 0,
    }
    assert [i["type"] for i in response["items"]] == [
        "conversation",
        "question",
        "answer",
        "action",
        "button",
    ]
    assert all(i["success"] for i in response["items"])
    assert [i["index"] for i in response["items"]] == [0, 1, 2, 3, 4]
    recs = recorded(memory_singleton, "support-123")
    conv = recs[0]["data"]
    assert conv["customer_id"] == "user-456"
    assert conv["device"] == "desktop"
    assert conv["environment"] == "production"
    assert conv["metadata"] == {"session_id": "abc123"}
    assert recs[1]["data"]["metadata"] == {"message_id": "msg_001"}
    assert recs[2]["data"]["sender"] == "agent"
    action = recs[3]["data"]
    assert action == {
        "action_name": "database_lookup",
        "metadata": {},
        "duration_ms": 150,
        "tools_used": {"database": "PostgreSQL"},
        "response": "User found",
    }
    assert recs[4]["data"]["value"] == "order_123"


def test_initialize_conversation_sends_immediately(memory_singleton: str) -> None:
    run(CREATE_NOW)
    # No flush needed: the call returns only once the item was delivered.
    recs = recorded(memory_singleton, "support-123")
    assert len(recs) == 1
    assert recs[0]["kind"] == "conversation_opened"
    assert recs[0]["data"]["is_used"] is False
    assert recs[0]["data"]["name"] == "Password Reset"


def test_attachments_both_modes(memory_singleton: str) -> None:
    pdf = b"%PDF-1.4 test document\n" + bytes(range(256))
    Path("report.pdf").write_bytes(pdf)
    Path("document.pdf").write_bytes(pdf)
    conversation_tracker.get_or_create_conversation(conversation_id="files-1")
    run(BASE64_MODE)
    run(FORM_DATA_MODE)
    result = conversation_tracker.send_tracked_data()
    assert result["summary"]["attachments"] == 2
    recs = [r for r in recorded(memory_singleton, "files-1") if r["type"] == "attachments"]
    b64 = recs[0]["data"]
    assert b64["mode"] == "base64"
    assert b64["attachments"][0]["filename"] == "report.pdf"
    assert base64.b64decode(b64["attachments"][0]["data"]) == pdf
    form = recs[1]["data"]
    assert form["mode"] == "form_data"
    assert form["sender"] == "end_user"
    assert form["attachments"][0]["filename"] == "document.pdf"
    assert form["attachments"][0]["mime_type"] == "application/pdf"


def test_token_usage(memory_singleton: str, capsys: pytest.CaptureFixture[str]) -> None:
    conversation_tracker.get_or_create_conversation(conversation_id="tokens-1")
    run(TOKENS)
    assert "Total tokens: 125" in capsys.readouterr().out
    assert conversation_tracker.get_token_usage() == {
        "prompt_tokens": 100,
        "completion_tokens": 25,
        "total_tokens": 125,
        "embedding_tokens": 0,
    }
    conversation_tracker.flush(5)
    usage = [r for r in recorded(memory_singleton, "tokens-1") if r["kind"] == "token_usage"]
    assert [u["data"]["total_tokens"] for u in usage] == [125]


def test_view_tracked_data(memory_singleton: str, capsys: pytest.CaptureFixture[str]) -> None:
    conversation_tracker.get_or_create_conversation(conversation_id="view-1")
    run(ORDER)
    run(VIEW)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Total items: 4"
    assert [line.split(" ")[1] for line in out[1:]] == [
        "[conversation]",
        "[question]",
        "[action]",
        "[answer]",
    ]
    summary = conversation_tracker.get_tracked_data_summary()
    assert summary["conversation_id"] == "view-1"
    assert summary["items"][1]["preview"] == {
        "content_preview": "Question",
        "sender": "end_user",
        "has_metadata": False,
    }
    assert summary["items"][2]["preview"] == {
        "action_name": "search",
        "duration_ms": None,
        "has_error": False,
        "has_response": False,
    }
    conversation_tracker.send_tracked_data()
    after = conversation_tracker.get_tracked_data_summary()
    assert after["summary"]["total"] == 0
    assert after["items"] == []


def test_best_practice_send_times(memory_singleton: str) -> None:
    ns = run(SEND_TIMES, {"agent": EchoAgent()})
    conversation_tracker.get_or_create_conversation(conversation_id="bp-1")
    conversation_tracker.send_tracked_data()  # the conversation item alone
    ns["handle_query"]("one")
    ns["handle_session"](["two", "three"])
    assert contents(memory_singleton, "bp-1") == [
        ("conversation", "bp-1"),
        ("question", "one"),
        ("answer", "echo: one"),
        ("question", "two"),
        ("answer", "echo: two"),
        ("question", "three"),
        ("answer", "echo: three"),
    ]
    with pytest.raises(NoDataToSendException):
        conversation_tracker.send_tracked_data()


def test_track_question_and_track_answer_are_the_message_calls(memory_singleton: str) -> None:
    """The published docs' examples call the older names; both trackers have them."""
    conversation_tracker.get_or_create_conversation("aliases")
    conversation_tracker.track_question("how?")
    conversation_tracker.track_answer("like this")
    assert conversation_tracker.flush(timeout=10)

    async def main() -> None:
        aio = conversation_tracker.aio
        await aio.track_question("and async?", conversation_id="aliases")
        await aio.track_answer("the same", conversation_id="aliases")
        assert await aio.flush(timeout=10)

    asyncio.run(main())
    got = [
        (r["type"], r["data"]["content"])
        for r in recorded(memory_singleton, "aliases")
        if r["type"] in ("question", "answer")
    ]
    assert got == [
        ("question", "how?"),
        ("answer", "like this"),
        ("question", "and async?"),
        ("answer", "the same"),
    ]
