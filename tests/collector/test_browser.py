"""The transcript pages in a real headless Chromium (Debian's package, via Playwright)."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collector_support import AUTH, DASHBOARD_EXPECTED, KEY, replay, seed_dashboard

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


# -- working from the pages, and the dashboard ----------------------------------------------

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


class _EvilSite:
    """Another origin (127.0.0.1, another port): its page auto-submits a form to the collector."""

    def __init__(self, target: str) -> None:
        html = (
            "<!doctype html><title>win a prize</title>"
            f'<form id="f" method="post" action="{target}">'
            '<input type="hidden" name="name" value="pwned"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _EvilSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def _caption(page: Any, chart: str, key: str) -> str:
    text = page.locator(f'svg#{chart} g.row[data-key="{key}"] text.caption').text_content()
    assert isinstance(text, str)
    return text


def test_manage_a_conversation_and_read_the_dashboard(
    browser: Any, collector: LocalCollector
) -> None:
    with httpx.Client(base_url=collector.url, headers=AUTH, timeout=10) as client:
        pks = seed_dashboard(client)
        scratch = client.post(
            "/api/track/",
            json={
                "conversation_id": "scratch",
                "content": "throw me away",
                "sender": "end_user",
                "timestamp": "2026-11-27T12:00:00+00:00",
            },
        ).json()["conversation"]

    context = browser.new_context(
        timezone_id="America/New_York", locale="en-US", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{collector.url}/?key={KEY}")
    assert page.locator("tr.conversation-row").count() == 3

    # rename, mark and leave feedback on a conversation, from its page
    page.locator("tr.conversation-row", has_text="Dashboard A").locator("a.open").click()
    page.wait_for_url(f"**/conversations/{pks['dash-a']}/")
    page.locator("form.rename input[name=name]").fill("Refund for order 1042")
    page.locator("form.rename button").click()
    page.wait_for_load_state()
    assert page.locator("h1.conversation-name").inner_text() == "Refund for order 1042"
    page.locator("form.mark button").click()
    page.wait_for_load_state()
    assert page.locator("h1.conversation-name .star").count() == 1
    assert page.locator("form.mark button").inner_text() == "★ Unmark"
    page.locator("form.feedback-form select").select_option("neutral")
    page.locator("form.feedback-form input[name=comment]").fill("Checked by support")
    page.locator("form.feedback-form button").click()
    page.wait_for_load_state()
    feedback = page.locator("li.feedback[data-source=platform]")
    assert feedback.locator(".comment").inner_text() == "Checked by support"

    # times are shown in the reader's zone (New York, UTC-5 in November), UTC in the tooltip
    first = page.locator("li.item-message time").first
    assert "05:01:00" in first.inner_text()
    assert first.get_attribute("title") == "2026-11-25 10:01:00 UTC"
    # feedback times are "now": masked in the page colour so the committed image only
    # changes when the page does
    page.screenshot(
        path=str(DOCS_IMAGES / "collector-transcript.png"),
        full_page=True,
        mask=[page.locator("li.feedback time")],
        mask_color="#f6f8fa",
    )

    # delete another conversation from its page: gone from the list, back with "include deleted"
    page.goto(f"{collector.url}/conversations/{scratch}/")
    page.locator("form.delete button").click()
    page.wait_for_load_state()
    assert page.locator(".notice.deleted").count() == 1
    page.goto(f"{collector.url}/")
    rows = page.locator("tr.conversation-row")
    assert rows.count() == 2
    assert rows.filter(has_text="Refund for order 1042").locator(".star").count() == 1
    page.locator("input[name=deleted]").check()
    page.locator("form.filters button").click()
    page.wait_for_load_state()
    assert page.locator("tr.conversation-row.deleted").count() == 1

    # the dashboard, for the known data set (the deleted conversation left out)
    page.goto(f"{collector.url}/dashboard/")
    totals = dict(DASHBOARD_EXPECTED["totals"], feedback=4)
    for key, value in totals.items():
        assert page.locator(f'.tile[data-key="{key}"] .value').inner_text() == str(value), key
    events = page.locator("svg#events-over-time rect")
    assert [int(v) for v in events.evaluate_all("els => els.map(e => e.dataset.value)")] == (
        DASHBOARD_EXPECTED["events"]
    )
    heights = events.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert heights[0] > heights[1] > heights[2] == 0
    assert heights[1] / heights[0] == pytest.approx(3 / 4, rel=0.02)
    started = page.locator("svg#conversations-over-time rect")
    assert [int(v) for v in started.evaluate_all("els => els.map(e => e.dataset.value)")] == (
        DASHBOARD_EXPECTED["conversations"]
    )
    assert _caption(page, "tokens-by-model", "gpt-4o") == "180 tokens"
    assert _caption(page, "tokens-by-model", "claude-sonnet") == "40 tokens"
    assert _caption(page, "action-latency", "search") == "p50 200 · p95 400 ms"
    assert _caption(page, "action-latency", "lookup") == "p50 50 · p95 50 ms"
    assert _caption(page, "action-errors", "search") == "1 of 4 failed"
    assert _caption(page, "action-errors", "lookup") == "0 of 1 failed"
    assert _caption(page, "feedback-sentiment", "all feedback") == ("2 pos · 1 neu · 1 neg")
    assert _caption(page, "feedback-sentiment", "from platform") == ("0 pos · 1 neu · 0 neg")
    widths = page.locator("svg#tokens-by-model g.row rect").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert (widths[2] + widths[3]) / (widths[0] + widths[1]) == pytest.approx(40 / 180, rel=0.02)
    page.screenshot(path=str(DOCS_IMAGES / "collector-dashboard.png"), full_page=True)
    context.close()


def test_a_forged_cross_site_form_is_refused_in_a_real_browser(
    browser: Any, collector: LocalCollector
) -> None:
    with httpx.Client(base_url=collector.url, headers=AUTH, timeout=10) as client:
        pk = client.post(
            "/api/conversations/", json={"conversation_id": "victim", "name": "Mine"}
        ).json()["id"]
        context = browser.new_context()
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto(f"{collector.url}/?key={KEY}")  # the victim is signed in
        target = f"{collector.url}/conversations/{pk}/rename/"
        with _EvilSite(target) as evil:
            with page.expect_response(lambda r: r.url == target) as answer:
                page.goto(evil.url)  # its script posts the form to the collector
            assert answer.value.status == 403
            assert "cross-site request check failed" in page.content()
        context.close()
        name = client.get(f"/api/conversations/{pk}/", params={"full": "false"}).json()["name"]
        assert name == "Mine"
