"""Fuzzed inputs through the public async API.

The contract under test, for every ``track_*`` call: it is either accepted and
arrives exactly as sent, or it raises an :class:`AgentSightError` whose message
starts with the argument's name - and it never breaks the flusher or loses
another event.  Every case is bracketed by a sentinel message before and after
it in the same conversation; at the end each conversation must hold exactly
``[before, <the case, if accepted>, after]``.

Most cases go to ``memory://`` (fast, exact); a smaller set is read back from
the real collector over both protocols.  Case counts are printed at the end.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import KEY, LoopThread, size

from agentsight_async import AgentSightError, AsyncConversationTracker
from agentsight_async.testing import clear_recorded, recorded
from agentsight_collector import LocalCollector

CASES: Counter[str] = Counter()
LIMIT_CHARS = 300  # max_message_chars in the memory harness, so the boundary is cheap to hit
LIMIT_BYTES = 256  # max_attachment_bytes in the memory harness
FIELD_CHARS = 255  # the documented limit of names, labels, conversation fields


def fuzz_settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


# --- oracles (what the documented contract says, written independently of the SDK) -------


def utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def good_text(value: Any, limit: int, *, blank_ok: bool = False) -> bool:
    if not isinstance(value, str) or len(value) > limit or not utf8_ok(value):
        return False
    return blank_ok or (bool(value) and not value.isspace())


def as_json(value: Any) -> Any:
    """*value* as it comes back from JSON: tuples become lists, nothing else changes."""
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def json_native(value: Any, depth: int = 0) -> bool:
    """Values JSON carries unchanged: dict with str keys, list (or tuple), str, int,
    finite float, bool, None - every string valid UTF-8."""
    if depth > 200:
        return False
    if value is None or isinstance(value, (bool, int)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return utf8_ok(value)
    if isinstance(value, (list, tuple)):  # a tuple is sent as a JSON array (a list)
        return all(json_native(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and utf8_ok(k) and json_native(v, depth + 1)
            for k, v in value.items()
        )
    return False


# --- strategies ---------------------------------------------------------------------------

WEIRD = ["\x00", "\ud800", "\udfff", "\ud83d", "\U0001f600", "\u200b", "\ufeff", "\r\n", "\t",
         " ", "\u2028", "\u00e9", "\U0010ffff", "\\", '"', "\x7f"]  # fmt: skip
chars = st.one_of(st.characters(), st.sampled_from(WEIRD))
texts = st.lists(chars, max_size=40).map("".join)
near_limit = st.builds(
    lambda n, tail: ("x" * n + tail)[: n + len(tail)],
    st.integers(LIMIT_CHARS - 5, LIMIT_CHARS + 2),
    st.sampled_from(["", "\U0001f600", "\ud800", " "]),
)
any_text = st.one_of(texts, near_limit, st.sampled_from(["", " ", "\n\t", "\x00", "a"]))


class Opaque:
    def __repr__(self) -> str:
        return "Opaque()"


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), texts
)
bad_leaf = st.one_of(
    st.binary(max_size=6),
    st.datetimes(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.sets(st.integers(), max_size=3),
    st.builds(Opaque),
    st.complex_numbers(max_magnitude=10),
)


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4))


json_values = st.recursive(json_leaf, containers, max_leaves=8)
maybe_bad_values = st.recursive(st.one_of(json_leaf, bad_leaf), containers, max_leaves=6)
metadata_values = st.one_of(
    st.dictionaries(texts, json_values, max_size=5),
    st.dictionaries(texts, maybe_bad_values, max_size=5),
    maybe_bad_values,
)


# --- the harness ----------------------------------------------------------------------------


class Harness:
    """One tracker on a background loop; every case bracketed by sentinels."""

    def __init__(self, lt: LoopThread, url: str, **overrides: Any) -> None:
        self.lt = lt
        self.url = url
        options: dict[str, Any] = {
            "endpoint": url,
            "flush_interval": 0.02,
            "batch_size": 64,
            "max_message_chars": LIMIT_CHARS,
            "max_attachment_bytes": LIMIT_BYTES,
            "_env_file": None,
        }
        options.update(overrides)
        self.tracker = AsyncConversationTracker(**options)
        self.n = 0
        self.expected: dict[str, list[Callable[[dict[str, Any]], bool] | str]] = {}
        self.accepted = 0
        self.refused = 0

    def case(
        self,
        label: str,
        call: Callable[[AsyncConversationTracker, str], Coroutine[Any, Any, Any]],
        *,
        valid: bool | None,
        arg: str | tuple[str, ...],
        check: Callable[[dict[str, Any]], bool] | None = None,
    ) -> bool:
        """Run one case; *valid* is the oracle (None: either outcome is allowed).

        Returns whether the call was accepted.  *check* validates the delivered
        record of an accepted call.
        """
        self.n += 1
        CASES[label] += 1
        cid = f"fz-{self.n}"
        t = self.tracker
        self.lt.run(t.track_human_message(f"before {self.n}", conversation_id=cid))
        refusal: AgentSightError | None = None
        try:
            self.lt.run(call(t, cid))
        except AgentSightError as exc:
            refusal = exc
        accepted = refusal is None
        if refusal is not None:
            assert valid is not True, f"{label}: a valid input was refused: {refusal}"
            message = str(refusal)
            assert message.startswith(arg), f"{label}: message does not name {arg!r}: {message}"
        else:
            assert valid is not False, f"{label}: an invalid {arg} was accepted"
        self.lt.run(t.track_human_message(f"after {self.n}", conversation_id=cid))
        items: list[Callable[[dict[str, Any]], bool] | str] = [f"before {self.n}"]
        if accepted:
            items.append(check or (lambda rec: True))
            self.accepted += 1
        else:
            self.refused += 1
        items.append(f"after {self.n}")
        self.expected[cid] = items
        return accepted

    def verify(self) -> None:
        """Flush, then check every conversation holds exactly its expected items, in order."""
        assert self.lt.run(self.tracker.flush(timeout=30), timeout=40)
        stats = self.tracker.stats()
        by_cid: dict[str, list[dict[str, Any]]] = {}
        for rec in recorded(self.url):
            by_cid.setdefault(rec["conversation_id"], []).append(rec)
        for cid, items in self.expected.items():
            got = by_cid.get(cid, [])
            assert len(got) == len(items), f"{cid}: {len(got)} record(s), expected {len(items)}"
            for rec, want in zip(got, items, strict=True):
                if isinstance(want, str):
                    assert rec["data"]["content"] == want, (cid, rec["data"])
                else:
                    assert want(rec), f"{cid}: delivered {rec['kind']} differs from what was sent"
        events = 2 * len(self.expected) + self.accepted
        assert stats["delivered"] == stats["tracked"] >= events
        assert stats["dropped_total"] == 0, stats["dropped"]

    def close(self) -> None:
        self.lt.run(self.tracker.aclose(timeout=10), timeout=20)
        clear_recorded(self.url)


@pytest.fixture
def harness(loop_thread: LoopThread, request: pytest.FixtureRequest) -> Any:
    h = Harness(loop_thread, f"memory://fuzz-{request.node.name}")
    try:
        yield h
    finally:
        h.close()


# --- memory:// fuzzing ------------------------------------------------------------------------


def test_fuzz_message_text(harness: Harness) -> None:
    @fuzz_settings(size(1000, 5000))
    @given(text=any_text, agent=st.booleans())
    def run(text: str, agent: bool) -> None:
        method = "track_agent_message" if agent else "track_human_message"
        harness.case(
            "message text",
            lambda t, cid: getattr(t, method)(text, conversation_id=cid),
            valid=good_text(text, LIMIT_CHARS),
            arg="message",
            check=lambda rec: (
                type(rec["data"]["content"]) is str and rec["data"]["content"] == text
            ),
        )

    run()
    harness.verify()
    assert harness.accepted
    assert harness.refused


def test_fuzz_metadata(harness: Harness) -> None:
    @fuzz_settings(size(200, 3000))
    @given(meta=metadata_values, where=st.sampled_from(["message", "button", "action"]))
    def run(meta: Any, where: str) -> None:
        def call(t: AsyncConversationTracker, cid: str) -> Coroutine[Any, Any, Any]:
            if where == "message":
                return t.track_human_message("m", metadata=meta, conversation_id=cid)
            if where == "button":
                return t.track_button("e", "l", "v", metadata=meta, conversation_id=cid)
            return t.track_action("a", metadata=meta, conversation_id=cid)

        is_dict = isinstance(meta, dict)
        harness.case(
            f"metadata on {where}",
            call,
            valid=is_dict and json_native(meta) if meta is not None else True,
            arg="metadata",
            check=lambda rec: rec["data"]["metadata"] == as_json(meta or {}),
        )

    run()
    harness.verify()
    assert harness.accepted
    assert harness.refused


def test_fuzz_tools_used_and_action_text(harness: Harness) -> None:
    @fuzz_settings(size(150, 2000))
    @given(tools=st.one_of(st.none(), metadata_values), response=st.one_of(st.none(), any_text))
    def run(tools: Any, response: str | None) -> None:
        tools_ok = tools is None or (isinstance(tools, dict) and json_native(tools))
        resp_ok = response is None or good_text(response, LIMIT_CHARS, blank_ok=True)
        # when both are bad, either may be named
        bad = tuple(n for n, ok in (("tools_used", tools_ok), ("response", resp_ok)) if not ok)

        def check(rec: dict[str, Any]) -> bool:
            data = rec["data"]
            return data.get("tools_used") == as_json(tools) and data.get("response") == response

        harness.case(
            "tools_used + response",
            lambda t, cid: t.track_action(
                "act", tools_used=tools, response=response, conversation_id=cid
            ),
            valid=tools_ok and resp_ok,
            arg=bad or ("",),
            check=check,
        )

    run()
    harness.verify()


b64_attachment = st.builds(
    lambda name, mime, raw: {
        "filename": name,
        "mime_type": mime,
        "data": base64.b64encode(raw).decode(),
    },
    st.one_of(st.just("f.bin"), texts),
    st.one_of(st.just("application/octet-stream"), texts),
    st.binary(max_size=LIMIT_BYTES + 8),
)
broken_attachment = st.one_of(
    st.fixed_dictionaries({"filename": st.just("f"), "mime_type": st.just("a/b")}),  # no data
    st.fixed_dictionaries(
        {
            "filename": st.just("f"),
            "mime_type": st.just("a/b"),
            "data": st.sampled_from(["!!", "abc", "YQ", "YQ==\n", "\x00", "=="]),
        }
    ),
    st.fixed_dictionaries(
        {"filename": st.just("f"), "mime_type": st.just("a/b"), "data": st.binary(max_size=4)}
    ),
    st.sampled_from([None, "x", 1, b"x"]),
)


def b64_ok(att: Any) -> bool:
    if not isinstance(att, dict) or not {"filename", "mime_type", "data"} <= att.keys():
        return False
    if not good_text(att["filename"], FIELD_CHARS) or not good_text(att["mime_type"], FIELD_CHARS):
        return False
    data = att["data"]
    if not isinstance(data, str):
        return False
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        return False
    return len(raw) <= LIMIT_BYTES


def test_fuzz_attachments(harness: Harness) -> None:
    @fuzz_settings(size(300, 3000))
    @given(
        atts=st.one_of(
            st.lists(st.one_of(b64_attachment, broken_attachment), max_size=3),
            st.sampled_from([None, "x", {"a": 1}, 3]),
        ),
        standalone=st.booleans(),
    )
    def run(atts: Any, standalone: bool) -> None:
        # the size limit holds per call: the files of one call travel in one request
        ok = (
            isinstance(atts, list)
            and bool(atts)
            and all(b64_ok(a) for a in atts)
            and sum(len(base64.b64decode(a["data"])) for a in atts) <= LIMIT_BYTES
        )

        def check(rec: dict[str, Any]) -> bool:
            return rec["data"]["attachments"] == atts

        if standalone:
            harness.case(
                "track_attachments base64",
                lambda t, cid: t.track_attachments(atts, conversation_id=cid),
                valid=ok,
                arg="attachments",
                check=check,
            )
        elif atts:  # a message with attachments ([] / None mean "no attachments")
            harness.case(
                "message attachments base64",
                lambda t, cid: t.track_human_message("m", attachments=atts, conversation_id=cid),
                valid=ok,
                arg="attachments",
                check=check,
            )

    run()
    harness.verify()


def test_fuzz_form_data_attachments(harness: Harness) -> None:
    @fuzz_settings(size(150, 1500))
    @given(raw=st.binary(max_size=LIMIT_BYTES + 4), name=st.one_of(st.none(), texts))
    def run(raw: bytes, name: str | None) -> None:
        att: dict[str, Any] = {"data": raw, "mime_type": "application/octet-stream"}
        if name is not None:
            att["filename"] = name
        ok = len(raw) <= LIMIT_BYTES and (name is None or good_text(name, FIELD_CHARS))

        def check(rec: dict[str, Any]) -> bool:
            got = rec["data"]["attachments"][0]
            return got["data"] == raw and (name is None or got["filename"] == name)

        harness.case(
            "track_attachments form_data",
            lambda t, cid: t.track_attachments([att], mode="form_data", conversation_id=cid),
            valid=ok,
            arg="attachments",
            check=check,
        )

    run()
    harness.verify()


# --- wrong types for every argument of every method ---------------------------------------


class Label(str):
    """A str subclass (an enum value, a pydantic str): documented to be sent as plain text."""


WRONG_VALUES: list[Any] = [
    None, 0, -1, 1.5, math.nan, True, b"x", bytearray(b"x"), [], ["x"], {}, {"a": 1},
    Opaque(), Decimal("1"), datetime(2026, 1, 1, tzinfo=timezone.utc), "", "   ", "x" * 300,
    "\ud800", Label("lbl"), "2026-01-01T00:00:00Z", "10.0.0.1", "end_user",
]  # fmt: skip

BASE: dict[str, dict[str, Any]] = {
    "track_human_message": {"message": "hi"},
    "track_agent_message": {"message": "hi"},
    "track_action": {"action_name": "act"},
    "track_button": {"button_event": "e", "label": "l", "value": "v"},
    "track_attachments": {
        "attachments": [{"filename": "a.txt", "mime_type": "text/plain", "data": "aGk="}]
    },
    "track_token_usage": {"prompt_tokens": 1},
    "get_or_create_conversation": {},
}
ARGS: dict[str, dict[str, str]] = {
    "track_human_message": {
        "message": "text!long", "attachments": "attachments?", "attachment_mode": "ignored",
        "metadata": "dict?", "conversation_id": "cid?",
    },
    "track_action": {
        "action_name": "text!short", "started_at": "time?", "ended_at": "time?",
        "duration_ms": "number?", "tools_used": "dict?", "response": "text?long",
        "error_msg": "text?long", "metadata": "dict?", "conversation_id": "cid?",
    },
    "track_button": {
        "button_event": "text!short", "label": "text!short", "value": "text!short",
        "metadata": "dict?", "conversation_id": "cid?",
    },
    "track_attachments": {
        "attachments": "never", "sender": "sender?", "metadata": "dict?", "mode": "mode",
        "conversation_id": "cid?",
    },
    "track_token_usage": {
        "prompt_tokens": "count?", "completion_tokens": "count?", "total_tokens": "count?",
        "embedding_tokens": "count?", "model": "name?", "system": "name?",
        "conversation_id": "cid?",
    },
    "get_or_create_conversation": {
        "conversation_id": "cid!", "customer_id": "text?short", "customer_ip_address": "ip?",
        "device": "text?short", "source": "text?short", "language": "text?short",
        "name": "text?short", "environment": "text?short", "metadata": "dict?",
    },
}  # fmt: skip
ARGS["track_agent_message"] = ARGS["track_human_message"]


def acceptable(kind: str, v: Any) -> bool:
    """May a call with this value for an argument of this kind be accepted?"""
    optional = "?" in kind
    if v is None:
        return optional or kind == "ignored"
    base = kind.rstrip("?!")
    if base == "ignored":
        return True
    if base == "name":  # optional, but not blank when given
        return good_text(v, FIELD_CHARS)
    if base.startswith("text"):
        limit = LIMIT_CHARS if base.endswith("long") else FIELD_CHARS
        return good_text(v, limit, blank_ok=optional)
    if base == "cid":
        return good_text(v, FIELD_CHARS)
    if base == "ip":
        return v == "10.0.0.1"
    if base == "dict":
        return isinstance(v, dict) and json_native(v)
    if base == "time":
        return isinstance(v, datetime) or v == "2026-01-01T00:00:00Z"
    if base == "number":
        return (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
        )
    if base == "count":
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if base == "attachments":
        return v == []
    if base == "sender":
        return v in ("end_user", "agent")
    return False  # "never", "mode": nothing in WRONG_VALUES is a valid list / mode


def test_wrong_types_for_every_argument(harness: Harness) -> None:
    for method, args in ARGS.items():
        for arg, kind in args.items():
            for value in WRONG_VALUES:
                kwargs = dict(BASE[method])
                kwargs[arg] = value
                if method == "get_or_create_conversation":
                    # its conversation is the case's own, unless that is the argument
                    def call(t: AsyncConversationTracker, cid: str, kw: Any = kwargs) -> Any:
                        return t.get_or_create_conversation(**{"conversation_id": cid, **kw})
                else:

                    def call(
                        t: AsyncConversationTracker, cid: str, m: str = method, kw: Any = kwargs
                    ) -> Any:
                        if "conversation_id" in kw:
                            return getattr(t, m)(**kw)
                        return getattr(t, m)(conversation_id=cid, **kw)

                uses_own_cid = arg == "conversation_id"
                if uses_own_cid and value is None:
                    # None means "the current conversation" - of the calling task: make that
                    # one (outside the brackets) in the same task, just before the call
                    async def in_default(
                        t: AsyncConversationTracker, cid: str, inner: Any = call
                    ) -> Any:
                        await t.get_or_create_conversation("fz-default")
                        return await inner(t, cid)

                    call = in_default
                accepted = harness.case(
                    "wrong type",
                    call,
                    valid=None if uses_own_cid else acceptable(kind, value),
                    arg=arg,
                )
                if uses_own_cid and accepted:
                    # the event went to the conversation the value names: not the bracket
                    harness.expected[f"fz-{harness.n}"].pop(1)
                    assert acceptable(kind, value), f"{method}({arg}={value!r}) was accepted"
                elif uses_own_cid:
                    assert not acceptable(kind, value), f"{method}({arg}={value!r}) refused"
    harness.verify()
    assert harness.n == sum(len(a) for a in ARGS.values()) * len(WRONG_VALUES)


def test_deep_and_cyclic_metadata(harness: Harness) -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    cyclic_list: list[Any] = []
    cyclic_list.append(cyclic_list)

    def nested(depth: int) -> dict[str, Any]:
        top: dict[str, Any] = {}
        cur = top
        for _ in range(depth):
            cur["d"] = {}
            cur = cur["d"]
        return top

    shallow = nested(50)
    for meta, valid in [
        (cyclic, False),
        ({"l": cyclic_list}, False),
        (nested(100_000), False),
        (shallow, True),
        ({"big": 10**40, "neg": -(10**40), "f": 1e308, "tiny": 5e-324, "z": -0.0}, True),
    ]:
        harness.case(
            "deep/cyclic metadata",
            lambda t, cid, m=meta: t.track_human_message("m", metadata=m, conversation_id=cid),
            valid=valid,
            arg="metadata",
            check=lambda rec, m=meta: rec["data"]["metadata"] == m,
        )
    harness.verify()


def test_non_string_metadata_keys_are_refused(harness: Harness) -> None:
    """Found by this suite: json.dumps coerced keys, so {1: 'a', '1': 'b'} arrived as {'1': 'b'}."""
    for meta in ({1: "a", "1": "b"}, {True: 1}, {None: 1}, {1.5: 2}, {"ok": {2: "nested"}}):
        harness.case(
            "non-str keys",
            lambda t, cid, m=meta: t.track_human_message("m", metadata=m, conversation_id=cid),
            valid=False,
            arg="metadata",
            check=lambda rec, m=meta: rec["data"]["metadata"] == m,
        )
    harness.verify()


# --- read back from the real collector, both protocols --------------------------------------


def read_transcripts(collector: LocalCollector, cids: list[str]) -> dict[str, list[Any]]:
    """Each conversation's transcript through the collector's JSON read API."""
    out: dict[str, list[Any]] = {}
    with httpx.Client(
        base_url=collector.url, headers={"Authorization": f"Api-Key {KEY}"}, timeout=10
    ) as client:
        for cid in cids:
            page = client.get("/api/conversations/", params={"conversation_id": cid}).json()
            if page["count"] != 1:
                out[cid] = []
                continue
            pk = page["results"][0]["id"]
            out[cid] = client.get(f"/api/conversations/{pk}/").json()["transcript"]
    return out


@pytest.mark.parametrize("protocol", ["ingest", "rest"])
def test_fuzz_read_back_from_collector(
    protocol: str, collector: LocalCollector, loop_thread: LoopThread
) -> None:
    tracker = AsyncConversationTracker(
        api_key=KEY,
        endpoint=collector.url,
        protocol=protocol,
        flush_interval=0.05,
        max_message_chars=LIMIT_CHARS,
        retry_budget=10,
        _env_file=None,
    )
    sent: dict[str, tuple[str, dict[str, Any]] | None] = {}
    n = 0

    small_dicts = st.dictionaries(texts, json_values, max_size=3)

    @fuzz_settings(size(60, 800))
    @given(text=any_text, meta=st.one_of(st.none(), small_dicts))
    def run(text: str, meta: dict[str, Any] | None) -> None:
        nonlocal n
        n += 1
        CASES[f"collector read-back ({protocol})"] += 1
        cid = f"rb-{protocol}-{n}"
        loop_thread.run(tracker.track_human_message(f"before {n}", conversation_id=cid))
        valid = good_text(text, LIMIT_CHARS) and (meta is None or json_native(meta))
        refusal: AgentSightError | None = None
        try:
            loop_thread.run(tracker.track_human_message(text, metadata=meta, conversation_id=cid))
        except AgentSightError as exc:
            refusal = exc
        if refusal is not None:
            assert str(refusal).startswith(("message", "metadata")), refusal
            assert not valid
            sent[cid] = None
        else:
            assert valid
            sent[cid] = (text, meta or {})
        loop_thread.run(tracker.track_agent_message(f"after {n}", conversation_id=cid))

    try:
        run()
        assert loop_thread.run(tracker.flush(timeout=30), timeout=40)
        stats = tracker.stats()
    finally:
        loop_thread.run(tracker.aclose(timeout=10), timeout=20)
    assert stats["dropped_total"] == 0, (stats["dropped"], stats["last_error"])
    transcripts = read_transcripts(collector, list(sent))
    for cid, case in sent.items():
        contents = [(i["content"], i["metadata"]) for i in transcripts[cid]]
        middle = [] if case is None else [case]
        num = cid.rsplit("-", 1)[1]
        assert contents == [(f"before {num}", {}), *middle, (f"after {num}", {})], cid
    assert any(v is not None for v in sent.values())


def test_report_fuzz_cases(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n[reliability] fuzz cases: {sum(CASES.values())} total {dict(CASES)}")


def test_strategies_produce_what_we_think() -> None:
    """Guard the oracle's assumption: hypothesis text may hold lone surrogates and NUL."""
    assert not utf8_ok("\ud800")
    assert utf8_ok("\x00")
    assert json.loads(json.dumps("\x00")) == "\x00"
