"""The transcript pages in a real headless Chromium (Debian's package, via Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_support import AUTH, KEY, replay

from agentsight_collector import LocalCollector

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
    ),
]

SCRIPT = "<script>window.__pwned = true</script>"


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=30_000)
        try:
            yield b
        finally:
            b.close()


def test_list_then_transcript_in_a_real_browser(
    browser: Any, collector: LocalCollector, tmp_path: Path
) -> None:
    with httpx.Client(base_url=collector.url, headers=AUTH, timeout=10) as client:
        replay(client, "legacy_0.0.44.jsonl")
        client.post(
            "/api/track/",
            json={
                "conversation_id": "chat-123",
                "content": SCRIPT,
                "sender": "agent",
                "timestamp": "2026-11-28T10:37:13+00:00",
            },
        )

    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{collector.url}/?key={KEY}")
    assert "key=" not in page.url  # swapped for a session cookie

    rows = page.locator("tr.conversation-row")
    assert rows.count() == 2
    row = rows.filter(has_text="Support Chat")
    assert row.locator(".message-count").inner_text() == "7"
    assert row.locator(".tokens").inner_text() == "130 / 35 / 165"

    row.locator("a.open").click()
    page.wait_for_url("**/conversations/*/")
    assert page.locator("h1.conversation-name").inner_text() == "Support Chat"

    messages = page.locator("li.item-message .content").all_inner_texts()
    assert messages == [
        "Hi, I need help with my order",
        "Sure! What's your order number?",
        "Here is a photo of the damage",
        "Thanks, here is your return label",
        "And the invoice",
        "Thanks, that's all",
        SCRIPT,  # shown as text, never run
    ]
    assert page.evaluate("() => window.__pwned === undefined")
    kinds = page.locator("ol.transcript > li").evaluate_all("els => els.map(e => e.dataset.type)")
    assert kinds[:4] == ["message", "message", "action", "button"]
    assert page.locator(".action-name").inner_text() == "lookup_order"
    assert page.locator(".item-action .duration").inner_text() == "1250.0 ms"
    assert page.locator(".button-label").inner_text() == "Yes"

    with page.expect_download() as info:
        page.locator("a.download", has_text="note.txt").click()
    download = info.value
    assert download.suggested_filename == "note.txt"
    saved = tmp_path / "note.txt"
    download.save_as(saved)
    assert saved.read_bytes() == b"hello attachment"

    shot = tmp_path / "transcript.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    context.close()
