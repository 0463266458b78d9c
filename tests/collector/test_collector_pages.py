"""The transcript pages over plain HTTP: escaping, the key-to-cookie login, headers."""

from __future__ import annotations

from pathlib import Path

import httpx
from collector_support import KEY, OTHER_KEY

from agentsight_collector import LocalCollector

SCRIPT = "<script>alert('xss')</script>"


def _seed(client: httpx.Client) -> int:
    pk: int = client.post(
        "/api/conversations/",
        json={"conversation_id": "xss", "name": SCRIPT, "customer_id": "<b>cust</b>"},
    ).json()["id"]
    client.post(
        "/api/track/",
        json={
            "conversation_id": "xss",
            "content": SCRIPT,
            "sender": "end_user",
            "metadata": {"k": SCRIPT},
        },
    )
    client.post(
        "/api/action_logs/",
        json={
            "conversation_id": "xss",
            "action_name": SCRIPT,
            "tools_used": {"x": SCRIPT},
            "error_msg": SCRIPT,
        },
    )
    client.post(
        "/api/attachments/",
        json={
            "conversation_id": "xss",
            "attachments": [
                {
                    "filename": '"><img src=x onerror=alert(1)>.html',
                    "mime_type": "text/html",
                    "data": "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
                }
            ],
        },
    )
    return pk


def test_user_content_is_escaped_everywhere(client: httpx.Client) -> None:
    pk = _seed(client)
    listing = client.get("/")
    detail = client.get(f"/conversations/{pk}/")
    for page in (listing, detail):
        assert page.status_code == 200
        assert "<script>" not in page.text
        assert "<b>cust</b>" not in page.text
        assert "&lt;script&gt;" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<img" not in detail.text


def test_attachment_downloads_never_render_inline(client: httpx.Client) -> None:
    pk = _seed(client)
    groups = client.get(f"/api/conversations/{pk}/attachments/").json()["results"]
    file_id = groups[0]["files"][0]["id"]
    r = client.get(f"/files/{file_id}/")
    assert r.status_code == 200
    assert r.content == b"<script>alert(1)</script>"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_pages_need_a_key_which_becomes_a_session_cookie(collector: LocalCollector) -> None:
    with httpx.Client(base_url=collector.url, timeout=10) as browser:
        assert browser.get("/").status_code == 401
        assert browser.get("/conversations/1/").status_code == 401
        wrong = browser.get("/", params={"key": OTHER_KEY})
        assert wrong.status_code == 401
        login = browser.get("/", params={"key": KEY, "name": "x"})
        assert login.status_code == 303
        assert "key=" not in login.headers["location"]
        assert "name=x" in login.headers["location"]
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert KEY not in cookie
        assert browser.get("/").status_code == 200  # the cookie jar carries the session
    with httpx.Client(base_url=collector.url, timeout=10) as other:
        assert other.get("/").status_code == 401


def test_dev_mode_pages_are_open(tmp_path: Path) -> None:
    with LocalCollector(tmp_path / "dev.db", dev=True) as c:
        r = httpx.get(c.url + "/", timeout=10)
        assert r.status_code == 200
        assert "No conversations yet" in r.text
        assert httpx.get(c.url + "/conversations/12345/", timeout=10).status_code == 404


def test_list_page_shows_counts_and_tokens(client: httpx.Client) -> None:
    client.post(
        "/api/conversations/",
        json={"conversation_id": "t", "name": "Tokens", "environment": "production"},
    )
    client.post("/api/track/", json={"conversation_id": "t", "content": "a", "sender": "agent"})
    client.post(
        "/api/action_logs/",
        json={
            "conversation_id": "t",
            "action_name": "token_usage",
            "metadata": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        },
    )
    page = client.get("/", params={"environment": "production"}).text
    assert "Tokens" in page
    assert "7 / 3 / 10" in page
