"""The collector's Starlette application: AgentSight routes, read and manage API, pages.

Every route ends in ``/`` and the slash is required (the backend runs Django
with ``APPEND_SLASH = False``); only a leading ``//`` is forgiven, for 0.0.44.
Storage is synchronous SQLite, so every storage call runs in a small thread
pool of the app's own and the event loop never blocks on the database.  A
write request makes one trip to that pool: the body is read on the loop, then
inflated, parsed, validated and stored in the thread (parsing a 500-span
ingest body takes milliseconds that would otherwise stall every other
request).  The app's own ``ThreadPoolExecutor`` is used rather than
Starlette's ``run_in_threadpool`` (anyio), which costs about twice as much
per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentsight_async._store import (
    DEFAULT_AGENT_ID,
    ENVIRONMENTS,
    FieldValidationError,
    Files,
    IngestValidationError,
    NotFoundError,
)

from ._filters import ConversationFilters, FeedbackFilters, query_bool, query_int
from ._http import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DECOMPRESSED_BYTES,
    DoubleSlashMiddleware,
    KeyChecker,
    RequestError,
    decode_body,
    file_response,
    key_from_headers,
    parse_json_object,
    read_body,
    read_raw_body,
)
from ._otlp import OtlpIntake
from ._pages import Pages
from ._storage import Storage
from ._throttle import IngestAllowance

logger = logging.getLogger("agentsight_collector")

Endpoint = Callable[[Request], Awaitable[Response]]

AGENT_NAME = "Local collector"
CAPABILITIES = ("gzip-ingest",)
DEFAULT_PAGE_SIZE = 50
#: Threads for storage calls.  Writes are serialised by the storage's lock
#: anyway; a few threads let reads run beside a write.
DB_THREADS = 4

T = TypeVar("T")


class _GcPause:
    """``with _GC_PAUSE:`` - no cyclic garbage collection inside, in any thread.

    An ingest body decodes into thousands of dicts and lists per request (about
    ten per span).  They hold no reference cycles and are freed by reference
    counting when the request is done, but while they are alive every 700 new
    ones start a collection that walks them again, and the survivors push the
    process towards full collections of everything it holds: 20-30 % of the
    collector's CPU per stored event, measured.  Collections wait while any
    thread is inside, and GC is enabled again when the last one leaves - unless
    it was disabled when the first one entered.  Requests that overlap without
    a break never let it leave, so a pause longer than :attr:`MAX_PAUSE`
    seconds ends with a full collection run by the next thread to enter.
    """

    #: Seconds of an unbroken pause after which the next thread entering collects.
    MAX_PAUSE = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._restore = False
        self._since = 0.0

    def __enter__(self) -> None:
        collect = False
        with self._lock:
            now = time.monotonic()
            if self._inside == 0:
                self._restore = gc.isenabled()
                gc.disable()
                self._since = now
            elif self._restore and now - self._since > self.MAX_PAUSE:
                self._since = now
                collect = True
            self._inside += 1
        if collect:
            gc.collect()

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._restore:
                gc.enable()


_GC_PAUSE = _GcPause()


def _detail(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


class Api:
    """The JSON routes.  One instance per app; handlers are bound methods."""

    def __init__(
        self,
        storage: Storage,
        keys: KeyChecker,
        *,
        max_body: int,
        max_decompressed: int,
        executor: ThreadPoolExecutor,
        allowance: IngestAllowance | None = None,
        pause_gc: bool = False,
    ) -> None:
        self.storage = storage
        #: Only a collector that owns its process pauses the (process-wide) cyclic GC.
        self._gc_pause: contextlib.AbstractContextManager[None] = (
            _GC_PAUSE if pause_gc else contextlib.nullcontext()
        )
        self.keys = keys
        self.max_body = max_body
        self.max_decompressed = max_decompressed
        self.executor = executor
        self.allowance = allowance

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """*func* in the storage threads; the loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        if kwargs:
            call = functools.partial(func, *args, **kwargs)
            return await loop.run_in_executor(self.executor, call)
        return await loop.run_in_executor(self.executor, func, *args)

    # -- plumbing --------------------------------------------------------------------

    def endpoint(self, handler: Endpoint, *, forbidden_status: bool = False) -> Endpoint:
        """Wrap *handler* with API-key auth and the error-to-response mapping.

        Missing or wrong keys answer 401 with ``WWW-Authenticate: Api-Key``,
        except on ingest, whose view has no challenge and answers 403 (§1.1).
        """

        async def wrapped(request: Request) -> Response:
            key = key_from_headers(request)
            if not self.keys.accepts(key):
                detail = (
                    "Authentication credentials were not provided."
                    if key is None
                    else "Invalid API key."
                )
                if forbidden_status:
                    return _detail(403, detail)
                return _detail(401, detail, **{"WWW-Authenticate": "Api-Key"})
            try:
                return await handler(request)
            except RequestError as exc:
                return _detail(exc.status, exc.detail)
            except IngestValidationError as exc:
                logger.info("ingest payload rejected: %s", exc)
                return JSONResponse(exc.body, status_code=400)
            except FieldValidationError as exc:
                return JSONResponse(exc.body, status_code=400)
            except NotFoundError as exc:
                return _detail(404, exc.detail)

        return wrapped

    async def _body(self, request: Request) -> bytes:
        return await read_body(
            request, max_bytes=self.max_body, max_decompressed=self.max_decompressed
        )

    async def _raw(self, request: Request) -> tuple[bytes, str | None]:
        raw = await read_raw_body(request, max_bytes=self.max_body)
        return raw, request.headers.get("content-encoding")

    def _parse(self, raw: bytes, encoding: str | None) -> dict[str, Any]:
        """Inflate and parse a body (in a storage thread: this is CPU work)."""
        return parse_json_object(decode_body(raw, encoding, self.max_decompressed))

    @staticmethod
    def _idempotency_key(request: Request) -> str | None:
        return request.headers.get("idempotency-key")

    async def _write(
        self, request: Request, write: Callable[..., dict[str, Any]], **kwargs: Any
    ) -> Response:
        raw, encoding = await self._raw(request)
        key = self._idempotency_key(request)

        def parse_and_write() -> bytes:
            return orjson.dumps(write(self._parse(raw, encoding), idempotency_key=key, **kwargs))

        answer = await self.run(parse_and_write)
        return Response(answer, status_code=201, media_type="application/json")

    # -- writes ----------------------------------------------------------------------

    async def conversations_create(self, request: Request) -> Response:
        return await self._write(request, self.storage.create_conversation)

    async def track(self, request: Request) -> Response:
        return await self._write(request, self.storage.create_message)

    async def action_logs(self, request: Request) -> Response:
        return await self._write(request, self.storage.create_action)

    async def buttons(self, request: Request) -> Response:
        return await self._write(request, self.storage.create_button)

    async def conversation_feedbacks(self, request: Request) -> Response:
        return await self._write(
            request, self.storage.create_feedback, route="conversation-feedbacks"
        )

    async def feedbacks(self, request: Request) -> Response:
        return await self._write(request, self.storage.create_feedback, route="feedbacks")

    async def attachments(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return await self._write(request, self.storage.create_attachments)
        fields, files = await self._multipart(request)
        result = await self.run(
            self.storage.create_attachments,
            fields,
            files,
            idempotency_key=self._idempotency_key(request),
        )
        return JSONResponse(result, status_code=201)

    async def _multipart(self, request: Request) -> tuple[dict[str, str], Files]:
        body = await self._body(request)

        async def stream() -> AsyncIterator[bytes]:
            yield body

        parser = MultiPartParser(request.headers, stream())  # type: ignore[arg-type]
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise RequestError(400, f"Invalid multipart body: {exc.message}") from None
        fields: dict[str, str] = {}
        files: Files = []
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    data = await value.read()
                    files.append((value.filename or name, value.content_type, data))
                else:
                    fields[name] = value
        finally:
            await form.close()
        return fields, files

    async def ingest(self, request: Request) -> Response:
        allowance = self.allowance
        if allowance is not None:
            wait = allowance.take(key_from_headers(request) or "")
            if wait is not None:
                after = allowance.retry_after(wait)
                detail = f"Request was throttled. Expected available in {after} seconds."
                return _detail(429, detail, **{"Retry-After": after})
        raw, encoding = await self._raw(request)

        def parse_and_ingest() -> bytes:
            with self._gc_pause:
                return orjson.dumps(self.storage.ingest(self._parse(raw, encoding)))

        answer = await self.run(parse_and_ingest)
        return Response(answer, status_code=201, media_type="application/json")

    # -- reads -----------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        return JSONResponse(
            {
                "agent_id": DEFAULT_AGENT_ID,
                "agent_name": AGENT_NAME,
                "role": "write",
                "environments": list(ENVIRONMENTS),
                "capabilities": list(CAPABILITIES),
            }
        )

    async def lookup(self, request: Request) -> Response:
        params = request.query_params
        conversation_id = params.get("conversation_id")
        if not conversation_id:
            raise FieldValidationError({"conversation_id": ["This query parameter is required."]})
        include_deleted = bool(query_bool(params, "include_deleted"))
        pk = await self.run(self.storage.lookup, conversation_id, include_deleted=include_deleted)
        if pk is None:
            raise NotFoundError("Not found.")
        return JSONResponse({"id": pk, "conversation_id": conversation_id})

    async def conversations_list(self, request: Request) -> Response:
        params = request.query_params
        filters = ConversationFilters.from_query(params)
        full = query_bool(params, "full")
        page, page_size = _paging(params)
        result = await self.run(
            self.storage.list_conversations,
            filters,
            page=page,
            page_size=page_size,
            full=full is not False,  # the backend's default is full=true
        )
        return _page_response(request, result)

    async def conversation_detail(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        full = query_bool(request.query_params, "full") is not False
        conversation = await self.run(self.storage.get_conversation, pk, full=full)
        if conversation is None:
            raise NotFoundError("Not found.")
        for item in conversation.get("transcript", ()):
            if item["type"] == "attachment":
                _add_download_urls(request, item)
        return JSONResponse(conversation)

    # -- managing conversations ---------------------------------------------------------

    async def _manage(
        self, request: Request, change: Callable[[int, dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """Parse the JSON body (empty reads as ``{}``: field errors say what is missing)."""
        pk = int(request.path_params["pk"])
        raw, encoding = await self._raw(request)

        def parse_and_change() -> dict[str, Any]:
            data = self._parse(raw, encoding) if raw.strip() else {}
            return change(pk, data)

        return JSONResponse(await self.run(parse_and_change))

    async def rename(self, request: Request) -> Response:
        return await self._manage(request, self.storage.rename_conversation)

    async def mark(self, request: Request) -> Response:
        return await self._manage(request, self.storage.mark_conversation)

    async def update(self, request: Request) -> Response:
        return await self._manage(request, self.storage.update_conversation)

    async def delete(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        return JSONResponse(await self.run(self.storage.delete_conversation, pk))

    # -- feedback ------------------------------------------------------------------------

    async def feedbacks_list(self, request: Request) -> Response:
        params = request.query_params
        filters = FeedbackFilters.from_query(params)
        page, page_size = _paging(params)
        result = await self.run(
            self.storage.list_feedbacks, filters, page=page, page_size=page_size
        )
        return _page_response(request, result)

    async def feedback_detail(self, request: Request) -> Response:
        found = await self.run(self.storage.get_feedback, int(request.path_params["pk"]))
        if found is None:
            raise NotFoundError("Not found.")
        return JSONResponse(found)

    async def conversation_attachments(self, request: Request) -> Response:
        pk = int(request.path_params["pk"])
        groups = await self.run(self.storage.list_attachments, pk)
        if groups is None:
            raise NotFoundError("Not found.")
        for group in groups:
            _add_download_urls(request, group)
        return JSONResponse({"count": len(groups), "results": groups})

    async def attachment_file(self, request: Request) -> Response:
        found = await self.run(self.storage.get_attachment, int(request.path_params["pk"]))
        if found is None:
            raise NotFoundError("Not found.")
        return file_response(*found)


def _paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``page`` (DRF: anything but a page number is a 404) and ``page_size`` (a 400)."""
    try:
        page = int(params.get("page") or 1)
    except ValueError:
        raise NotFoundError("Invalid page.") from None
    size = query_int(params, "page_size")
    return page, DEFAULT_PAGE_SIZE if size is None else size


def _page_response(request: Request, result: dict[str, Any]) -> Response:
    result["next"] = _page_url(request, result["next"])
    result["previous"] = _page_url(request, result["previous"])
    return JSONResponse(result)


def _page_url(request: Request, page: int | None) -> str | None:
    if page is None:
        return None
    if page == 1:
        return str(request.url.remove_query_params("page"))
    return str(request.url.include_query_params(page=page))


def _add_download_urls(request: Request, group: dict[str, Any]) -> None:
    for f in group["files"]:
        f["download_url"] = (
            str(request.url_for("attachment_file", pk=f["id"])) if f["downloadable"] else None
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = "Not found."
    elif exc.status_code == 405:
        detail = f'Method "{request.method}" not allowed.'  # DRF's words
    else:
        detail = str(exc.detail)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def healthz(request: Request) -> Response:
    storage: Storage = request.app.state.storage
    return JSONResponse({"status": "ok", "schema_version": storage.schema_version})


def create_app(
    storage_path: str | os.PathLike[str] | Storage,
    api_keys: Sequence[str],
    *,
    dev: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    ingest_rate: float | None = None,
    pause_gc: bool = False,
) -> Starlette:
    """Build the collector's Starlette app, to mount or serve it yourself.

    Args:
        storage_path: a SQLite file (opened now, migrated, closed at shutdown) or
            an open :class:`Storage`, which the caller keeps owning.
        api_keys: the keys the app accepts.
        dev: accept any well-formed key, or none, and open the pages without a
            key.
        max_body_bytes: the largest request body accepted on the wire (32 MiB).
        max_decompressed_bytes: the largest body after gzip (64 MiB).
        ingest_rate: emulate AgentSight's per-key allowance: that many ingest
            batches a minute per key, beyond it ``429`` with ``Retry-After``
            (kept as ``app.state.ingest_allowance``).
        pause_gc: pause Python's cyclic garbage collector while an ingest
            request is parsed and stored (about a third less CPU per event at
            1,000 conversations). The collector is process-wide, so only a
            server that owns its process turns this on: ``agentsight-async
            serve`` does; an app embedded in yours (``LocalCollector``, a mount)
            leaves your process's GC alone by default.

    Returns:
        The ASGI application.

    Raises:
        ValueError: no *api_keys* and not *dev*.
    """
    if not dev and not any(api_keys):
        raise ValueError("the collector needs at least one API key (or dev=True)")
    owned = not isinstance(storage_path, Storage)
    storage = Storage(storage_path) if not isinstance(storage_path, Storage) else storage_path
    keys = KeyChecker(api_keys, dev=dev)
    executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="agentsight-collector-db")
    api = Api(
        storage,
        keys,
        max_body=max_body_bytes,
        max_decompressed=max_decompressed_bytes,
        executor=executor,
        allowance=IngestAllowance(ingest_rate) if ingest_rate else None,
        pause_gc=pause_gc,
    )
    pages = Pages(storage, keys)
    ep = api.endpoint

    # Starlette tries the routes in order: the write routes, hit once per tracked
    # item, come first (no two routes share a path and a method, so order is free).
    routes = [
        Route("/api/ingest/", ep(api.ingest, forbidden_status=True), methods=["POST"]),
        Route("/api/track/", ep(api.track), methods=["POST"]),
        Route("/api/conversations/", ep(api.conversations_create), methods=["POST"]),
        Route("/api/action_logs/", ep(api.action_logs), methods=["POST"]),
        Route("/api/buttons/", ep(api.buttons), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/me/", ep(api.me), methods=["GET"]),
        Route("/api/conversations/lookup/", ep(api.lookup), methods=["GET"]),
        Route("/api/conversations/", ep(api.conversations_list), methods=["GET"]),
        Route("/api/conversations/{pk:int}/", ep(api.conversation_detail), methods=["GET"]),
        Route("/api/conversations/{pk:int}/rename/", ep(api.rename), methods=["PATCH"]),
        Route("/api/conversations/{pk:int}/mark/", ep(api.mark), methods=["POST"]),
        Route("/api/conversations/{pk:int}/update/", ep(api.update), methods=["PATCH"]),
        Route("/api/conversations/{pk:int}/delete/", ep(api.delete), methods=["DELETE"]),
        Route(
            "/api/conversations/{pk:int}/attachments/",
            ep(api.conversation_attachments),
            methods=["GET"],
        ),
        Route(
            "/api/attachment-files/{pk:int}/",
            ep(api.attachment_file),
            methods=["GET"],
            name="attachment_file",
        ),
        Route("/api/attachments/", ep(api.attachments), methods=["POST"]),
        Route("/api/conversation-feedbacks/", ep(api.conversation_feedbacks), methods=["POST"]),
        Route("/api/feedbacks/", ep(api.feedbacks), methods=["POST"]),
        Route("/api/feedbacks/", ep(api.feedbacks_list), methods=["GET"]),
        Route("/api/feedbacks/{pk:int}/", ep(api.feedback_detail), methods=["GET"]),
        *OtlpIntake(api).routes(),
        *pages.routes(),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=True)
            if owned:
                storage.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(DoubleSlashMiddleware)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    # APPEND_SLASH = False semantics: a missing slash is a 404, never a redirect.
    app.router.redirect_slashes = False
    app.state.storage = storage
    app.state.ingest_allowance = api.allowance
    return app
