"""Helpers for users' own tests (like ``structlog.testing``).

Point the tracker at ``memory://`` (or ``memory://NAME`` to keep suites
apart) and read back what it would have sent::

    from agentsight_async import ConversationTracker
    from agentsight_async.testing import recorded, clear_recorded

    tracker = ConversationTracker(endpoint="memory://my-test")
    tracker.track_human_message("hi", conversation_id="c1")
    tracker.flush()
    assert [r["data"]["content"] for r in recorded("memory://my-test")] == ["hi"]
"""

from __future__ import annotations

from typing import Any

from ._exporters._memory import clear, store

#: A well-formed API key that is no real credential (``ags_`` + 32 hex + ``_`` + 6 hex),
#: for tests that need a key to pass validation, e.g. against the local collector.
DUMMY_API_KEY = "ags_" + "0123456789abcdef" * 2 + "_abc123"
"""A well-formed API key that is no real credential, for tests and examples.

``ags_`` + 32 hex + ``_`` + 6 hex: it passes validation, e.g. against the local
collector in ``dev`` mode or a fake backend (``httpx.MockTransport``).
"""


def recorded(url: str = "memory://", conversation_id: str | None = None) -> list[dict[str, Any]]:
    """Copies of the records delivered to a ``memory://`` endpoint, in delivery order.

    Flush the tracker first (``tracker.flush()``): records appear once the
    background flusher delivered them.

    Args:
        url: the tracker's ``memory://`` endpoint (``memory://`` alone is one
            endpoint too).
        conversation_id: only this conversation's records.

    Returns:
        One dict per event: ``{"id", "span_id", "kind", "type",
        "conversation_id", "timestamp", "data"}``, where ``data`` is the original
        SDK's item shape (``content``, ``sender``, ``action_name``, ``metadata``
        ...) and ``kind`` one of ``conversation``, ``conversation_opened``,
        ``question``, ``answer``, ``action``, ``button``, ``attachments``,
        ``token_usage``.
    """
    items = list(store(url))
    if conversation_id is not None:
        items = [r for r in items if r["conversation_id"] == conversation_id]
    return items


def clear_recorded(url: str | None = None) -> None:
    """Forget the records of one ``memory://`` endpoint, or of all of them.

    Args:
        url: the endpoint to clear; ``None`` clears every ``memory://`` endpoint.
    """
    clear(url)


__all__ = ["DUMMY_API_KEY", "clear_recorded", "recorded"]
