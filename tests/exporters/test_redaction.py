"""Credential redaction: the helpers, and the filters on our logger and httpx's."""

from __future__ import annotations

import logging

from agentsight_async._exporters import _redaction
from agentsight_async._exporters._ingest import IngestExporter
from agentsight_async._exporters._redaction import RedactingFilter

#: Looks like a key; appears in URLs and echoed headers below.
URL_KEY = "ags_" + "f" * 32 + "_abcdef"


def test_redact_and_scrub() -> None:
    text = f"Authorization: Api-Key {URL_KEY} and api-key   x1 and {URL_KEY}"
    assert _redaction.redact(text) == (
        "Authorization: Api-Key <redacted> and api-key <redacted> and ags_<redacted>"
    )
    body = {"detail": f"bad key {URL_KEY}", "echo": [{f"k {URL_KEY}": "Api-Key 123"}], "n": 1}
    scrubbed = _redaction.scrub(body)
    assert URL_KEY not in repr(scrubbed)
    assert scrubbed["n"] == 1
    assert scrubbed["echo"] == [{"k ags_<redacted>": "Api-Key <redacted>"}]


def test_filter_on_our_logger_redacts_every_record() -> None:
    record = logging.LogRecord(
        "agentsight_async", logging.WARNING, __file__, 1, "sent %s with %s", None, None
    )
    record.args = ("Authorization: Api-Key ags_" + "a" * 32 + "_abcdef", "ags_deadbeef")
    assert RedactingFilter().filter(record)  # outside any request of ours
    message = record.getMessage()
    assert "ags_a" not in message
    assert "deadbeef" not in message
    assert "Api-Key <redacted>" in message


def test_filters_installed_once_and_no_handlers(make_settings, stats) -> None:
    IngestExporter(make_settings(), stats)
    IngestExporter(make_settings(), stats)
    for name in ("agentsight_async", *_redaction.HTTP_LOGGERS):
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RedactingFilter)]
        assert len(filters) == 1, name
    assert logging.getLogger("agentsight_async").handlers == []  # a library installs none
