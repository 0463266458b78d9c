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
import subprocess
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
    fences,
    free_port,
    page_blocks,
    running,
    stop,
    transcripts,
    wait_for,
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


def covered_by(page: str, title: str | int) -> Runner:
    """For a block that another block's runner runs as part of its scenario."""

    def check(block: Block, ctx: Context) -> None:
        assert (page, title) in RUNNERS, f"{block.where} is run by the runner of {title}"

    return check


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


# --- several workers: gunicorn --preload (fork) and uvicorn --workers (spawn) ----------------

GUNICORN_PRELOAD = "gunicorn --preload --workers 2 wsgi_app:application"
GUNICORN = "gunicorn --workers 2 wsgi_app:application"
UVICORN_WORKERS = "uvicorn chat_api:app --workers 2"


def _serve_and_chat(
    ctx: Context, command: str, path: str, chats: int, *, background: bool
) -> tuple[set[int], dict[str, list[tuple[str, Any]]]]:
    """Run *command*, send 24 questions over *chats* conversations, stop it; return the
    worker pids and the transcripts.

    With *background*, every event must reach the collector before the server is
    stopped (the workers' own flushers deliver while they serve).
    """
    argv = command_on_page("recipes/workers.md", command)
    port = free_port()
    argv += ["--bind", f"127.0.0.1:{port}"] if "gunicorn" in argv[0] else ["--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    pids = set()

    def delivered(server: Any) -> int:
        seen = transcripts(server.storage)
        return sum(len(t) for c, t in seen.items() if c.startswith("chat-"))

    with collector() as server:
        env = clean_env(AGENTSIGHT_API_ENDPOINT=server.url, AGENTSIGHT_API_KEY=server.api_key)
        with running(argv, ctx.tmp_path, env, ready_url=f"{base}/healthz") as proc:
            with httpx.Client() as client:  # a new connection per request spreads them out
                for i in range(24):
                    reply = client.get(
                        f"{base}{path}?q=q{i}",
                        headers={"X-Chat-Id": f"chat-{i % chats}", "Connection": "close"},
                    )
                    pids.add(reply.json()["worker"])  # which worker served it (not asserted:
                    # the kernel, not the test, decides which worker accepts a connection)
            if background:
                wait_for(lambda: delivered(server) >= 48)
            stop(proc)
        return pids, transcripts(server.storage)


def _all_questions_arrived(seen: dict[str, list[tuple[str, Any]]], chats: int) -> None:
    for chat in range(chats):
        questions = [what for who, what in seen[f"chat-{chat}"] if who == "user"]
        assert questions == [f"q{i}" for i in range(chat, 24, chats)], seen[f"chat-{chat}"]


@runner("recipes/workers.md", "wsgi_app.py")
def gunicorn_workers(block: Block, ctx: Context) -> None:
    pytest.importorskip("gunicorn")
    write_files("recipes/workers.md", ctx.tmp_path)
    # --preload: forked after the import; a conversation per request (see the page's warning)
    # the forked workers deliver in the background, before the server is stopped
    pids, seen = _serve_and_chat(ctx, GUNICORN_PRELOAD, "/", 24, background=True)
    assert pids
    _all_questions_arrived(seen, 24)
    # without --preload: six chats, each served by whichever worker
    pids, seen = _serve_and_chat(ctx, GUNICORN, "/", 6, background=True)
    assert pids
    _all_questions_arrived(seen, 6)


@runner("recipes/workers.md", "chat_api.py")
def uvicorn_workers(block: Block, ctx: Context) -> None:
    pytest.importorskip("fastapi")
    write_files("recipes/workers.md", ctx.tmp_path)
    pids, seen = _serve_and_chat(ctx, UVICORN_WORKERS, "/ask", 6, background=False)
    assert pids
    # everything arrived, delivered at the latest by each worker's lifespan on shutdown
    assert sorted(seen) == [f"chat-{c}" for c in range(6)]
    _all_questions_arrived(seen, 6)


# --- Celery: a real prefork worker, a filesystem broker (no server needed) -------------------

CELERY_WORKER = "celery -A agent_tasks worker --pool prefork --concurrency 2"
CELERY_TEST_CONFIG = """
broker_url = "filesystem://"
broker_transport_options = {"data_folder_in": "broker", "data_folder_out": "broker"}
worker_hijack_root_logger = False
"""


@runner("recipes/celery.md", "agent_tasks.py")
def celery_worker(block: Block, ctx: Context) -> None:
    pytest.importorskip("celery")
    write_files("recipes/celery.md", ctx.tmp_path)
    # The page's celeryconfig.py names a Redis broker; this run uses the filesystem.
    (ctx.tmp_path / "celeryconfig.py").write_text(CELERY_TEST_CONFIG)
    (ctx.tmp_path / "broker").mkdir()
    enqueue = next(b for b in page_blocks("recipes/celery.md") if "delay(" in b.code)
    argv = [*command_on_page("recipes/celery.md", CELERY_WORKER), "--loglevel", "warning"]
    with collector() as server:
        env = clean_env(AGENTSIGHT_API_ENDPOINT=server.url, AGENTSIGHT_API_KEY=server.api_key)
        # queue the tasks from "the web process": the page's own block, then more
        script = (
            "import sys; sys.path.insert(0, '.')\n"
            + enqueue.code
            + "for i in range(10):\n    answer.delay(f'chat-{i % 3}', f'item {i}')\n"
        )
        subprocess.run([sys.executable, "-c", script], cwd=ctx.tmp_path, env=env, check=True)
        with running(argv, ctx.tmp_path, env) as proc:
            # delivered in the background while the pool processes work
            wait_for(lambda: len(transcripts(server.storage)) == 4, timeout=60)
            stop(proc)  # warm shutdown
        seen = transcripts(server.storage)
    assert seen["chat-42"] == [
        ("user", "the blue kettle"),
        ("action", "lookup_order"),
        ("agent", "Your order for 'the blue kettle' has shipped."),
    ]
    for chat in range(3):
        questions = [what for who, what in seen[f"chat-{chat}"] if who == "user"]
        assert sorted(questions) == sorted(f"item {i}" for i in range(chat, 10, 3))


RUNNERS[("recipes/celery.md", 2)] = covered_by("recipes/celery.md", "agent_tasks.py")


# --- Jupyter: the page's blocks are the cells of one notebook, in a real kernel -------------


@runner("recipes/jupyter.md", 0)
def jupyter_notebook(block: Block, ctx: Context) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    from agentsight_collector import Storage

    db = ctx.tmp_path / "notebook.db"
    ctx.monkeypatch.setenv("AGENTSIGHT_API_ENDPOINT", f"sqlite:///{db}")  # the kernel's env
    ctx.monkeypatch.delenv("PYTHONASYNCIODEBUG", raising=False)
    cells = [nbformat.v4.new_code_cell(b.code) for b in page_blocks("recipes/jupyter.md")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": ctx.tmp_path}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    summary = notebook.cells[2].outputs[0]["data"]["text/plain"]
    assert "'questions': 1" in summary
    assert "'answers': 1" in summary
    with Storage(db) as storage:
        seen = transcripts(storage)
    assert seen["notebook-demo"] == [
        ("user", "Summarise the attached paper in one line."),
        ("agent", "It shows that small models can ..."),
    ]
    assert seen["notebook-async"] == [
        ("user", "Hello from a cell"),
        ("agent", "Hello from the agent"),
    ]


for _cell in (1, 2, 3):
    RUNNERS[("recipes/jupyter.md", _cell)] = covered_by("recipes/jupyter.md", 0)


# --- Discord: the real discord.py client dispatching message events (no gateway) -------------


@runner("recipes/bots.md", "discord_bot.py")
def discord_bot(block: Block, ctx: Context) -> None:
    pytest.importorskip("discord")
    module = load_module(block, ctx, "discord_bot")

    class Channel:
        def __init__(self, channel_id: int) -> None:
            self.id = channel_id
            self.sent: list[str] = []

        async def send(self, text: str) -> None:
            self.sent.append(text)

    def message(channel: Channel, author: int, text: str, bot: bool = False) -> Any:
        return types.SimpleNamespace(
            channel=channel, content=text, author=types.SimpleNamespace(id=author, bot=bot)
        )

    async def scenario() -> None:
        bot = module.bot
        async with bot:  # sets the client up without logging in
            channels = [Channel(100 + i) for i in range(5)]
            for round_ in range(3):
                for i, channel in enumerate(channels):
                    bot.dispatch("message", message(channel, i, f"hello {round_}"))
            bot.dispatch("message", message(channels[0], 999, "I am a bot", bot=True))
            for _ in range(200):
                if all(len(c.sent) == 3 for c in channels):
                    break
                await asyncio.sleep(0.01)
            assert [len(c.sent) for c in channels] == [3] * 5
        assert module.tracker.is_closed  # close() closed the tracker

    asyncio.run(scenario())
    seen = by_conversation(ctx.endpoint)
    assert sorted(seen) == [f"discord-{100 + i}" for i in range(5)]
    for items in seen.values():
        questions = sorted(what for kind, what in items if kind == "question")
        assert questions == ["hello 0", "hello 1", "hello 2"]
        assert [kind for kind, _ in items].count("answer") == 3


# --- scripts and CLIs: run as the page says, into a collector --------------------------------


def _run_script(page: str, command: str, ctx: Context) -> tuple[Any, dict[str, Any]]:
    write_files(page, ctx.tmp_path)
    argv = command_on_page(page, command)
    argv[0] = sys.executable
    with collector() as server:
        env = clean_env(AGENTSIGHT_API_ENDPOINT=server.url, AGENTSIGHT_API_KEY=server.api_key)
        done = subprocess.run(
            argv, cwd=ctx.tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done, transcripts(server.storage)


@runner("recipes/scripts.md", "summarise.py")
def summarise_script(block: Block, ctx: Context) -> None:
    (ctx.tmp_path / "report-1.txt").write_text("Sales grew. Costs fell.")
    (ctx.tmp_path / "report-2.txt").write_text("Nothing happened. Really.")
    command = "python summarise.py report-1.txt report-2.txt"
    _, seen = _run_script("recipes/scripts.md", command, ctx)
    assert seen == {  # delivered by the exit hook: the script never flushes
        "batch-summaries": [
            ("user", "Summarise report-1.txt"),
            ("agent", "Sales grew."),
            ("user", "Summarise report-2.txt"),
            ("agent", "Nothing happened."),
        ]
    }


@runner("recipes/scripts.md", "triage.py")
def triage_cli(block: Block, ctx: Context) -> None:
    done, seen = _run_script("recipes/scripts.md", "python triage.py 101 102 103", ctx)
    assert "delivered 9 event(s)" in done.stderr
    assert sorted(seen) == ["ticket-101", "ticket-102", "ticket-103"]
    assert seen["ticket-102"] == [
        ("user", "Ticket 102: printer on fire"),
        ("agent", "Ticket 102 routed to facilities"),
    ]


# --- serverless: each invocation flushes before it returns -----------------------------------


@runner("recipes/serverless.md", "handler.py")
def serverless_handler(block: Block, ctx: Context) -> None:
    module = load_module(block, ctx, "handler")
    for i in range(3):
        assert module.handler({"chat_id": f"chat-{i}", "text": f"hi {i}"}) == {
            "reply": f"Received: hi {i}"
        }
        # after each return, that invocation's events were already delivered
        assert len(by_conversation(ctx.endpoint)) == i + 1
        assert by_conversation(ctx.endpoint)[f"chat-{i}"][-1] == ("answer", f"Received: hi {i}")
    module.tracker.close()


# --- Starlette: a real uvicorn on loopback (lifespan and all) --------------------------------


@runner("recipes/starlette.md", "app.py")
def starlette_app(block: Block, ctx: Context) -> None:
    write_files("recipes/starlette.md", ctx.tmp_path)
    text = (ROOT / "docs" / "recipes" / "starlette.md").read_text(encoding="utf-8")
    assert "`uvicorn app:app`" in text
    port = free_port()
    argv = [bin_path("uvicorn"), "app:app", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with collector() as server:
        env = clean_env(AGENTSIGHT_API_ENDPOINT=server.url, AGENTSIGHT_API_KEY=server.api_key)
        with running(argv, ctx.tmp_path, env, ready_url=f"{base}/ready") as proc:
            with httpx.Client() as client:
                for i in range(5):
                    reply = client.post(
                        f"{base}/chat", json={"text": f"hi {i}"}, headers={"x-chat-id": f"c{i}"}
                    )
                    assert reply.json() == {"answer": f"HI {i}"}
            stop(proc)
        seen = transcripts(server.storage)
    assert {c: seen[c] for c in seen if not c.startswith("req-")} == {
        f"c{i}": [("user", f"hi {i}"), ("agent", f"HI {i}")] for i in range(5)
    }


# --- testing: the page's test files, run by pytest itself (pytester) -------------------------


@runner("recipes/testing.md", "test_support_agent.py")
def testing_page(block: Block, ctx: Context) -> None:
    pytester: pytest.Pytester = ctx.request.getfixturevalue("pytester")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    write_files("recipes/testing.md", pytester.path)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=5)
    # the failure message the page shows is the one a failing assertion prints
    pytester.makepyfile(
        test_failing="""
        from test_support_agent import answer

        def test_fails(agentsight):
            answer(agentsight.tracker, "chat-1", "How do I reset my password?")
            agentsight.assert_tracked("agent_message", content="Goodbye")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "test_failing.py")
    result.assert_outcomes(failed=1)
    shown = next(f for f in fences_of("recipes/testing.md") if f[0] == "text")[2]
    result.stdout.fnmatch_lines([f"*{line}" for line in shown.strip().splitlines()])


for _title in ("test_async_agent.py", "conftest.py", "test_legacy_agent.py"):
    RUNNERS[("recipes/testing.md", _title)] = covered_by(
        "recipes/testing.md", "test_support_agent.py"
    )


def fences_of(page: str) -> list[tuple[str, str, str]]:
    return fences((ROOT / "docs" / page).read_text(encoding="utf-8"))
