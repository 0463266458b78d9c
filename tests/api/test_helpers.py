"""``agentsight_async.helpers``: the original package's helpers, same names and behaviour."""

from __future__ import annotations

import enum
import json
import re
from datetime import datetime, timezone

import pytest

from agentsight_async import helpers
from agentsight_async.helpers import (
    AgentSightJSONEncoder,
    generate_conversation_id,
    get_iso_timestamp,
    get_mime_type,
)


def test_the_original_names_are_all_there() -> None:
    assert sorted(helpers.__all__) == [
        "AgentSightJSONEncoder",
        "generate_conversation_id",
        "get_iso_timestamp",
        "get_mime_type",
    ]


def test_conversation_ids_are_conv_and_12_hex_and_unique() -> None:
    ids = {generate_conversation_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"conv_[0-9a-f]{12}", i) for i in ids)


def test_the_timestamp_is_now_in_utc_as_isoformat_writes_it() -> None:
    before = datetime.now(timezone.utc)
    stamp = get_iso_timestamp()
    after = datetime.now(timezone.utc)
    parsed = datetime.fromisoformat(stamp)
    assert before <= parsed <= after
    assert stamp == parsed.isoformat()  # "+00:00", microseconds (or none when zero)
    assert stamp.endswith("+00:00")


@pytest.mark.parametrize(
    ("source", "mime"),
    [
        ("report.pdf", "application/pdf"),
        ("photo.JPG", "image/jpeg"),
        ("data.csv", "text/csv"),
        ("notes.txt", "text/plain"),
        ("page.html", "text/html"),
        ("doc.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("archive.zip", "application/zip"),
        ("no-extension", "application/octet-stream"),
        ("", "application/octet-stream"),
        (b"%PDF-1.7 ...", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"\xff\xd8\xff\xe0....", "image/jpeg"),
        (b"GIF89a...", "image/gif"),
        (b"PK\x03\x04....", "application/zip"),
        (b"plain words\nand a line", "text/plain"),
        ("naïve text".encode(), "text/plain"),
        (b"\x00\x01\x02\xfe\xff", "application/octet-stream"),
        (b"", "application/octet-stream"),
        (12345, "application/octet-stream"),
    ],
)
def test_mime_types_from_names_and_content(source: object, mime: str) -> None:
    assert get_mime_type(source) == mime  # type: ignore[arg-type]


class Sender(str, enum.Enum):
    USER = "end_user"


class Mode(enum.Enum):
    BASE64 = "base64"


def test_the_encoder_writes_enums_as_their_values() -> None:
    data = {"sender": Sender.USER, "mode": Mode.BASE64, "n": 1}
    assert json.loads(json.dumps(data, cls=AgentSightJSONEncoder)) == {
        "sender": "end_user",
        "mode": "base64",
        "n": 1,
    }
    with pytest.raises(TypeError):
        json.dumps({"when": datetime.now()}, cls=AgentSightJSONEncoder)
