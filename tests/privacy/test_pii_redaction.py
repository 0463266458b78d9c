"""Built-in redaction: generated PII of each kind never survives; text without PII is untouched.

Property-based (hypothesis): the PII strategies build valid values the way
they occur in the wild (Luhn-valid cards with a network's prefix, IBANs with
correct check digits, e-mail addresses, phone numbers in the supported
formats, IPv4/IPv6 addresses, API keys and tokens) and embed them in chat
text; the clean strategy mixes words with the numbers chat text is full of
(dates, times, timestamps, versions, prices, order numbers, UUIDs, epoch
times) - the false positives a redactor must not have.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import string
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentsight_async._privacy import (
    DEFAULT_KINDS,
    IBAN_LENGTHS,
    KINDS,
    Redactor,
    is_card_number,
    is_iban,
    luhn_ok,
    parse_kinds,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDACTOR = Redactor()

# --- building blocks --------------------------------------------------------------------

WORDS = [
    *(
        [
            "hello",
            "please",
            "order",
            "refund",
            "the",
            "my",
            "is",
            "arrived",
            "yesterday",
            "damaged",
            "thanks",
            "your",
        ]
    ),
    *(
        [
            "help",
            "box",
            "blue",
            "replacement",
            "agent",
            "ticket",
            "on",
            "at",
            "for",
            "and",
            "with",
            "from",
            "support",
        ]
    ),
    *(
        [
            "account",
            "delivery",
            "Monday",
            "invoice",
            "price",
            "version",
            "build",
            "release",
            "Hi",
            "Sure",
            "OK",
        ]
    ),
]
word = st.sampled_from(WORDS)
digits = st.text(string.digits, min_size=1, max_size=1)


def luhn_complete(body: str) -> str:
    """*body* plus the check digit that makes it pass Luhn."""
    for d in string.digits:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, length = draw(
        st.sampled_from(
            [
                ("4", 16),
                ("4", 13),
                ("4", 19),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("2720", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("65", 16),
                ("3528", 16),
                ("36", 14),
                ("62", 16),
            ]
        )
    )
    body = prefix + draw(
        st.text(string.digits, min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    number = luhn_complete(body)
    style = draw(st.sampled_from(["plain", " ", "-"]))
    if style == "plain" or length not in (15, 16):
        return number
    if length == 15:  # Amex 4-6-5
        return style.join([number[:4], number[4:10], number[10:]])
    return style.join(number[i : i + 4] for i in range(0, 16, 4))


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(
        st.text(
            string.digits + string.ascii_uppercase,
            min_size=IBAN_LENGTHS[country] - 4,
            max_size=IBAN_LENGTHS[country] - 4,
        )
    )
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    iban = f"{country}{check:02d}{bban}"
    assert is_iban(iban)
    if draw(st.booleans()):
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


@st.composite
def emails(draw: st.DrawFn) -> str:
    alnum = string.ascii_lowercase + string.digits
    local = (
        draw(st.text(alnum, min_size=1, max_size=3))
        + draw(st.text(alnum + "._+-", max_size=12))
        + draw(st.text(alnum, min_size=1, max_size=2))
    )
    labels = draw(st.lists(st.text(alnum, min_size=1, max_size=10), min_size=1, max_size=3))
    tld = draw(st.text(string.ascii_lowercase, min_size=2, max_size=6))
    local = re.sub(r"\.{2,}", ".", local)
    return f"{local}@{'.'.join(labels)}.{tld}"


@st.composite
def phones(draw: st.DrawFn) -> str:
    def n(k: int) -> str:
        return draw(st.text(string.digits, min_size=k, max_size=k))

    style = draw(st.sampled_from(["intl", "intl-compact", "nanp-paren", "nanp", "national"]))
    if style == "intl":
        cc = str(draw(st.integers(1, 999)))
        groups = draw(st.lists(st.integers(2, 4), min_size=2, max_size=4))
        rest = [n(k) for k in groups]
        while len(cc) + sum(map(len, rest)) < 8:
            rest.append(n(2))
        sep = draw(st.sampled_from([" ", "-", "."]))
        return f"+{cc} " + sep.join(rest) if len(cc) + sum(map(len, rest)) <= 15 else f"+{cc}{n(8)}"
    if style == "intl-compact":
        return "+" + str(draw(st.integers(1, 99))) + n(draw(st.integers(7, 11)))
    if style == "nanp-paren":
        return f"({n(3)}) {n(3)}-{n(4)}"
    if style == "nanp":
        sep = draw(st.sampled_from(["-", ".", " "]))
        return sep.join([n(3), n(3), n(4)])
    sep = draw(st.sampled_from([" ", "-"]))
    trunk = "0" + n(draw(st.integers(1, 3)))
    rest = [n(k) for k in draw(st.lists(st.integers(2, 4), min_size=2, max_size=3))]
    while len(trunk) + sum(map(len, rest)) < 9:
        rest.append(n(2))
    return (
        sep.join([trunk, *rest]) if len(trunk) + sum(map(len, rest)) <= 12 else trunk + sep + n(7)
    )


@st.composite
def ips(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1))))
    address = ipaddress.IPv6Address(draw(st.integers(2**64, 2**128 - 1)))
    text = address.compressed
    if not re.search(r"[0-9a-f]{3,4}", text):  # "1:2::3"-like: not claimed (see the docs)
        text = "2001:db8::" + text.split(":")[-1] + "abc"
    return text


B64 = string.ascii_letters + string.digits + "-_"


@st.composite
def secrets_(draw: st.DrawFn) -> str:
    def s(alphabet: str, k: int) -> str:
        return draw(st.text(alphabet, min_size=k, max_size=k))

    an = string.ascii_letters + string.digits
    return draw(
        st.sampled_from(
            [
                "sk-" + s(an, 48),
                "sk-proj-" + s(an + "_-", 64),
                "sk-ant-api03-" + s(an + "_-", 80),
                "sk_live_" + s(an, 24),
                "ags_" + s("0123456789abcdef", 32) + "_" + s("0123456789abcdef", 6),
                "AKIA" + s(string.ascii_uppercase + string.digits, 16),
                "ghp_" + s(an, 36),
                "github_pat_" + s(an + "_", 60),
                "xoxb-" + s(string.digits, 12) + "-" + s(an, 24),
                "AIza" + s(an + "_-", 35),
                "eyJ" + s(B64, 20) + ".eyJ" + s(B64, 30) + "." + s(B64, 43),
            ]
        )
    )


@st.composite
def bearer(draw: st.DrawFn) -> tuple[str, str]:
    token = draw(st.text(string.ascii_letters + string.digits + "._-", min_size=12, max_size=60))
    return f"Authorization: Bearer {token}", token


PII = {
    "card": cards(),
    "iban": ibans(),
    "email": emails(),
    "phone": phones(),
    "ip": ips(),
    "secret": secrets_(),
}


@st.composite
def sentence(draw: st.DrawFn, token: st.SearchStrategy[str]) -> tuple[str, str]:
    """Words, then the token, then words; separators a person would type."""
    value = draw(token)
    before = " ".join(draw(st.lists(word, max_size=6)))
    after = " ".join(draw(st.lists(word, max_size=6)))
    left = draw(st.sampled_from([" ", ": ", " (", " <", "\n", "\t"]))
    right = draw(st.sampled_from([" ", ". ", ", ", ") ", ">", "\n", "!"]))
    return f"{before}{left}{value}{right}{after}", value


# --- properties: PII never survives --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the digits after the country code pass a card's checks (found by the property below)
        (" +1 2094 2094 213 518 ", " [phone] "),
        ("call +44 5105 1051 0510 5100 now", "call +44 [card] now"),  # 18 digits: no phone
        ("card +1 4111 1111 1111 1111 x", "card +1 [card] x"),
        ("pay 4111 1111 1111 1111 now", "pay [card] now"),
    ],
)
def test_an_international_phone_is_a_phone_even_when_its_digits_pass_as_a_card(
    text: str, expected: str
) -> None:
    assert REDACTOR.redact_text(text)[0] == expected


@pytest.mark.parametrize("kind", sorted(PII))
@PROPERTY
@given(data=st.data())
def test_generated_pii_of_each_kind_is_replaced(kind: str, data: st.DataObject) -> None:
    text, value = data.draw(sentence(PII[kind]), label=kind)
    out, counts = REDACTOR.redact_text(text)
    assert value not in out
    assert f"[{kind}]" in out
    assert counts.get(kind, 0) >= 1


@PROPERTY
@given(pair=bearer())
def test_bearer_tokens_are_replaced_and_the_scheme_kept(pair: tuple[str, str]) -> None:
    text, token = pair
    out, counts = REDACTOR.redact_text(text)
    assert token not in out
    assert out == "Authorization: Bearer [secret]"
    assert counts == {"secret": 1}


@PROPERTY
@given(
    values=st.lists(st.sampled_from(sorted(PII)).flatmap(lambda k: PII[k]), min_size=1, max_size=5),
    filler=st.lists(word, min_size=5, max_size=12),
)
def test_many_kinds_in_one_text_none_survives(values: list[str], filler: list[str]) -> None:
    parts: list[str] = []
    for i, w in enumerate(filler):
        parts.append(w)
        if i < len(values):
            parts.append(values[i])
    out, counts = REDACTOR.redact_text(" ".join(parts))
    for value in values:
        assert value not in out
    assert sum(counts.values()) >= len(values)


# --- properties: text without PII is untouched -----------------------------------------------


@st.composite
def clean_token(draw: st.DrawFn) -> str:
    i = st.integers
    kind = draw(st.integers(0, 15))
    if kind == 0:  # ISO date
        return f"{draw(i(1990, 2039))}-{draw(i(1, 12)):02d}-{draw(i(1, 28)):02d}"
    if kind == 1:  # European and US dates
        sep = draw(st.sampled_from(["/", ".", "-"]))
        return sep.join(
            [f"{draw(i(1, 28)):02d}", f"{draw(i(1, 12)):02d}", str(draw(i(1990, 2039)))]
        )
    if kind == 2:  # times
        base = f"{draw(i(0, 23)):02d}:{draw(i(0, 59)):02d}"
        return base + (f":{draw(i(0, 59)):02d}" if draw(st.booleans()) else "")
    if kind == 3:  # ISO timestamps, as the SDK writes them
        return (
            f"{draw(i(1990, 2039))}-{draw(i(1, 12)):02d}-{draw(i(1, 28)):02d}T"
            f"{draw(i(0, 23)):02d}:{draw(i(0, 59)):02d}:{draw(i(0, 59)):02d}."
            f"{draw(i(0, 999999)):06d}" + draw(st.sampled_from(["+00:00", "Z", "+02:00"]))
        )
    if kind == 4:  # versions
        parts = [str(draw(i(0, 40))) for _ in range(draw(i(2, 3)))]
        return draw(st.sampled_from(["", "v"])) + ".".join(parts)
    if kind == 5:  # prices
        return (
            draw(st.sampled_from(["$", "€", "£", ""]))
            + f"{draw(i(0, 99999)):,}.{draw(i(0, 99)):02d}"
        )
    if kind == 6:  # order numbers
        return draw(st.sampled_from(["#", "ORD-", "INV-2024-", "order "])) + str(draw(i(1, 10**8)))
    if kind == 7:
        return str(uuid.UUID(int=draw(i(0, 2**128 - 1))))
    if kind == 8:  # epoch seconds, milliseconds, microseconds
        return str(
            draw(st.sampled_from([1_500_000_000, 1_500_000_000_000, 1_500_000_000_000_000]))
            + draw(i(0, 10**9))
        )
    if kind == 9:  # percentages, quantities
        return f"{draw(i(0, 100))}%"
    if kind == 10:
        return f"{draw(i(1, 500))} {draw(st.sampled_from(['items', 'kg', 'ms', 'tokens']))}"
    if kind == 11:  # small integers
        return str(draw(i(0, 99999)))
    if kind == 12:  # hex digests, git commits
        return draw(st.text("0123456789abcdef", min_size=7, max_size=40))
    if kind == 13:  # identifiers and code
        return draw(
            st.sampled_from(
                [
                    "user_id",
                    "std::vector",
                    "snake_case_name",
                    "task-force",
                    "e-mail",
                    "x86_64",
                    "utf-8",
                    "@mention",
                    "a.b.c",
                ]
            )
        )
    if kind == 14:  # durations
        return f"{draw(i(1, 59))}m{draw(i(0, 59))}s"
    return draw(word)


@PROPERTY
@given(tokens=st.lists(clean_token(), min_size=1, max_size=10))
@example(tokens=["2024-05-02T14:30:15.123456+00:00", "3.11.7", "$1,234.56", "#48213"])
@example(tokens=["123e4567-e89b-12d3-a456-426614174000", "1732790120614", "14:30"])
def test_text_without_pii_is_unchanged(tokens: list[str]) -> None:
    text = " ".join(f"{t} {WORDS[i % len(WORDS)]}" for i, t in enumerate(tokens))
    out, counts = REDACTOR.redact_text(text)
    assert out is text
    assert counts == {}


@PROPERTY
@given(text=st.text(max_size=200))
def test_redaction_is_idempotent_and_never_raises(text: str) -> None:
    once, _ = REDACTOR.redact_text(text)
    twice, counts = REDACTOR.redact_text(once)
    assert twice == once
    assert counts == {}


# --- events ---------------------------------------------------------------------------------


def _events() -> list[tuple[str, dict[str, Any]]]:
    mail = "jane@example.com"
    return [
        ("question", {"content": f"mail {mail}", "sender": "end_user", "metadata": {"m": mail}}),
        (
            "answer",
            {
                "content": "ok",
                "sender": "agent",
                "metadata": {},
                "attachments": [{"filename": f"{mail}.pdf", "mime_type": "a/b", "data": "AA=="}],
                "attachment_mode": "base64",
            },
        ),
        (
            "attachments",
            {
                "attachments": [{"filename": f"to {mail}.txt", "data": b"x"}],
                "metadata": {"to": [mail]},
                "mode": "form_data",
                "sender": "end_user",
            },
        ),
        (
            "action",
            {
                "action_name": "send_mail",
                "metadata": {"deep": {"deeper": [mail]}},
                "tools_used": {"to": mail, "cc": [mail, 1, None, True, 2.5]},
                "response": f"sent to {mail}",
                "error_msg": f"bounce {mail}",
            },
        ),
        ("button", {"button_event": "click", "label": mail, "value": mail, "metadata": {}}),
        (
            "conversation",
            {
                "conversation_id": "c",
                "customer_id": mail,
                "name": f"chat {mail}",
                "customer_ip_address": "10.0.0.1",
                "environment": "production",
                "metadata": {"who": mail},
                "is_used": True,
            },
        ),
        ("future_kind", {"anything": {"nested": mail}}),
    ]


@pytest.mark.parametrize(("kind", "data"), _events(), ids=[k for k, _ in _events()])
def test_every_scanned_field_of_every_kind_is_redacted_and_the_input_kept(
    kind: str, data: dict[str, Any]
) -> None:
    before = copy.deepcopy(data)
    out, counts = REDACTOR.redact_event(kind, data)
    assert data == before  # never mutated
    flat = repr(out)
    if kind == "conversation":
        assert out["customer_id"] == "jane@example.com"  # an id: kept (see the docs)
        assert out["customer_ip_address"] is None
        assert counts["ip"] == 1
        flat = repr({k: v for k, v in out.items() if k != "customer_id"})
    assert "jane@example.com" not in flat
    assert counts["email"] >= 1


def test_unchanged_events_are_the_same_object() -> None:
    data = {"content": "hello there", "sender": "end_user", "metadata": {"plan": "pro"}}
    out, counts = REDACTOR.redact_event("question", data)
    assert out is data
    assert counts == {}


def test_copies_share_what_did_not_change() -> None:
    keep = {"big": ["x"] * 10}
    data = {"action_name": "a", "metadata": keep, "response": "call +44 20 7946 0958"}
    out, counts = REDACTOR.redact_event("action", data)
    assert out is not data
    assert out["metadata"] is keep
    assert out["response"] == "call [phone]"
    assert counts == {"phone": 1}


def test_card_numbers_stored_as_integers_are_redacted() -> None:
    out, counts = REDACTOR.redact_event(
        "action",
        {
            "action_name": "a",
            "metadata": {"card": 4111111111111111, "order": 12345678, "ms": 1732790120614},
        },
    )
    assert out["metadata"] == {"card": "[card]", "order": 12345678, "ms": 1732790120614}
    assert counts == {"card": 1}


@pytest.mark.parametrize(("levels", "expected"), [(300, {"email": 1}), (600, {"redacted": 1})])
def test_deeply_nested_values_are_redacted_without_recursion_errors(
    levels: int, expected: dict[str, int]
) -> None:
    """Deeper than MAX_DEPTH, a subtree is redacted as JSON text; deeper than JSON
    itself can encode, it becomes one marker - never the value unredacted."""
    value: Any = "jane@example.com"
    for _ in range(levels):
        value = {"k": [value]}
    out, counts = REDACTOR.redact_event("action", {"action_name": "a", "metadata": value})
    assert "jane@example.com" not in repr(out)
    assert counts == expected


def test_token_usage_is_not_scanned() -> None:
    data = {"prompt_tokens": 4111111111111111, "model": "jane@example.com"}
    assert REDACTOR.redact_event("token_usage", data) == (data, {})


# --- user patterns, kinds, validators -----------------------------------------------------------


def test_user_patterns_run_first_and_are_named_by_their_group() -> None:
    r = Redactor(
        kinds=["email"],
        patterns=[r"EMP-\d{6}", r"(?P<ticket>TKT-\d+)", re.compile(r"(?P<a>AAA\d)|(?P<b>BBB\d)")],
    )
    out, counts = r.redact_text("EMP-123456 TKT-9 AAA1 BBB2 x@y.org")
    assert out == "[redacted] [ticket] [a] [b] [email]"
    assert counts == {"redacted": 1, "ticket": 1, "a": 1, "b": 1, "email": 1}


def test_only_the_chosen_kinds_run() -> None:
    r = Redactor(kinds=["card"])
    text = "x@y.org 4111 1111 1111 1111 +44 20 7946 0958"
    assert r.redact_text(text) == ("x@y.org [card] +44 20 7946 0958", {"card": 1})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", KINDS),
        ("email, Phone", ("email", "phone")),
        (["ip", "secret", "ip"], ("secret", "ip")),
        ("", ()),
        ("none", ()),
    ],
)
def test_parse_kinds(value: Any, expected: tuple[str, ...]) -> None:
    assert parse_kinds(value) == expected


def test_bad_kinds_and_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'mail'"):
        Redactor(kinds=["mail"])
    with pytest.raises(ValueError, match="empty string"):
        Redactor(patterns=["a*"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Redactor(patterns=["("])


def test_from_settings() -> None:
    from agentsight_async._config import load_settings

    assert Redactor.from_settings(load_settings()) is None
    r = Redactor.from_settings(load_settings(redact="email,card", redact_patterns=[r"X\d+"]))
    assert r is not None
    assert r.kinds == ("email", "card")
    assert len(r.patterns) == 1
    assert DEFAULT_KINDS == KINDS


@pytest.mark.parametrize(
    "number", ["4111111111111111", "5500000000000004", "378282246310005", "6011111111111117"]
)
def test_known_test_card_numbers_are_cards(number: str) -> None:
    assert is_card_number(number)


@pytest.mark.parametrize(
    "number", ["4111111111111112", "1732790120614", "0000000000000000", "411111111111"]
)
def test_not_cards(number: str) -> None:
    assert not is_card_number(number)


@pytest.mark.parametrize(
    "text",
    [
        "see v1.2.3 and 10.0 and 999.1.1.1",
        "std::vector<int> and a::b and ::1",
        "ticket PROJ-1234 and ISO 8601 and COVID-19",
        "call me at 555-1234",  # a 7-digit local number: not claimed
        "user@localhost",  # no dot in the domain: not claimed
    ],
)
def test_documented_non_matches(text: str) -> None:
    assert REDACTOR.redact_text(text) == (text, {})
