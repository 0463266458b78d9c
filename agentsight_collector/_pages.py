"""The transcript web pages: a conversation list and one transcript.

Rendering uses jinja2 with autoescaping always on, so every piece of user
content (messages, names, metadata, filenames) reaches the browser as text.
Pages set a strict Content-Security-Policy and load nothing external.

Auth.  With ``--dev`` the pages are open (the server binds loopback by
default).  Otherwise open ``/?key=<api key>`` once: the key is checked, an
HttpOnly, SameSite=Strict session cookie (a random token, not the key) is set,
and the browser is redirected to the same URL without the key, so the key
stays out of history and logs.  An ``Authorization: Api-Key`` header works too.
"""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from agentsight_async._store import FieldValidationError, NotFoundError

from ._filters import ConversationFilters
from ._http import KeyChecker, file_response, key_from_headers
from ._storage import Storage

COOKIE = "agentsight_collector_session"
PAGE_SIZE = 50
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _pretty(value: Any) -> str:
    """Indented JSON as plain text; autoescaping makes it safe in the page."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # always, whatever the template's extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty
    return env


class Sessions:
    """Random session tokens issued after a valid ``?key=``; in memory only."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens.add(token)
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            return token in self._tokens


class Pages:
    def __init__(self, storage: Storage, keys: KeyChecker) -> None:
        self.storage = storage
        self.keys = keys
        self.sessions = Sessions()
        self.env = _environment()

    def routes(self) -> list[Route]:
        return [
            Route("/", self.conversation_list, methods=["GET"], name="page_list"),
            Route(
                "/conversations/{pk:int}/",
                self.conversation,
                methods=["GET"],
                name="page_conversation",
            ),
            Route("/files/{pk:int}/", self.download, methods=["GET"], name="page_file"),
        ]

    # -- auth ----------------------------------------------------------------------

    def _gate(self, request: Request) -> Response | None:
        """``None`` when the request may see pages, else the response to send."""
        if self.keys.dev:
            return None
        key = request.query_params.get("key")
        if key is not None:
            if not self.keys.accepts(key):
                return self._render("login.html", {"invalid": True}, status=401)
            target = request.url.remove_query_params("key")
            response = RedirectResponse(str(target), status_code=303)
            response.set_cookie(
                COOKIE, self.sessions.issue(), httponly=True, samesite="strict", path="/"
            )
            return response
        if self.sessions.valid(request.cookies.get(COOKIE)):
            return None
        if self.keys.accepts(key_from_headers(request)):
            return None
        return self._render("login.html", {"invalid": False}, status=401)

    def _render(self, template: str, context: dict[str, Any], *, status: int = 200) -> Response:
        html = self.env.get_template(template).render(**context)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    # -- views -----------------------------------------------------------------------

    async def conversation_list(self, request: Request) -> Response:
        denied = self._gate(request)
        if denied is not None:
            return denied
        params = request.query_params
        filters = {
            k: params.get(k) or None
            for k in ("conversation_id", "customer_id", "environment", "name")
        }
        try:
            page = max(1, int(params.get("page") or 1))
        except ValueError:
            page = 1
        try:
            result = await run_in_threadpool(
                lambda: self.storage.list_conversations(
                    ConversationFilters(**filters), page=page, page_size=PAGE_SIZE
                )
            )
        except (NotFoundError, FieldValidationError):
            result = {"count": 0, "next": None, "previous": None, "results": []}
        links = {
            "next": str(request.url.include_query_params(page=result["next"]))
            if result["next"]
            else None,
            "previous": str(request.url.include_query_params(page=result["previous"]))
            if result["previous"]
            else None,
        }
        return self._render(
            "list.html",
            {"page": result, "links": links, "filters": filters, "page_number": page},
        )

    async def conversation(self, request: Request) -> Response:
        denied = self._gate(request)
        if denied is not None:
            return denied
        pk = int(request.path_params["pk"])
        conversation = await run_in_threadpool(self.storage.get_conversation, pk)
        if conversation is None:
            return self._render("not_found.html", {"pk": pk}, status=404)
        return self._render("conversation.html", {"c": conversation})

    async def download(self, request: Request) -> Response:
        denied = self._gate(request)
        if denied is not None:
            return denied
        found = await run_in_threadpool(self.storage.get_attachment, int(request.path_params["pk"]))
        if found is None:
            return self._render("not_found.html", {"pk": request.path_params["pk"]}, status=404)
        return file_response(*found)
