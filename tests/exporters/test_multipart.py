"""Attachment bytes on the wire: multipart bodies and the base64 helpers."""

from __future__ import annotations

import base64

import pytest

from agentsight_async._exporters import _multipart


def test_multipart_encoding_is_ordered_and_deterministic() -> None:
    body, ctype = _multipart.encode_multipart(
        [("a", "1"), ("b", 'x"y')], [("f", "n.txt", "text/plain", b"DATA")], [("z", "9")], "BND"
    )
    assert ctype == "multipart/form-data; boundary=BND"
    text = body.decode()
    assert text.index('name="a"') < text.index('name="b"') < text.index('name="f"')
    assert text.index('name="f"') < text.index('name="z"')
    assert 'name="b"\r\n\r\nx"y\r\n' in text
    assert 'filename="n.txt"\r\nContent-Type: text/plain\r\n\r\nDATA\r\n' in text
    assert text.endswith("--BND--\r\n")
    assert _multipart.encode_multipart([("a", "1")], [], [], "BND") == _multipart.encode_multipart(
        [("a", "1")], [], [], "BND"
    )


def test_multipart_exact_bytes_and_quoting() -> None:
    body, _ = _multipart.encode_multipart(
        [('n"a\r\nme', "é")], [("f", 'q"\n.bin', "application/octet-stream", b"\x00\xff")], [], "B"
    )
    assert body == (
        b'--B\r\nContent-Disposition: form-data; name="n%22a%0D%0Ame"\r\n\r\n'
        + "é".encode()
        + b'\r\n--B\r\nContent-Disposition: form-data; name="f"; '
        b'filename="q%22%0A.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        b"\x00\xff\r\n--B--\r\n"
    )


def test_base64_helpers_round_trip() -> None:
    atts = [
        {"filename": "a.bin", "mime_type": "application/pdf", "data": b"%PDF-1.4"},
        {"filename": None, "mime_type": None, "data": base64.b64encode(b"hi").decode()},
    ]
    b64 = _multipart.b64_attachments(atts)
    assert b64 == [
        {"filename": "a.bin", "mime_type": "application/pdf", "data": "JVBERi0xLjQ="},
        {"filename": None, "mime_type": None, "data": "aGk="},
    ]
    assert _multipart.raw_files(atts) == [
        ("attachment_0", "a.bin", "application/pdf", b"%PDF-1.4"),
        ("attachment_1", "attachment_1", "application/octet-stream", b"hi"),
    ]


@pytest.mark.parametrize("raw", [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256))])
def test_decoded_size(raw: bytes) -> None:
    assert _multipart.decoded_size(raw) == len(raw)
    assert _multipart.decoded_size(base64.b64encode(raw).decode()) == len(raw)
    assert _multipart.decoded_size(None) == 0
