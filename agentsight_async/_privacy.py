"""Built-in PII redaction: e-mails, phones, cards, IBANs, IP addresses and secrets.

A :class:`Redactor` rewrites one event's data - the SDK's item shapes (see
``_inputs``) - and returns the new data and how many values of each kind it
replaced.  It is pure: no pipeline code, no logging, no I/O, and it never
mutates its input (a changed event is a copy; an unchanged one is the very
same object, so the common case allocates nothing).

What is scanned, per event kind:

===========================  ====================================================
``question``, ``answer``     ``content``, ``metadata``, attachment ``filename``\\ s
``attachments``              attachment ``filename``\\ s, ``metadata``
``action``                   ``response``, ``error_msg``, ``tools_used`` and
                             ``metadata`` (every string inside, recursively)
``button``                   ``label``, ``value``, ``metadata``
``conversation``,            ``name``, ``metadata``; with ``ip``,
``conversation_opened``      ``customer_ip_address`` is removed (set to None)
``token_usage``              nothing (counts and model names)
any other kind               every string value, recursively
===========================  ====================================================

Never scanned: ids (``conversation_id``, ``customer_id``: they are keys that
group rows, and a marker would merge every customer into one), timestamps,
enum-like fields (``sender``, ``mode``, ``button_event``, ``action_name``),
mapping *keys*, and attachment bytes.

Cost.  Most chat text contains no ``@``, no digit and no secret prefix, and
then none of the patterns can match: a chain of substring tests (~0.2 µs for a
100-character message) decides that and skips every regular expression.
Each kind also has its own cheap trigger (``@`` for e-mails, at least 13
digits for cards, three dots for IPv4 ...), so a message with an order number
runs only the patterns that could match it.  See ``benchmarks/redaction.py``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson

from . import _events as ev

#: Every built-in kind, in the order the patterns run (secrets first: a key or
#: token holds digit runs that would otherwise look like a phone or a card).
KINDS: Final = ("secret", "email", "iban", "card", "phone", "ip")
#: What ``Redactor()`` uses, and what ``AGENTSIGHT_REDACT=all`` means: every kind.
DEFAULT_KINDS: Final = KINDS
#: The marker of a user pattern without a named group.
CUSTOM_LABEL: Final = "redacted"
#: Below this nesting depth values are walked one by one; deeper, a subtree is
#: redacted as JSON text (no recursion limit can be reached on any JSON value).
MAX_DEPTH: Final = 64

Counts = dict[str, int]


# --- validators ------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check of card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """13-19 digits, an issuer prefix card networks use, and a valid Luhn check digit.

    Prefixes: 2 (Mastercard 2221-2720, Mir 2200-2204), 3 (Amex 34/37, Diners
    30/36/38/39, JCB 35), 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover,
    UnionPay, Maestro, RuPay) and 81/82.  Numbers starting with 0, 1, 7, 9 are
    never cards here: epoch timestamps in ms or ns start with 1.
    """
    if not 13 <= len(digits) <= 19:
        return False
    first = digits[0]
    if first not in "23456" and digits[:2] not in ("81", "82"):
        return False
    return luhn_ok(digits)


#: IBAN length per country (ISO 13616 registry).
IBAN_LENGTHS: Final[Mapping[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def is_iban(compact: str) -> bool:
    """A registered country's length and a valid ISO 7064 mod-97 check (no spaces)."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


# --- the patterns ----------------------------------------------------------------------
# Each rule: a cheap trigger (substring tests) and a pattern whose matches a
# validator may still refuse.  Boundaries are look-arounds, so a marker never
# glues two words together and a match never starts inside a longer token.

_EMAIL = re.compile(r"(?<![\w.%+'-])[\w.%+'-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,24}(?![\w-])")

_SECRET_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-[A-Za-z0-9_-]{20,}"  # OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...)
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret / restricted keys
    r"|ags_[A-Za-z0-9_]{16,}"  # AgentSight API keys
    r"|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub tokens
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|AIza[A-Za-z0-9_-]{35}"  # Google API keys
    r"|eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # JSON Web Tokens
    r")(?![A-Za-z0-9_-])"
)
_SECRET_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_SECRET_ASSIGNED = re.compile(
    r"(?i)(\b(?:aws_)?secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
)
_SECRET_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
    re.DOTALL,
)

_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])",
    re.ASCII,
)

# Patterns that start with a character class, not a look-behind, let the regex engine
# jump from candidate to candidate (here: digit to digit) instead of trying every position.
_CARD = re.compile(
    r"[0-9](?<![\w.,+-][0-9])(?:[0-9]{12,18}|[0-9]{3}(?:[ -][0-9]{3,6}){2,4})(?![\w]|[.,-][0-9])",
    re.ASCII,
)

#: An international number alone (``+``, a country code, groups): tried before cards, since
#: the digits after ``+1 `` may pass a card's checks (``+1 2094 2094 213 518``) and a card
#: is never written after a country code (the phone's 15-digit cap leaves longer runs to it).
_INTL_PHONE = re.compile(
    r"(?<![\w+-])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w]|[.,-]\d)", re.ASCII
)

_PHONE = re.compile(
    r"(?<![\w+-])(?:"
    # international: +, a country code, then groups (one may sit in parentheses)
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    r"|(?:1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    # national numbers with a trunk 0, one separator throughout: 030 1234567, 06 12 34 56 78
    r"|0\d{1,4}([ -])\d{2,8}(?:\1\d{2,8}){0,3}"
    r")(?![\w]|[.,-]\d)",
    re.ASCII,
)

_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])", re.ASCII)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:]|\.\d)",
    re.ASCII,
)
_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{3,4}")


def _digit_count(text: str) -> int:
    c = text.count
    return c("0") + c("1") + c("2") + c("3") + c("4") + c("5") + c("6") + c("7") + c("8") + c("9")


def _has_digit(text: str) -> bool:
    # Ten single-character tests (memchr) beat one regular expression ~3x.
    return (
        "0" in text
        or "1" in text
        or "2" in text
        or "3" in text
        or "4" in text
        or "5" in text
        or "6" in text
        or "7" in text
        or "8" in text
        or "9" in text
    )


def _may_hold_secret(text: str) -> bool:
    """Whether *text* holds a prefix some secret pattern starts with.

    Single characters gate the multi-character tests (a one-character ``in``
    costs a fraction of a longer one).
    """
    if "_" in text and (
        "ags_" in text
        or "_live_" in text
        or "_test_" in text
        or "hp_" in text
        or "ho_" in text
        or "hu_" in text
        or "hs_" in text
        or "hr_" in text
        or "github_pat_" in text
        or "ecret_access_key" in text
        or "ECRET_ACCESS_KEY" in text
    ):
        return True
    if "-" in text and ("sk-" in text or "xox" in text or "-----BEGIN" in text):
        return True
    if "J" in text and "eyJ" in text:
        return True
    if "A" in text and ("IA" in text or "CCA" in text or "AIz" in text):
        return True
    return "earer" in text or "EARER" in text


def _may_hold_ipv6(text: str) -> bool:
    return "::" in text or text.count(":") >= 7


def _table(mapping: dict[str, str], default: str) -> bytes:
    table = bytearray(default.encode() * 256)
    for chars, to in mapping.items():
        for ch in chars:
            table[ord(ch)] = ord(to)
    return bytes(table)


#: UTF-8 bytes -> ``0`` for digits, ``A`` for capitals, ``+.:()`` kept, ``x`` for
#: anything else (every byte of a non-ASCII character too); with
#: :data:`_MASK_DELETE` (spaces, hyphens) deleted, a card's groups join into one
#: run of zeros.  A substring test on the result - ``"0" * 13 in mask``, "13
#: digits, separators aside?" - runs at C speed, where a regular expression
#: costs microseconds per hundred characters.
_MASK: Final = _table(
    {"0123456789": "0", "ABCDEFGHIJKLMNOPQRSTUVWXYZ": "A", "+": "+", ".": ".", ":": ":"}
    | {"(": "(", ")": ")"},
    "x",
)
_MASK_DELETE: Final = b" -"
#: A dotted quad's middle in the mask when its two middle parts have 2-3 digits each.
_QUAD_MIDDLES: Final = ("0.00.00.0", "0.000.00.0", "0.00.000.0", "0.000.000.0")


def _quad_middle(mask: str) -> bool:
    return any(shape in mask for shape in _QUAD_MIDDLES)


#: What a phone may also have between its digits (besides spaces and hyphens).
_PHONE_DELETE: Final = b".()"


# --- kinds ---------------------------------------------------------------------------------

#: ``(pattern, group, validator)``: matches of *pattern* become the marker, after
#: the text of *group* (when not 0).  A *validator* (when given) says how many
#: characters of a match to replace: 0 refuses it, fewer than all keeps the rest.
Step = tuple[re.Pattern[str], int, "Callable[[str], int] | None"]


class _Kind:
    """One kind: the substitutions that replace its matches by ``[label]``, counted."""

    __slots__ = ("label", "marker", "steps")

    def __init__(self, label: str, *steps: Step) -> None:
        self.label = label
        self.marker = f"[{label}]"
        self.steps = steps

    def apply(self, text: str, counts: Counts) -> str:
        """*text* with this kind's matches replaced; ``counts[label]`` grows by their number."""
        n = 0
        for pattern, group, valid in self.steps:
            if valid is None:
                repl = self.marker if group == 0 else f"\\g<{group}>{self.marker}"
                text, k = pattern.subn(repl, text)
                n += k
                continue
            # A validator may refuse a candidate (checksum, range): rebuild the text
            # match by match, keeping refused candidates verbatim.
            parts: list[str] = []
            last = 0
            for m in pattern.finditer(text):
                length = valid(m.group(0))
                if length:
                    parts += (text[last : m.start()], self.marker)
                    last = m.start() + length
            if parts:
                n += len(parts) // 2
                parts.append(text[last:])
                text = "".join(parts)
        if n:
            counts[self.label] = counts.get(self.label, 0) + n
        return text


def _card_ok(candidate: str) -> int:
    return len(candidate) if is_card_number(candidate.replace(" ", "").replace("-", "")) else 0


def _iban_ok(candidate: str) -> int:
    """The length of the IBAN the candidate starts with (it may have taken a word more)."""
    want = IBAN_LENGTHS.get(candidate[:2])
    if want is None:
        return 0
    count = 0
    for end, ch in enumerate(candidate, 1):
        if ch != " ":
            count += 1
            if count == want:
                if end < len(candidate) and candidate[end] != " ":
                    return 0  # the candidate's groups do not end where the IBAN does
                return end if is_iban(candidate[:end].replace(" ", "")) else 0
    return 0


def _phone_ok(candidate: str) -> int:
    digits = _digit_count(candidate)
    if candidate.startswith("+"):
        ok = 8 <= digits <= 15
    elif candidate.startswith("0"):
        ok = 9 <= digits <= 12
    else:
        ok = True  # the North American shapes are exact
    return len(candidate) if ok else 0


def _ipv4_ok(candidate: str) -> int:
    return len(candidate) if all(int(part) <= 255 for part in candidate.split(".")) else 0


def _ipv6_ok(candidate: str) -> int:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return 0
    # "::1", "a::b" and the like are more often code than addresses.
    return len(candidate) if _HEX_GROUP.search(candidate) else 0


_SECRET: Final = _Kind(
    "secret",
    (_SECRET_PEM, 0, None),
    (_SECRET_BEARER, 1, None),
    (_SECRET_ASSIGNED, 1, None),
    (_SECRET_TOKEN, 0, None),
)
_EMAIL_KIND: Final = _Kind("email", (_EMAIL, 0, None))
_IBAN_KIND: Final = _Kind("iban", (_IBAN, 0, _iban_ok))
_CARD_KIND: Final = _Kind("card", (_CARD, 0, _card_ok))
_PHONE_KIND: Final = _Kind("phone", (_PHONE, 0, _phone_ok))
_INTL_PHONE_KIND: Final = _Kind("phone", (_INTL_PHONE, 0, _phone_ok))
_IPV6_KIND: Final = _Kind("ip", (_IPV6, 0, _ipv6_ok))
_IPV4_KIND: Final = _Kind("ip", (_IPV4, 0, _ipv4_ok))


class _Custom(_Kind):
    """A user pattern: the marker is its named group (the first of several that took
    part in the match), else ``[redacted]``."""

    __slots__ = ("pattern", "several")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        names = list(pattern.groupindex)
        super().__init__(names[0] if len(names) == 1 else CUSTOM_LABEL, (pattern, 0, None))
        self.pattern = pattern
        self.several = len(names) > 1

    def apply(self, text: str, counts: Counts) -> str:
        if not self.several:
            return super().apply(text, counts)

        def replace(m: re.Match[str]) -> str:
            label = next((k for k, v in m.groupdict().items() if v is not None), CUSTOM_LABEL)
            counts[label] = counts.get(label, 0) + 1
            return f"[{label}]"

        return self.pattern.sub(replace, text)


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """A user pattern, compiled; refused when it can match the empty string.

    Raises:
        ValueError: the pattern does not compile, or matches ``""`` (it would put
            a marker between every two characters).
    """
    try:
        compiled = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.fullmatch("") is not None or compiled.search("") is not None:
        raise ValueError(f"{compiled.pattern!r} matches the empty string")
    return compiled


def parse_kinds(value: str | Iterable[str]) -> tuple[str, ...]:
    """Kinds from ``"email,phone"``, ``"all"``, ``""`` or an iterable, in :data:`KINDS` order.

    Raises:
        ValueError: naming an unknown kind and listing the valid ones.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"kinds must be strings, got {type(item).__name__}")
        name = item.strip().lower()
        if not name or name == "none":
            continue
        if name == "all":
            wanted.update(KINDS)
        elif name in KINDS:
            wanted.add(name)
        else:
            raise ValueError(f"unknown kind {name!r}; choose from {', '.join(KINDS)} or 'all'")
    return tuple(k for k in KINDS if k in wanted)


# --- what to scan in each event kind ---------------------------------------------------

_TEXT, _JSON, _FILES, _IP_FIELD = range(4)
_FIELDS: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    ev.QUESTION: (("content", _TEXT), ("metadata", _JSON), ("attachments", _FILES)),
    ev.ANSWER: (("content", _TEXT), ("metadata", _JSON), ("attachments", _FILES)),
    ev.ATTACHMENTS: (("attachments", _FILES), ("metadata", _JSON)),
    ev.ACTION: (
        ("response", _TEXT),
        ("error_msg", _TEXT),
        ("tools_used", _JSON),
        ("metadata", _JSON),
    ),
    ev.BUTTON: (("label", _TEXT), ("value", _TEXT), ("metadata", _JSON)),
    ev.CONVERSATION: (("name", _TEXT), ("metadata", _JSON), ("customer_ip_address", _IP_FIELD)),
    ev.CONVERSATION_OPENED: (
        ("name", _TEXT),
        ("metadata", _JSON),
        ("customer_ip_address", _IP_FIELD),
    ),
    ev.TOKEN_USAGE: (),
}


class Redactor:
    """Replaces PII and secrets in events' text with markers that say what was removed.

    Args:
        kinds: built-in kinds to apply, from :data:`KINDS` (``"all"`` allowed);
            default every kind.
        patterns: your own regular expressions (strings or compiled).  A match
            becomes ``[redacted]``, or ``[name]`` after the pattern's named
            group ``(?P<name>...)`` (with several named groups, the first one
            that took part in the match).  They run before the built-in kinds.

    Raises:
        ValueError: an unknown kind, or a pattern that does not compile or can
            match the empty string.

    Thread-safe and reentrant: it holds only compiled patterns.
    """

    def __init__(
        self,
        kinds: Iterable[str] = DEFAULT_KINDS,
        patterns: Iterable[str | re.Pattern[str]] = (),
    ) -> None:
        self.kinds = parse_kinds(kinds)
        self.patterns = tuple(compile_pattern(p) for p in patterns)
        self._custom = tuple(_Custom(p) for p in self.patterns)
        on = set(self.kinds)
        self._secret = "secret" in on
        self._email = "email" in on
        self._iban = "iban" in on
        self._cards = "card" in on
        self._phone = "phone" in on
        self._ip = "ip" in on
        #: A kind that needs a digit is on (IPv6 aside).
        self._numeric = bool(on & {"iban", "card", "phone", "ip"})

    def __repr__(self) -> str:
        return f"Redactor(kinds={list(self.kinds)!r}, patterns={len(self.patterns)})"

    @classmethod
    def from_settings(cls, settings: Any) -> Redactor | None:
        """The redactor ``settings.redact`` and ``settings.redact_patterns`` ask for.

        Args:
            settings: a :class:`~agentsight_async.Settings` (or any object with
                ``redact`` and ``redact_patterns`` attributes).

        Returns:
            None when neither is set (nothing to redact: the caller skips the step).
        """
        kinds = tuple(getattr(settings, "redact", ()) or ())
        patterns = tuple(getattr(settings, "redact_patterns", ()) or ())
        if not kinds and not patterns:
            return None
        return cls(kinds, patterns)

    # --- text ---------------------------------------------------------------------------

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """*text* with every match replaced by its marker, and the count per kind.

        Args:
            text: any string: a message, a label, a file name.

        Returns:
            ``(text, counts)``: the very same string when nothing matched (and
            ``{}``), else the rewritten one and e.g. ``{"email": 2}``.
        """
        counts: Counts = {}
        return self._sub(text, counts), counts

    def _sub(self, text: str, counts: Counts) -> str:
        for custom in self._custom:
            text = custom.apply(text, counts)
        if len(text) < 5:  # shorter than anything built in can match ("abc::")
            return text
        # The fast path: most text holds no "@", no digit and no secret prefix.
        digit = self._numeric and _has_digit(text)
        secret = self._secret and _may_hold_secret(text)
        email = self._email and "@" in text
        ipv6 = self._ip and ":" in text and ("::" in text or text.count(":") >= 7)
        if not (digit or secret or email or ipv6):
            return text
        if secret:
            text = _SECRET.apply(text, counts)
        if email:
            text = _EMAIL_KIND.apply(text, counts)
        if not (digit or ipv6):
            return text
        # Which numeric kinds could match: substring tests on the digit mask.  The
        # mask is not rebuilt after a kind replaced something: markers only remove
        # digits, so a stale mask can only run a pattern for nothing.
        raw = text.encode("utf-8", "surrogatepass").translate(_MASK, _MASK_DELETE) if digit else b""
        # Tested as str: ``bytes.__contains__`` first tries its argument as an integer
        # (and clears the TypeError), ~4x slower than ``str.__contains__``.
        mask = raw.decode("ascii")
        if self._iban and "AA00" in mask:  # a country code and its check digits
            text = _IBAN_KIND.apply(text, counts)
        if self._cards and "0000000000000" in mask:  # 13 digits, spaces and hyphens aside
            if self._phone and "+0" in mask:  # "+1 2094 2094 213 518" is a phone
                text = _INTL_PHONE_KIND.apply(text, counts)
            text = _CARD_KIND.apply(text, counts)
        if self._phone:
            run = raw.translate(None, _PHONE_DELETE).decode("ascii")
            # 9 digits (North American, national numbers) or "+" and 8 (international)
            if "000000000" in run or "+00000000" in run:
                text = _PHONE_KIND.apply(text, counts)
        if self._ip:
            if ipv6:  # first: "::ffff:1.2.3.4" is one address
                text = _IPV6_KIND.apply(text, counts)
            # A dotted quad's mask holds "0.0.0" (a one-digit middle part) or one of the
            # four shapes of two longer middle parts; a version (3.11.7 -> "0.00.0"),
            # a price or a date holds none of them.
            if "0.0.0" in mask or ("0.00" in mask and _quad_middle(mask)):
                text = _IPV4_KIND.apply(text, counts)
        return text

    # --- events -------------------------------------------------------------------------

    def redact_event(
        self, kind: str, data: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, int]]:
        """One event's data with its text redacted, and the count per kind.

        Args:
            kind: the event kind (``question``, ``action`` ... see the module doc).
            data: the event's data in the SDK's item shape; never mutated.

        Returns:
            ``(data, counts)``: *data* itself when nothing changed, else a copy
            that shares every unchanged value with it.
        """
        counts: Counts = {}
        fields = _FIELDS.get(kind)
        if fields is None:  # a kind this version does not know: scan everything
            return self._walk(data, counts, 0), counts
        out: dict[str, Any] | None = None
        for key, how in fields:
            value = data.get(key)
            if value is None:
                continue
            if how == _TEXT:
                new = self._sub(value, counts) if isinstance(value, str) else value
            elif how == _JSON:
                if not value or not self._json_may_match(value):
                    continue
                new = self._walk(value, counts, 0)
            elif how == _FILES:
                new = self._files(value, counts)
            elif self._ip:  # _IP_FIELD
                counts["ip"] = counts.get("ip", 0) + 1
                new = None
            else:
                continue
            if new is not value:
                if out is None:
                    out = dict(data)
                out[key] = new
        return (data if out is None else out), counts

    def _json_may_match(self, value: Any) -> bool:
        """Whether anything in a JSON value could match: one pre-check of its JSON text
        instead of one per string inside (escaping never hides a trigger character)."""
        if self._custom:
            return True
        try:
            text = orjson.dumps(value).decode()
        except (TypeError, ValueError):  # not plain JSON: walk it
            return True
        return bool(
            (self._numeric and _has_digit(text))
            or (self._secret and _may_hold_secret(text))
            or (self._email and "@" in text)
            or (self._ip and _may_hold_ipv6(text))
        )

    def _files(self, attachments: Any, counts: Counts) -> Any:
        if not isinstance(attachments, list):
            return attachments
        out: list[Any] | None = None
        for i, att in enumerate(attachments):
            name = att.get("filename") if isinstance(att, dict) else None
            if not isinstance(name, str):
                continue
            new = self._sub(name, counts)
            if new is not name:
                if out is None:
                    out = list(attachments)
                out[i] = {**att, "filename": new}
        return attachments if out is None else out

    def _walk(self, value: Any, counts: Counts, depth: int) -> Any:
        """*value* (parsed JSON) with every string inside it redacted; copies only what changed."""
        if isinstance(value, str):
            return self._sub(value, counts)
        if isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                return self._deep(value, counts)
            return self._container(value, counts, depth)
        if type(value) is int and self._cards and value >= 10**12 and is_card_number(str(value)):
            counts["card"] = counts.get("card", 0) + 1
            return "[card]"
        return value

    def _container(self, value: Any, counts: Counts, depth: int) -> Any:
        """A dict, list or tuple walked item by item; strings are handled inline (the
        common leaf), everything else through :meth:`_walk`."""
        items = value.items() if isinstance(value, dict) else enumerate(value)
        out: Any = None
        sub = self._sub
        for key, item in items:
            if type(item) is str:
                new = sub(item, counts)
            elif item is None or type(item) is bool or type(item) is float:
                continue
            else:
                new = self._walk(item, counts, depth + 1)
            if new is not item:
                if out is None:
                    out = dict(value) if isinstance(value, dict) else list(value)
                out[key] = new
        return value if out is None else out

    def _deep(self, value: Any, counts: Counts) -> Any:
        """A subtree nested deeper than :data:`MAX_DEPTH`, redacted as its JSON text.

        Markers and the built-in patterns never contain a quote or a backslash,
        so the text still parses; when a user pattern broke it, the whole
        subtree becomes one marker rather than leak.
        """
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            counts[CUSTOM_LABEL] = counts.get(CUSTOM_LABEL, 0) + 1
            return f"[{CUSTOM_LABEL}]"
        new = self._sub(text, counts)
        if new is text:
            return value
        try:
            return json.loads(new)
        except (ValueError, RecursionError):
            counts[CUSTOM_LABEL] = counts.get(CUSTOM_LABEL, 0) + 1
            return f"[{CUSTOM_LABEL}]"
