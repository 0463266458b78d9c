"""Run the compatibility scenario with the published ``agentsight==0.1.4`` client.

Runs inside that client's own virtualenv (never ours), started by
``tests/compat/test_published_clients.py``.  Usage::

    python v014_scenario.py ENDPOINT API_KEY RESULT.json

0.1.4 has no ``track_*`` calls: the same story (``compat_scenario``) is told
with its own API - ``open_conversation`` for the visit, a ``conversation``
scope, ``turn``s holding the messages, ``@tool`` calls (one failing),
``record_llm_call`` (the single entry point its provider integrations use) for
token usage, ``button``, ``upload_attachments`` for the files, ``flush`` and
``shutdown``.  Where 0.1.4 cannot say what the seed flow says (a tool's
metadata, explicit start/end times, multipart, a generated file name), the
comparison in the test leaves that field out for this client.

Writes ``{"version", "init", "flush", "uploads", "log": [WARNING+ records]}``;
the test fails on any logged export error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from importlib.metadata import version
from typing import Any

import agentsight
import compat_scenario as s  # same directory, on sys.path as the script's
from agentsight.api import AgentSight
from agentsight.sdk.instrumentation.base import record_llm_call


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name} {record.levelname}: {record.getMessage()}")


@agentsight.tool
def lookup_order(order_id: str) -> str:
    return s.LOOKUP["response"]


@agentsight.tool
def refund_order(order_id: str) -> str:
    raise RuntimeError(s.REFUND["error_msg"])


def llm_call(prompt: int, completion: int, _total: int, embedding: int) -> None:
    # total has no attribute on an llm span: the backend derives it (protocol §4)
    record_llm_call(
        s.SYSTEM,
        s.MODEL,
        input_tokens=prompt,
        output_tokens=completion,
        embedding_tokens=embedding,
        operation="chat",
    )


def file(name: str, data: bytes, mime: str) -> dict[str, Any]:
    return {"filename": name, "data": data, "mime_type": mime}


def main(endpoint: str, api_key: str, out_path: str) -> None:
    collect = _Collect()
    logging.getLogger("agentsight").addHandler(collect)
    logging.getLogger("agentsight").setLevel(logging.INFO)
    result: dict[str, Any] = {"version": version("agentsight"), "uploads": []}

    result["init"] = agentsight.init(
        api_key,
        endpoint=endpoint,
        auto_instrument=False,
        export_interval_ms=60_000,  # deliver on our flush() calls, not on a timer
    )

    agentsight.open_conversation(s.VISIT_ID, **s.VISIT)

    with agentsight.conversation(s.CHAT_ID, **s.CHAT):
        with agentsight.turn("greeting"):
            agentsight.user_message(s.GREETING)
            agentsight.agent_message(s.ASK_ORDER, metadata={"template": "ask_order"})
        with agentsight.turn("lookup"):
            agentsight.user_message(s.GIVE_ORDER)
            lookup_order(**s.ORDER_ARGS)
            llm_call(*s.TOKEN_CALLS[0])
            with contextlib.suppress(RuntimeError):  # a failing tool is data
                refund_order(**s.ORDER_ARGS)
            agentsight.agent_message(s.SHIPPED)
        b = s.BUTTON
        agentsight.button(b["button_event"], b["label"], b["value"], b["metadata"])
        result["uploads"].append(
            agentsight.upload_attachments(
                [file("note.txt", s.NOTE, "text/plain")],
                sender="end_user",
                metadata={"kind": "base64-standalone"},
            )
        )
        result["uploads"].append(
            agentsight.upload_attachments(
                # 0.1.4 names no file itself: the seed flow's generated name is given
                [
                    file("report.csv", s.CSV, "text/csv"),
                    file("attachment_1.png", s.PNG, "image/png"),
                ],
                sender="agent",
                metadata={"kind": "form-standalone"},
            )
        )
        with agentsight.turn("photo"):
            agentsight.user_message(s.PHOTO_MSG, metadata={"channel": "web"})
        with agentsight.turn("documents"):
            llm_call(*s.TOKEN_CALLS[1])
            agentsight.agent_message(s.LABEL_MSG)
            agentsight.agent_message(s.INVOICE_MSG)
        result["flush"] = [agentsight.flush()]

        # Files for a message: upload with the message's id, read back through
        # 0.1.4's own data-plane client (its documented way to get that id).
        ags = AgentSight(api_key, endpoint=endpoint)
        record = ags.conversations.get(s.CHAT_ID)
        ids = {m["content"]: m["id"] for m in record["messages"]}
        for content, sender, meta, f in (
            (s.PHOTO_MSG, "end_user", {"channel": "web"}, file("damage.png", s.PHOTO, "image/png")),
            (s.LABEL_MSG, "agent", None, {"filename": "label.txt", "data": s.LABEL}),
            (s.INVOICE_MSG, "agent", None, file("invoice.txt", s.INVOICE, "text/plain")),
        ):
            result["uploads"].append(
                agentsight.upload_attachments(
                    [f], sender=sender, metadata=meta, message_id=ids[content]
                )
            )
        # outside any turn: 0.1.4 opens a one-off turn named "message"
        agentsight.user_message(s.BYE)

    result["flush"].append(agentsight.flush())
    agentsight.shutdown()
    result["log"] = collect.records
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, default=repr, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:4])
