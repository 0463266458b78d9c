"""The dashboard: its numbers for a known data set, and the charts that draw them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from collector_support import DASHBOARD_EXPECTED, seed_dashboard

from agentsight_collector import LocalCollector, Storage
from agentsight_collector._stats import activity, percentile

EXPECTED = DASHBOARD_EXPECTED


def test_numbers_for_a_known_data_set(client: httpx.Client, collector: LocalCollector) -> None:
    seed_dashboard(client)
    data = collector.storage.dashboard()
    assert data["totals"] == EXPECTED["totals"]
    buckets = data["activity"]["buckets"]
    assert data["activity"]["unit"] == "day"
    assert [b["start"][:10] for b in buckets] == EXPECTED["days"]
    assert [b["events"] for b in buckets] == EXPECTED["events"]
    assert [b["conversations"] for b in buckets] == EXPECTED["conversations"]
    tokens = {
        t["model"]: (t["input_tokens"], t["output_tokens"], t["total_tokens"])
        for t in data["tokens_by_model"]
    }
    assert tokens == EXPECTED["tokens"]
    assert [t["model"] for t in data["tokens_by_model"]] == ["gpt-4o", "claude-sonnet"]
    actions = {a["action_name"]: a for a in data["actions"]}
    for name, (p50, p95) in EXPECTED["latency"].items():
        assert (actions[name]["p50_ms"], actions[name]["p95_ms"]) == (p50, p95)
    for name, (errors, calls) in EXPECTED["errors"].items():
        assert (actions[name]["errors"], actions[name]["calls"]) == (errors, calls)
    assert data["feedback"]["by_sentiment"] == EXPECTED["feedback"]
    assert data["feedback"]["by_source"] == {"customer": EXPECTED["feedback"]}


def _svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg id="{chart_id}".*?</svg>', html, re.S)
    assert match, chart_id
    return match.group(0)


def test_the_page_draws_the_numbers(client: httpx.Client) -> None:
    seed_dashboard(client)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    html = page.text
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert "http://" not in html
    assert "https://" not in html
    for key, value in EXPECTED["totals"].items():
        assert re.search(rf'data-key="{key}"><div class="value">{value}</div>', html), key
    events = _svg(html, "events-over-time")
    assert [int(v) for v in re.findall(r'data-value="(\d+)"', events)] == EXPECTED["events"]
    started = _svg(html, "conversations-over-time")
    assert [int(v) for v in re.findall(r'data-value="(\d+)"', started)] == EXPECTED["conversations"]
    tokens = _svg(html, "tokens-by-model")
    assert re.search(
        r"<g class=\"row\" data-key=\"gpt-4o\".*?class=\"caption\">180 tokens<", tokens, re.S
    )
    assert "40 tokens" in tokens
    latency = _svg(html, "action-latency")
    assert "p50 200 · p95 400 ms" in latency
    assert "p50 50 · p95 50 ms" in latency
    errors = _svg(html, "action-errors")
    assert "1 of 4 failed" in errors
    assert "0 of 1 failed" in errors
    feedback = _svg(html, "feedback-sentiment")
    assert "2 pos · 0 neu · 1 neg" in feedback


def test_bars_are_proportional(client: httpx.Client) -> None:
    seed_dashboard(client)
    tokens = _svg(client.get("/dashboard/").text, "tokens-by-model")
    widths = [
        float(w) for w in re.findall(r'class="c-(?:input|output)"[^>]*width="([\d.]+)"', tokens)
    ]
    gpt_input, gpt_output, claude_input, claude_output = widths
    assert gpt_input + gpt_output == pytest.approx(250, abs=0.05)  # the longest bar is full width
    assert gpt_input / gpt_output == pytest.approx(150 / 30, rel=1e-3)
    assert claude_input + claude_output == pytest.approx(250 * 40 / 180, abs=0.05)


def test_environment_filter_and_deleted_conversations(client: httpx.Client) -> None:
    pks = seed_dashboard(client)
    production = client.get("/dashboard/", params={"environment": "production"}).text
    assert re.search(r'data-key="conversations"><div class="value">1</div>', production)
    assert "claude-sonnet" not in production
    assert client.delete(f"/api/conversations/{pks['dash-b']}/delete/").status_code == 200
    remaining = client.get("/dashboard/").text
    assert re.search(r'data-key="conversations"><div class="value">1</div>', remaining)
    assert "lookup" not in remaining


def test_hostile_names_are_escaped_on_the_dashboard(client: httpx.Client) -> None:
    script = "<script>alert('x')</script>"
    client.post(
        "/api/action_logs/",
        json={"conversation_id": "x", "action_name": script, "duration_ms": 5, "error_msg": script},
    )
    client.post(
        "/api/action_logs/",
        json={
            "conversation_id": "x",
            "action_name": "token_usage",
            "metadata": {
                "model": "<img src=x onerror=alert(1)>",
                "prompt_tokens": 1,
                "completion_tokens": 1,
                "total_tokens": 2,
            },
        },
        headers={"Idempotency-Key": "t1"},
    )
    html = client.get("/dashboard/").text
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html
    assert "&lt;img src=x" in html


def test_an_empty_dashboard(tmp_path: Path) -> None:
    with LocalCollector(tmp_path / "empty.db", dev=True) as c:
        page = httpx.get(c.url + "/dashboard/", timeout=10)
        assert page.status_code == 200
        assert "Nothing tracked yet" in page.text
    with Storage(tmp_path / "empty.db") as storage:
        assert storage.dashboard()["activity"] == {"unit": "day", "buckets": []}


def test_dashboard_needs_a_key(collector: LocalCollector) -> None:
    assert httpx.get(collector.url + "/dashboard/", timeout=10).status_code == 401


def test_percentile_is_nearest_rank() -> None:
    assert percentile([10, 20, 30, 40], 50) == 20
    assert percentile([10, 20, 30, 40], 95) == 40
    assert percentile([7], 50) == percentile([7], 95) == 7
    assert percentile(list(range(1, 101)), 95) == 95


def test_activity_is_hourly_within_two_days_and_keeps_gaps() -> None:
    hour = 3_600_000_000
    base = 1_800_000_000 * 1_000_000 // hour * hour
    result = activity([base, base + 2 * hour + 5], [base])
    assert result["unit"] == "hour"
    assert [(b["events"], b["conversations"]) for b in result["buckets"]] == [
        (1, 1),
        (0, 0),
        (1, 0),
    ]
    long = activity([base, base + 5 * 24 * hour], [])
    assert long["unit"] == "day"
    assert len(long["buckets"]) == 6
