"""``ingest``: batches of conversation blocks to ``POST /api/ingest/`` (§3).

Each batch becomes one payload of one block per conversation
(:mod:`._spans` maps the events and encodes it).  This module does the
delivery:

* **Preflight.**  ``GET /api/me/`` once per exporter, awaited by every export
  so concurrent first batches see its answer: the ``gzip-ingest`` capability
  and the environments the agent has (a block naming another environment
  would fail the whole batch, so it is left out).  Never fatal.
* **Bytes first, spans second.**  Attachment bytes are uploaded over REST
  before the batch (:mod:`._uploads`).
* **The loop keeps running.**  The agent's own tasks share this event loop, so
  blocks are built in slices that yield to it, and a large body is gzipped in
  a worker thread.  The body is serialised once; every retry sends the same
  bytes.
* **Per-block 400.**  A 400 whose body lists offending blocks drops exactly
  those blocks and resends the rest as a new payload; a 400 without that list
  rejects the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Final

import httpx

from .._config import is_loopback_url
from .._events import Batch, Outcome
from .._exceptions import ConversationApiException
from ._client import (
    ROUTE_INGEST,
    ROUTE_ME,
    error_detail,
    get_once,
    parse_body,
    wire_body,
)
from ._http import HttpExporter
from ._redaction import redact
from ._retry import REJECTED, RetryFailure, is_success
from ._spans import BlockEncoder, EncodeError, encode_payload, otel_template
from ._uploads import upload_block

logger = logging.getLogger("agentsight_async")

GZIP_CAPABILITY: Final = "gzip-ingest"
PREFLIGHT_TIMEOUT: Final = 10.0
#: Building a batch yields to the event loop once it has run this long (seconds)...
SLICE_SECONDS: Final = 0.0005
#: ...checked every this many spans (a message span costs a few microseconds).
SLICE_CHECK: Final = 16

#: A block on its way: (index in the batch, conversation id, the block).  Blocks are
#: kept until the POST is answered, so that a per-block 400 can resend the others;
#: they take about as much memory as their JSON (the strings are the events').
_Pending = tuple[int, str, dict[str, Any]]
_NONE: Final[frozenset[int]] = frozenset()


def rejected_blocks(body: Any, blocks: list[dict[str, Any]]) -> dict[int, str]:
    """Indexes (into *blocks*) that a 400 body names, with their error text (§3.5).

    Matches on ``index`` when it points at a block with the same id (or has no
    id), else on the echoed ``conversation_id``.  Empty when the body does not
    name any block we sent (then the whole batch is rejected).
    """
    if not isinstance(body, dict) or not isinstance(body.get("conversations"), list):
        return {}
    detail = body.get("detail") if isinstance(body.get("detail"), str) else "rejected"
    by_id: dict[str, int] = {}
    for i, blk in enumerate(blocks):
        by_id.setdefault(blk["conversation_id"], i)
    named: dict[int, str] = {}
    for entry in body["conversations"]:
        if not isinstance(entry, dict):
            continue
        cid = entry.get("conversation_id")
        idx = entry.get("index")
        target: int | None = None
        if (
            isinstance(idx, int)
            and 0 <= idx < len(blocks)
            and (cid is None or blocks[idx]["conversation_id"] == cid)
        ):
            target = idx
        elif isinstance(cid, str) and cid in by_id:
            target = by_id[cid]
        if target is None:
            continue
        errors = entry.get("errors")
        if isinstance(errors, dict):
            text = "; ".join(
                f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in errors.items()
            )
        else:
            text = str(errors) if errors else ""
        named[target] = redact(f"HTTP 400: {detail}" + (f" ({text})" if text else ""))
    return named


def answers_by_conversation(answer: Any) -> dict[str, Any]:
    """Per-conversation entries of an ingest answer, when the server lists them.

    The protocol leaves the success body undocumented; ours (and the local
    collector's) lists ``{"conversation_id", "id", ...}`` per block, so an item's
    ``send_tracked_data()`` response can carry its conversation's pk as over REST.
    """
    entries = answer.get("conversations") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        return {}
    return {
        e["conversation_id"]: e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("conversation_id"), str)
    }


def _fill(slots: list[Outcome | None], outcome: Outcome) -> None:
    """Set every still-empty slot to *outcome*."""
    for i, current in enumerate(slots):
        if current is None:
            slots[i] = outcome


class IngestExporter(HttpExporter):
    """Delivers batches to ``POST /api/ingest/`` (the default protocol)."""

    name = "ingest"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._preflight_started = False
        self._preflight_task: asyncio.Task[None] | None = None
        #: What ``GET /api/me/`` taught us (only ever grows).
        self.capabilities: set[str] = set()
        self.environments: set[str] = set()
        #: The ``otel`` object of every span this exporter sends.
        self.otel = otel_template(str(uuid.uuid4()))
        #: Compress when the backend takes gzip - unless it runs on this machine: over
        #: loopback there is no bandwidth to save, only CPU to spend (~2 us per event).
        self._compress = not is_loopback_url(self.settings.api_endpoint)
        #: (loop, lock): one batch builds at a time on each loop (see :meth:`export`).
        self._building: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # -- preflight -----------------------------------------------------------------

    async def preflight(self, deadline: float | None = None) -> None:
        """``GET /api/me/`` once: capabilities (gzip) and environments.  Never fatal."""
        if self._preflight_started:
            return
        self._preflight_started = True
        timeout = PREFLIGHT_TIMEOUT
        if deadline is not None:
            timeout = max(0.1, min(timeout, deadline - self._clock()))
        try:
            self.stats.requests += 1
            resp = await get_once(self._client.get(), self.url(ROUTE_ME), timeout=timeout)
        except httpx.HTTPError as exc:
            logger.debug("agentsight_async preflight GET /api/me/ failed: %s", type(exc).__name__)
            return
        if resp.status_code in (401, 403):
            self.report.auth_refused(resp.status_code, error_detail(resp))
            return
        if resp.status_code != 200:
            return
        body = parse_body(resp)
        if not isinstance(body, dict):
            return
        caps = body.get("capabilities")
        if isinstance(caps, list):
            self.capabilities.update(c.lower() for c in caps if isinstance(c, str))
        envs = body.get("environments")
        if isinstance(envs, list):
            for env in envs:
                slug = env.get("slug") if isinstance(env, dict) else env
                if isinstance(slug, str):
                    self.environments.add(slug)
        if body.get("role") == "read":
            logger.error(
                "agentsight_async: the API key has the 'read' role; AgentSight will refuse "
                "ingest. Use a key with the 'write' role."
            )

    async def _ensure_preflight(self, deadline: float) -> None:
        """Every export waits for the one preflight, so concurrent first batches gzip too."""
        task = self._preflight_task
        if task is not None and task.done():
            return
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            if self._preflight_started:  # finished (or abandoned) on another loop
                return
            task = self._preflight_task = asyncio.ensure_future(self.preflight(deadline))
        await asyncio.shield(task)

    # -- export --------------------------------------------------------------------

    async def export(self, batch: Batch, deadline: float) -> list[list[Outcome]]:
        """Upload files, build the blocks in slices (the loop runs between them), post them.

        The agent's own tasks share this event loop: no single synchronous step
        may hold it for long.  Every :data:`SLICE_CHECK` spans we look at the
        clock and yield once :data:`SLICE_SECONDS` have passed.  And one batch
        builds at a time (up to ``max_concurrency`` are in flight): building is
        all CPU, so doing several at once gains nothing, but their slices would
        share each turn of the loop and make it as many times longer.
        """
        await self._ensure_preflight(deadline)
        convs = batch.conversations
        results: list[list[Outcome | None]] = [[None] * len(c.events) for c in convs]
        pending: list[_Pending] = []
        payload: bytes | None = None
        envs = frozenset(self.environments)
        clock = time.perf_counter
        building = self._building_lock()
        await building.acquire()
        held = True
        try:
            slice_end = clock() + SLICE_SECONDS
            for ci, conv in enumerate(convs):
                try:
                    if any(ev.has_attachments for ev in conv.events):
                        # uploads wait on the network: other batches may build meanwhile
                        building.release()
                        held = False
                        skip, uploaded = await upload_block(self, conv, deadline, results[ci])
                        await building.acquire()
                        held = True
                        slice_end = clock() + SLICE_SECONDS
                    else:
                        skip = uploaded = _NONE
                    encoder = BlockEncoder(
                        conv, self.otel, uploaded=uploaded, allowed_environments=envs
                    )
                    for i, ev in enumerate(conv.events):
                        if i in skip:
                            continue
                        encoder.add(i, ev)
                        if not encoder.span_count % SLICE_CHECK and clock() >= slice_end:
                            await asyncio.sleep(0)
                            slice_end = clock() + SLICE_SECONDS
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a bug or odd data must not sink the other blocks
                    self.report(f"could not build block: {exc!r}")
                    _fill(results[ci], _failed(exc))
                    continue
                if encoder.span_count:
                    pending.append((ci, conv.conversation_id, encoder.finish()))
                else:  # nothing left to send (all uploads failed)
                    _fill(results[ci], Outcome(True, response={}))
                if clock() >= slice_end:
                    await asyncio.sleep(0)
                    slice_end = clock() + SLICE_SECONDS
            if pending:
                with contextlib.suppress(EncodeError):  # _post_blocks sorts it out
                    payload = encode_payload([block for _, _, block in pending])
        finally:
            if held:
                building.release()
        if pending:
            await self._post_blocks(pending, deadline, results, payload)
        return [[o if o is not None else Outcome(True, response={}) for o in r] for r in results]

    def _building_lock(self) -> asyncio.Lock:
        """The running loop's lock that lets one batch build at a time."""
        loop = asyncio.get_running_loop()
        if self._building is None or self._building[0] is not loop:
            self._building = (loop, asyncio.Lock())
        return self._building[1]

    def _encodable(
        self, pending: list[_Pending], results: list[list[Outcome | None]]
    ) -> list[_Pending]:
        """The blocks that encode on their own; the others are reported and rejected.

        Only reached when the payload would not encode: validation refuses what
        JSON cannot carry when it is tracked, so this guards against a bug
        sinking every conversation of the batch.
        """
        kept = []
        for ci, cid, block in pending:
            try:
                encode_payload([block])
            except EncodeError as exc:
                self.report(f"could not encode block: {exc!r}")
                _fill(results[ci], _failed(exc))
            else:
                kept.append((ci, cid, block))
        return kept

    async def _post_blocks(
        self,
        pending: list[_Pending],
        deadline: float,
        results: list[list[Outcome | None]],
        payload: bytes | None = None,
    ) -> None:
        """POST the blocks (*payload*: the blocks already encoded); fills every empty slot."""
        gzip_ok = self._compress and GZIP_CAPABILITY in self.capabilities
        while pending:
            if payload is None:
                try:
                    payload = encode_payload([block for _, _, block in pending])
                except EncodeError:
                    pending = self._encodable(pending, results)
                    continue  # (each block that is left encodes, so the next payload does)
            body, headers = await wire_body(payload, gzip_ok)
            payload = None  # only the (gzipped) body lives on through the retries
            ids = [cid for _, cid, _ in pending]
            result = await self.post_bytes(ROUTE_INGEST, body, headers, deadline)
            if isinstance(result, RetryFailure):
                failed = self.gave_up(ROUTE_INGEST, result)
                for ci, _, _ in pending:
                    _fill(results[ci], failed)
                return
            if is_success(result.status_code):
                answer = parse_body(result)
                per_block = answers_by_conversation(answer)
                ok = Outcome(True, response=answer)
                for ci, cid, _ in pending:
                    entry = per_block.get(cid)
                    _fill(results[ci], ok if entry is None else Outcome(True, response=entry))
                return
            if result.status_code == 400:
                answer = parse_body(result)
                named = rejected_blocks(answer, [{"conversation_id": cid} for cid in ids])
                if named:
                    for idx, text in named.items():
                        ci, cid, _ = pending[idx]
                        self.report(f"ingest rejected block {cid!r}: {text}")
                        exc = ConversationApiException(text, 400, answer)
                        _fill(results[ci], _failed(exc, text))
                    pending = [p for i, p in enumerate(pending) if i not in named]
                    continue
            refused = self.refused(ROUTE_INGEST, result)
            for ci, _, _ in pending:
                _fill(results[ci], refused)
            return


def _failed(exc: BaseException, text: str | None = None) -> Outcome:
    """A rejected event's outcome: *text* (or the exception) says why."""
    return Outcome(False, error=text or repr(exc), drop_reason=REJECTED, exception=exc)


__all__ = ["IngestExporter", "rejected_blocks"]
