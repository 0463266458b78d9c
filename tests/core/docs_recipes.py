"""Runners for the recipe pages: each runs its page's code the way the page says, and checks it.

``RUNNERS`` maps ``(page, title)`` - or ``(page, index)`` for an untitled block -
to a function ``run(block, ctx)``.  A runner uses real parts: the framework's own
test client, or a real server / worker / kernel as a child process sending to a
real local collector (``LocalCollector``) on loopback, stopped gracefully so
that the SDK's own shutdown path is what delivers the last events.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from docs_support import (
    ROOT,
    Block,
    bin_path,
    clean_env,
    free_port,
    running,
    stop,
    transcripts,
    write_files,
)

from agentsight_async.testing import recorded


@dataclass
class Context:
    """What a runner gets: the block's ``memory://`` endpoint, a directory, the fixtures."""

    endpoint: str
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest


Runner = Callable[[Block, Context], None]
RUNNERS: dict[tuple[str, str | int | None], Runner] = {}


def runner(page: str, key: str | int) -> Callable[[Runner], Runner]:
    def register(fn: Runner) -> Runner:
        RUNNERS[(page, key)] = fn
        return fn

    return register


def load_module(block: Block, ctx: Context, name: str | None = None) -> types.ModuleType:
    """Run *block* as the module its title names (``main.py`` -> ``main``), importable."""
    name = name or Path(block.title or "docs_block.py").stem
    module = types.ModuleType(name)
    module.__file__ = str(ctx.tmp_path / (block.title or "docs_block.py"))
    ctx.monkeypatch.setitem(sys.modules, name, module)
    exec(compile(block.code, block.where, "exec"), module.__dict__)
    return module


def by_conversation(endpoint: str) -> dict[str, list[tuple[str, Any]]]:
    """What a memory:// endpoint recorded, as ``{conversation: [(kind, content-or-name)]}``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for r in recorded(endpoint):
        data = r["data"]
        what = data.get("content", data.get("action_name", data.get("total_tokens")))
        out.setdefault(r["conversation_id"], []).append((r["kind"], what))
    return out


# --- FastAPI ---------------------------------------------------------------------------


@runner("recipes/fastapi.md", "main.py")
def fastapi_app(block: Block, ctx: Context) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    main = load_module(block, ctx)
    with TestClient(main.app) as client:  # runs the lifespan: startup, then shutdown
        for i in range(3):
            answer = client.post(
                "/chat", json={"text": f"question {i}"}, headers={"x-chat-id": f"chat-{i}"}
            )
            assert answer.status_code == 200, answer.text
        assert client.post("/chat", json={"text": "no id"}).status_code == 200
    assert main.tracker.is_closed  # the lifespan closed the tracker, delivering the rest
    seen = by_conversation(ctx.endpoint)
    assert seen["chat-1"] == [
        ("conversation", None),
        ("question", "question 1"),
        ("action", "search_kb"),
        ("token_usage", 390),
        ("answer", "Here is what I found about 'question 1'."),
    ]
    generated = [c for c in seen if c.startswith("req-")]
    assert len(generated) == 1
    assert seen[generated[0]][1] == ("question", "no id")
    assert len(seen) == 4


@runner("recipes/fastapi.md", 1)
def fastapi_dependency(block: Block, ctx: Context) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    module = load_module(block, ctx, "support_app")
    with TestClient(module.app) as client:
        reply = client.post("/support/chat", params={"text": "help"}, headers={"x-chat-id": "t-9"})
        assert reply.json() == "On it."
        assert client.post("/support/chat", params={"text": "x"}).status_code == 422  # no id
    # The tracker was bound to the test client's loop, which ended: a new loop sends the
    # rest.  (flush() first: aclose() alone drops them - see test_docs_findings.py.)
    asyncio.run(module.tracker.flush())
    asyncio.run(module.tracker.aclose())
    assert by_conversation(ctx.endpoint) == {
        "t-9": [("conversation", None), ("question", "help"), ("answer", "On it.")]
    }


# --- a collector on loopback, and the command lines the pages show ----------------------


@contextlib.contextmanager
def collector() -> Iterator[Any]:
    from agentsight_collector import LocalCollector

    with LocalCollector() as running_collector:
        yield running_collector


def command_on_page(page: str, command: str) -> list[str]:
    """The page shows *command* (so the test runs what the reader is told to run)."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert f"$ {command}" in text, f"{page} no longer shows `{command}`"
    words = shlex.split(command)
    while "=" in words[0]:  # VAR=value prefixes
        words.pop(0)
    return [bin_path(words[0]), *words[1:]]


def env_prefix(command: str) -> dict[str, str]:
    words = shlex.split(command)
    found = {}
    while "=" in words[0]:
        key, _, value = words.pop(0).partition("=")
        found[key] = value
    return found


# --- Flask --------------------------------------------------------------------------------


@runner("recipes/flask.md", "app.py")
def flask_app(block: Block, ctx: Context) -> None:
    pytest.importorskip("flask")
    module = load_module(block, ctx, "flask_recipe_app")
    client = module.app.test_client()
    for i in range(3):
        reply = client.post("/chat", json={"text": f"q{i}"}, headers={"X-Chat-Id": f"chat-{i}"})
        assert reply.get_json() == {"answer": f"You asked: q{i}"}
    client.post("/chat", json={"text": "anonymous"})
    assert module.tracker.current_conversation_id is None  # each request restored it
    assert module.tracker.flush(timeout=10)
    module.tracker.close()
    seen = by_conversation(ctx.endpoint)
    assert seen["chat-2"] == [
        ("conversation", None),
        ("question", "q2"),
        ("action", "search_kb"),
        ("answer", "You asked: q2"),
    ]
    assert len(seen) == 4


# --- Django: a real gunicorn (WSGI) and a real uvicorn (ASGI), into a real collector ----------

DJANGO_WSGI = "gunicorn --workers 2 --threads 4 mysite:application"
DJANGO_ASGI = "SERVER_GATEWAY=asgi uvicorn mysite:application"


@runner("recipes/django.md", "mysite.py")
def django_site(block: Block, ctx: Context) -> None:
    pytest.importorskip("django")
    write_files("recipes/django.md", ctx.tmp_path)
    for command in (DJANGO_WSGI, DJANGO_ASGI):
        argv = command_on_page("recipes/django.md", command)
        port = free_port()
        argv += ["--bind", f"127.0.0.1:{port}"] if "gunicorn" in argv[0] else ["--port", str(port)]
        with collector() as server:
            env = clean_env(
                AGENTSIGHT_API_ENDPOINT=server.url,
                AGENTSIGHT_API_KEY=server.api_key,
                **env_prefix(command),
            )
            base = f"http://127.0.0.1:{port}"
            with running(argv, ctx.tmp_path, env, ready_url=f"{base}/chat/sync?q=ping") as proc:
                for i in range(4):
                    for kind in ("sync", "async"):
                        reply = httpx.get(
                            f"{base}/chat/{kind}",
                            params={"q": f"{kind} {i}"},
                            headers={"X-Chat-Id": f"{kind}-{i}"},
                        )
                        assert reply.json() == {"answer": f"({kind}) {kind} {i}"}
                stop(proc)  # SIGTERM: a graceful shutdown
            seen = transcripts(server.storage)
        for i in range(4):
            for kind in ("sync", "async"):
                assert seen[f"{kind}-{i}"] == [
                    ("user", f"{kind} {i}"),
                    ("agent", f"({kind}) {kind} {i}"),
                ], (command, seen)
        assert [c for c in seen if c.startswith("req-")], seen  # the readiness check(s)
