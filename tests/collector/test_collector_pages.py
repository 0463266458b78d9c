"""The transcript pages over plain HTTP: escaping, the key-to-cookie login, headers."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
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


# -- working from the pages: forms, CSRF, local times -------------------------------------


TOKEN_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@contextlib.contextmanager
def _logged_in(collector: LocalCollector) -> Iterator[httpx.Client]:
    """A cookie-keeping client that opened ``/?key=`` once, as a browser would."""
    with httpx.Client(base_url=collector.url, timeout=10) as browser:
        assert browser.get("/", params={"key": KEY}).status_code == 303
        yield browser


def _token(browser: httpx.Client, pk: int) -> str:
    page = browser.get(f"/conversations/{pk}/")
    assert page.status_code == 200
    tokens = set(TOKEN_RE.findall(page.text))
    assert len(tokens) == 1  # every form of the page carries the session's token
    return tokens.pop()


def _name(client: httpx.Client, pk: int) -> str | None:
    name: str | None = client.get(f"/api/conversations/{pk}/", params={"full": "false"}).json()[
        "name"
    ]
    return name


def test_forms_rename_mark_feedback_delete_restore(
    client: httpx.Client, collector: LocalCollector
) -> None:
    pk = client.post("/api/conversations/", json={"conversation_id": "f", "name": "Old"}).json()[
        "id"
    ]
    with _logged_in(collector) as browser:
        token = _token(browser, pk)

        def post(action: str, **fields: str) -> httpx.Response:
            return browser.post(
                f"/conversations/{pk}/{action}/", data={"csrf_token": token, **fields}
            )

        r = post("rename", name="  Renamed here ")
        assert r.status_code == 303
        assert r.headers["location"] == f"/conversations/{pk}/"
        assert _name(client, pk) == "Renamed here"
        assert post("mark", is_marked="true").status_code == 303
        assert client.get(f"/api/conversations/{pk}/").json()["is_marked"] is True
        assert "★ Unmark" in browser.get(f"/conversations/{pk}/").text
        assert post("feedback", sentiment="neutral", comment="from the page").status_code == 303
        listed = client.get("/api/feedbacks/", params={"source": "platform"}).json()["results"]
        assert [(f["sentiment"], f["comment"], f["conversation"]) for f in listed] == [
            ("neutral", "from the page", pk)
        ]
        assert post("delete").status_code == 303
        assert client.get("/api/conversations/").json()["count"] == 0
        assert "This conversation was deleted" in browser.get(f"/conversations/{pk}/").text
        assert 'data-pk="' not in browser.get("/").text
        assert f'data-pk="{pk}"' in browser.get("/", params={"deleted": "1"}).text
        assert post("restore").status_code == 303
        assert client.get("/api/conversations/").json()["count"] == 1


def test_a_bad_form_shows_the_error(client: httpx.Client, collector: LocalCollector) -> None:
    pk = client.post("/api/conversations/", json={"conversation_id": "f", "name": "Keep"}).json()[
        "id"
    ]
    with _logged_in(collector) as browser:
        token = _token(browser, pk)
        r = browser.post(f"/conversations/{pk}/rename/", data={"csrf_token": token, "name": " "})
        assert r.status_code == 400
        assert "name: This field may not be blank." in r.text
        bad = browser.post(
            f"/conversations/{pk}/feedback/", data={"csrf_token": token, "sentiment": "angry"}
        )
        assert bad.status_code == 400
        missing = browser.post(
            "/conversations/999999/rename/", data={"csrf_token": token, "name": "x"}
        )
        assert missing.status_code == 404
        not_a_form = browser.post(f"/conversations/{pk}/rename/", json={"name": "x"})
        assert not_a_form.status_code == 415
    assert _name(client, pk) == "Keep"


def test_forged_cross_site_posts_are_refused(
    client: httpx.Client, collector: LocalCollector
) -> None:
    pk = client.post("/api/conversations/", json={"conversation_id": "f", "name": "Keep"}).json()[
        "id"
    ]
    with _logged_in(collector) as victim, _logged_in(collector) as attacker:
        token = _token(victim, pk)
        others = _token(attacker, pk)
        assert token != others
        url = f"/conversations/{pk}/rename/"
        forged = [
            victim.post(url, data={"name": "pwned"}),  # no token
            victim.post(url, data={"name": "pwned", "csrf_token": "0" * 64}),
            victim.post(url, data={"name": "pwned", "csrf_token": others}),  # another session's
            victim.post(
                url,
                data={"name": "pwned", "csrf_token": token},
                headers={"Origin": "http://evil.example"},
            ),
            victim.post(
                url,
                data={"name": "pwned", "csrf_token": token},
                headers={"Sec-Fetch-Site": "cross-site"},
            ),
        ]
        for r in forged:
            assert r.status_code == 403
            assert "cross-site request check failed" in r.text
        same_origin = victim.post(
            url,
            data={"name": "fine", "csrf_token": token},
            headers={"Origin": collector.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert same_origin.status_code == 303
    with httpx.Client(base_url=collector.url, timeout=10) as stranger:
        assert (
            stranger.post(f"/conversations/{pk}/delete/", data={"csrf_token": token}).status_code
            == 401
        )
    assert _name(client, pk) == "fine"
    assert client.get("/api/conversations/").json()["count"] == 1


def test_an_api_key_header_needs_no_token(client: httpx.Client) -> None:
    pk = client.post("/api/conversations/", json={"conversation_id": "f"}).json()["id"]
    r = client.post(f"/conversations/{pk}/rename/", data={"name": "by header"})
    assert r.status_code == 303
    assert _name(client, pk) == "by header"


def test_dev_mode_forms_need_the_session_token_too(tmp_path: Path) -> None:
    with LocalCollector(tmp_path / "dev.db", dev=True) as c:
        pk = c.storage.create_conversation({"conversation_id": "d", "name": "Keep"})["id"]
        with httpx.Client(base_url=c.url, timeout=10) as browser:
            assert (
                browser.post(f"/conversations/{pk}/rename/", data={"name": "x"}).status_code == 403
            )
            page = browser.get(f"/conversations/{pk}/")  # the first page sets a session cookie
            assert "samesite=strict" in page.headers["set-cookie"].lower()
            token = TOKEN_RE.findall(page.text)[0]
            ok = browser.post(
                f"/conversations/{pk}/rename/", data={"name": "x", "csrf_token": token}
            )
            assert ok.status_code == 303
        with httpx.Client(base_url=c.url, timeout=10) as other:  # no cookie: the token is useless
            r = other.post(f"/conversations/{pk}/rename/", data={"name": "y", "csrf_token": token})
            assert r.status_code == 403
        assert c.storage.get_conversation(pk, full=False)["name"] == "x"  # type: ignore[index]


def test_hostile_values_stay_text_in_forms_and_feedback(
    client: httpx.Client, collector: LocalCollector
) -> None:
    hostile = '"><script>alert(1)</script>'
    pk = client.post("/api/conversations/", json={"conversation_id": "h", "name": hostile}).json()[
        "id"
    ]
    client.post(
        "/api/feedbacks/", json={"conversation": pk, "sentiment": "negative", "comment": hostile}
    )
    with _logged_in(collector) as browser:
        page = browser.get(f"/conversations/{pk}/").text
        listing = browser.get("/", params={"q": hostile}).text
    for html in (page, listing):
        assert "<script>alert" not in html
        assert hostile not in html
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in page  # the rename box


def test_times_are_machine_readable_for_the_local_time_script(client: httpx.Client) -> None:
    pk = client.post(
        "/api/conversations/",
        json={"conversation_id": "t", "timestamp": "2026-11-28T10:35:20.614093+00:00"},
    ).json()["id"]
    client.post(
        "/api/track/",
        json={
            "conversation": pk,
            "content": "hi",
            "sender": "end_user",
            "timestamp": "2026-11-28T11:35:20+01:00",
        },
    )
    r = client.get(f"/conversations/{pk}/")
    assert '<time datetime="2026-11-28T10:35:20.614Z" title="2026-11-28 10:35:20 UTC">' in r.text
    nonce = re.search(r"script-src 'nonce-([^']+)'", r.headers["content-security-policy"])
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in r.text
    assert r.text.count("<script") == 1


def test_message_search_from_the_list_page(client: httpx.Client) -> None:
    for cid, text in (("a", "the parcel never arrived"), ("b", "thanks, all good")):
        client.post(
            "/api/track/", json={"conversation_id": cid, "content": text, "sender": "end_user"}
        )
        client.post("/api/conversations/", json={"conversation_id": cid, "name": f"Chat {cid}"})
    page = client.get("/", params={"q": "PARCEL"}).text
    assert "Chat a" in page
    assert "Chat b" not in page
    assert "1 conversation with a message containing “PARCEL”" in page
    assert "No conversation matches" in client.get("/", params={"q": "zzz"}).text
