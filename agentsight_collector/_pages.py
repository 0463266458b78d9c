"""The web pages: conversation list, transcript (with its actions) and dashboard.

Rendering uses jinja2 with autoescaping always on, so every piece of user
content (messages, names, metadata, filenames, action and model names)
reaches the browser as text.  Pages set a strict Content-Security-Policy:
nothing external loads, and the one script - turning UTC times into the
reader's local time - runs only with the response's nonce.  Charts are
inline SVG laid out on the server (:mod:`._charts`).

Auth.  With ``--dev`` the pages are open (the server binds loopback by
default).  Otherwise open ``/?key=<api key>`` once: the key is checked, an
HttpOnly, SameSite=Strict session cookie (a random token, not the key) is set,
and the browser is redirected to the same URL without the key, so the key
stays out of history and logs.  An ``Authorization: Api-Key`` header works too.

Forms that change data (rename, mark, delete, restore, feedback) are POSTs
protected against cross-site requests twice over:

* a CSRF token tied to the session - an HMAC of the session token under a
  per-process secret - must come back in the form (in ``--dev`` every
  browser gets a session cookie on its first page for this);
* an ``Origin`` (or ``Sec-Fetch-Site``) header naming another site is
  refused outright.

A request authenticated by its ``Authorization`` header needs neither: a
browser never sends that header on its own, so it cannot be forged
cross-site.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from agentsight_async._store import (
    ENVIRONMENTS,
    FieldValidationError,
    NotFoundError,
    us_from_iso,
)

from . import _charts
from ._filters import ConversationFilters
from ._http import KeyChecker, RequestError, file_response, key_from_headers, read_raw_body
from ._storage import Storage

COOKIE = "agentsight_collector_session"
CSRF_FIELD = "csrf_token"
PAGE_SIZE = 50
MAX_FORM_BYTES = 64 * 1024
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # not "no-referrer": with it a browser sends "Origin: null" on our own forms
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _csp(nonce: str) -> str:
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )


def _pretty(value: Any) -> str:
    """Indented JSON as plain text; autoescaping makes it safe in the page."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _localtime(value: Any) -> Markup:
    """A ``<time>`` element: UTC text the page script rewrites into local time.

    The ``title`` keeps the UTC value; something that is not an ISO-8601
    time (``started_at`` is passed through unvalidated) is shown as text.
    """
    if not isinstance(value, str) or not value:
        return Markup("—")
    try:
        us = us_from_iso(value)
    except ValueError:
        return escape(value)
    moment = datetime.fromtimestamp(us / 1e6, timezone.utc)
    iso = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    utc = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, utc, utc)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # always, whatever the template's extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty
    env.filters["localtime"] = _localtime
    env.filters["number"] = _charts.number
    return env


class Sessions:
    """Random session tokens (in memory only) and the CSRF tokens tied to them."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)

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

    def csrf_token(self, session: str) -> str:
        """The CSRF token of *session*: an HMAC, so it needs no storage of its own."""
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: str | None, token: str | None) -> bool:
        if not session or not token or not self.valid(session):
            return False
        return hmac.compare_digest(self.csrf_token(session), token)


@dataclass(frozen=True)
class Access:
    """How a request got in: its session (``new`` when this response sets it), or a header key."""

    session: str | None
    new: bool = False
    by_header: bool = False


Handler = Callable[[Request, Access], Awaitable[Response]]


class Pages:
    """The page routes; one instance per app."""

    def __init__(self, storage: Storage, keys: KeyChecker) -> None:
        self.storage = storage
        self.keys = keys
        self.sessions = Sessions()
        self.env = _environment()

    def routes(self) -> list[Route]:
        """The GET pages and the POST forms, each behind auth (and CSRF for POSTs)."""
        conversation = "/conversations/{pk:int}/"
        return [
            Route("/", self._page(self.conversation_list), methods=["GET"], name="page_list"),
            Route(
                conversation,
                self._page(self.conversation),
                methods=["GET"],
                name="page_conversation",
            ),
            Route("/dashboard/", self._page(self.dashboard), methods=["GET"], name="dashboard"),
            Route("/files/{pk:int}/", self._page(self.download), methods=["GET"], name="page_file"),
            *(
                Route(f"{conversation}{action}/", self._form(handler), methods=["POST"])
                for action, handler in (
                    ("rename", self.rename),
                    ("mark", self.mark),
                    ("delete", self.delete),
                    ("restore", self.restore),
                    ("feedback", self.feedback),
                )
            ),
        ]

    # -- auth and CSRF ---------------------------------------------------------------

    def _access(self, request: Request, *, login: bool) -> Access | Response:
        """The request's :class:`Access`, or the response refusing it."""
        cookie = request.cookies.get(COOKIE)
        session = cookie if self.sessions.valid(cookie) else None
        if not self.keys.dev and login and (key := request.query_params.get("key")) is not None:
            if not self.keys.accepts(key):
                return self._plain("login.html", {"invalid": True}, status=401)
            target = request.url.remove_query_params("key")
            response = RedirectResponse(str(target), status_code=303)
            self._set_cookie(response, self.sessions.issue())
            return response
        if session is not None:
            return Access(session)
        # Only a key actually sent counts: in dev mode the checker also accepts no
        # key at all, and that must not pass for header auth (which skips CSRF).
        header_key = key_from_headers(request)
        if header_key is not None and self.keys.accepts(header_key):
            return Access(None, by_header=True)
        if self.keys.dev:
            return Access(self.sessions.issue(), new=True) if login else Access(None)
        return self._plain("login.html", {"invalid": False}, status=401)

    @staticmethod
    def _set_cookie(response: Response, session: str) -> None:
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")

    @staticmethod
    def _cross_site(request: Request) -> bool:
        """True when the browser says the request came from another site."""
        origin = request.headers.get("origin")
        if origin is not None:
            own = f"{request.url.scheme}://{request.url.netloc}"
            if origin != own:
                return True
        fetch_site = request.headers.get("sec-fetch-site")
        return fetch_site is not None and fetch_site not in ("same-origin", "none")

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            access = self._access(request, login=True)
            if isinstance(access, Response):
                return access
            return await handler(request, access)

        return endpoint

    def _form(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            access = self._access(request, login=False)
            if isinstance(access, Response):
                return access
            try:
                form = await _read_form(request)
            except RequestError as exc:
                return self._plain("error.html", {"message": exc.detail}, status=exc.status)
            if not access.by_header and (
                self._cross_site(request)
                or not self.sessions.csrf_valid(access.session, form.get(CSRF_FIELD))
            ):
                return self._plain(
                    "error.html",
                    {
                        "message": "This form did not come from this collector's own page "
                        "(the cross-site request check failed). Reload the page and try again."
                    },
                    status=403,
                )
            request.state.form = form
            return await handler(request, access)

        return endpoint

    # -- rendering -------------------------------------------------------------------

    def _render(
        self,
        template: str,
        context: dict[str, Any],
        access: Access | None,
        *,
        status: int = 200,
    ) -> Response:
        nonce = secrets.token_urlsafe(16)
        session = access.session if access else None
        html = self.env.get_template(template).render(
            **{"active": "", **context},
            nonce=nonce,
            csrf_token=self.sessions.csrf_token(session) if session else "",
            environments=[e["slug"] for e in ENVIRONMENTS],
        )
        response = HTMLResponse(
            html, status_code=status, headers={**_HEADERS, "Content-Security-Policy": _csp(nonce)}
        )
        if access is not None and access.new and session is not None:
            self._set_cookie(response, session)
        return response

    def _plain(self, template: str, context: dict[str, Any], *, status: int) -> Response:
        return self._render(template, context, None, status=status)

    # -- views -----------------------------------------------------------------------

    async def conversation_list(self, request: Request, access: Access) -> Response:
        params = request.query_params
        form = {
            k: params.get(k) or ""
            for k in ("q", "name", "conversation_id", "customer_id", "environment")
        }
        marked, deleted = params.get("marked") == "1", params.get("deleted") == "1"
        filters = ConversationFilters(
            message_contains=form["q"] or None,
            name=form["name"] or None,
            conversation_id=form["conversation_id"] or None,
            customer_id=form["customer_id"] or None,
            environment=form["environment"] or None,
            is_marked=True if marked else None,
            include_deleted=deleted,
        )
        try:
            page = max(1, int(params.get("page") or 1))
        except ValueError:
            page = 1
        try:
            result = await run_in_threadpool(
                lambda: self.storage.list_conversations(filters, page=page, page_size=PAGE_SIZE)
            )
        except (NotFoundError, FieldValidationError):
            result = {"count": 0, "next": None, "previous": None, "results": []}
        links = {
            rel: str(request.url.include_query_params(page=result[rel])) if result[rel] else None
            for rel in ("next", "previous")
        }
        return self._render(
            "list.html",
            {
                "page": result,
                "links": links,
                "form": form,
                "marked": marked,
                "deleted": deleted,
                "page_number": page,
                "active": "list",
            },
            access,
        )

    async def conversation(
        self, request: Request, access: Access, *, error: str | None = None, status: int = 200
    ) -> Response:
        pk = int(request.path_params["pk"])
        conversation = await run_in_threadpool(self.storage.get_conversation, pk)
        if conversation is None:
            return self._render("not_found.html", {"pk": pk}, access, status=404)
        return self._render(
            "conversation.html", {"c": conversation, "error": error}, access, status=status
        )

    async def dashboard(self, request: Request, access: Access) -> Response:
        environment = request.query_params.get("environment") or None
        data = await run_in_threadpool(self.storage.dashboard, environment=environment)
        return self._render(
            "dashboard.html",
            {
                "d": data,
                "charts": _charts.dashboard(data),
                "environment": environment or "",
                "active": "dashboard",
            },
            access,
        )

    async def download(self, request: Request, access: Access) -> Response:
        found = await run_in_threadpool(self.storage.get_attachment, int(request.path_params["pk"]))
        if found is None:
            return self._render(
                "not_found.html", {"pk": request.path_params["pk"]}, access, status=404
            )
        return file_response(*found)

    # -- forms -----------------------------------------------------------------------

    async def _change(
        self, request: Request, access: Access, change: Callable[[int], Any]
    ) -> Response:
        """Apply *change* to the conversation; back to its page (303), or the page with an error."""
        pk = int(request.path_params["pk"])
        try:
            await run_in_threadpool(change, pk)
        except NotFoundError:
            return self._render("not_found.html", {"pk": pk}, access, status=404)
        except FieldValidationError as exc:
            return await self.conversation(request, access, error=str(exc), status=400)
        return RedirectResponse(f"/conversations/{pk}/", status_code=303)

    async def rename(self, request: Request, access: Access) -> Response:
        name = request.state.form.get("name", "")
        return await self._change(
            request, access, lambda pk: self.storage.rename_conversation(pk, {"name": name})
        )

    async def mark(self, request: Request, access: Access) -> Response:
        value = request.state.form.get("is_marked", "")
        return await self._change(
            request, access, lambda pk: self.storage.mark_conversation(pk, {"is_marked": value})
        )

    async def delete(self, request: Request, access: Access) -> Response:
        return await self._change(request, access, self.storage.delete_conversation)

    async def restore(self, request: Request, access: Access) -> Response:
        return await self._change(request, access, self.storage.restore_conversation)

    async def feedback(self, request: Request, access: Access) -> Response:
        form = request.state.form
        data = {
            "sentiment": form.get("sentiment", ""),
            "comment": form.get("comment") or None,
        }
        return await self._change(
            request,
            access,
            lambda pk: self.storage.create_feedback(
                {**data, "conversation": pk}, route="feedbacks", source="platform"
            ),
        )


async def _read_form(request: Request) -> Mapping[str, str]:
    """A small urlencoded form body (the first value of each field).

    Raises:
        RequestError: 415 for another content type, 413 past :data:`MAX_FORM_BYTES`.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise RequestError(415, "Expected an HTML form (application/x-www-form-urlencoded).")
    raw = await read_raw_body(request, max_bytes=MAX_FORM_BYTES)
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {key: values[0] for key, values in parsed.items()}
