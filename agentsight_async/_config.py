"""Settings: one pydantic-settings class, ``AGENTSIGHT_*`` variables and ``.env``.

Constructor arguments win over the environment, which wins over ``.env``, which
wins over the defaults.  Invalid values raise one :class:`ConfigurationError`
whose message names the variable (``AGENTSIGHT_FLUSH_INTERVAL: ...``); the API
key never appears in it.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ._exceptions import ConfigurationError, InvalidApiKeyException
from ._privacy import compile_pattern, parse_kinds

DEFAULT_ENDPOINT = "https://api.agentsight.io"
API_KEY_RE = re.compile(r"^ags_[a-f0-9]{32}_[a-f0-9]{6}$", re.IGNORECASE)
_ENV_PREFIX = "AGENTSIGHT_"

#: The exporter registry: which exporter class serves each AgentSight HTTP protocol
#: (``AGENTSIGHT_PROTOCOL``, for ``http(s)://`` endpoints) and each local endpoint
#: scheme, as ``"module:Class"``.  Protocol validation and ``create_exporter`` both
#: read it, and only the chosen module is ever imported: a new exporter is one module
#: plus one line here.
HTTP_PROTOCOLS: Final[dict[str, str]] = {
    "ingest": "agentsight_async._exporters._ingest:IngestExporter",
    "rest": "agentsight_async._exporters._rest:RestExporter",
    "otlp": "agentsight_async._exporters._otlp:OtlpExporter",
}
LOCAL_SCHEMES: Final[dict[str, str]] = {
    "memory": "agentsight_async._exporters._memory:MemoryExporter",
    "sqlite": "agentsight_async._exporters._sqlite:SqliteExporter",
}
#: The automatic-capture registry: target -> the integration module that installs it
#: (``install()``/``uninstall()``), imported only when that target is instrumented.
INSTRUMENT_TARGETS: Final[dict[str, str]] = {
    "openai": "agentsight_async.integrations._openai",
    "anthropic": "agentsight_async.integrations._anthropic",
    "langchain": "agentsight_async.integrations._langchain",
    "llama_index": "agentsight_async.integrations._llama_index",
}
#: Other spellings of the targets (``AGENTSIGHT_INSTRUMENT=llamaindex``).
TARGET_ALIASES: Final[dict[str, str]] = {"llamaindex": "llama_index", "llama-index": "llama_index"}


def instrument_targets(value: str | None) -> tuple[str, ...]:
    """The targets an ``AGENTSIGHT_INSTRUMENT`` value names, in registry order.

    ``all`` is every target, ``none`` (or nothing) none; otherwise a comma list.
    Raises ``ValueError`` for an unknown name.
    """
    names = {n.strip().lower() for n in (value or "").split(",") if n.strip()}
    if not names or names == {"none"}:
        return ()
    if names == {"all"}:
        return tuple(INSTRUMENT_TARGETS)
    resolved = {TARGET_ALIASES.get(n, n) for n in names}
    unknown = sorted(resolved - set(INSTRUMENT_TARGETS))
    if unknown:
        valid = ", ".join(["all", "none", *INSTRUMENT_TARGETS])
        raise ValueError(f"unknown target {unknown[0]!r}; expected {valid} or a comma list")
    return tuple(t for t in INSTRUMENT_TARGETS if t in resolved)


#: A key of :data:`HTTP_PROTOCOLS` (checked when settings are built).
Protocol = str
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
#: The OTLP/HTTP body encodings (``AGENTSIGHT_OTLP_ENCODING``).
OtlpEncoding = Literal["protobuf", "json"]
#: What ``service.name`` is when neither setting nor ``OTEL_SERVICE_NAME`` names one
#: (the OpenTelemetry Python SDK's default).
DEFAULT_SERVICE_NAME: Final = "unknown_service"


def parse_otel_pairs(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_RESOURCE_ATTRIBUTES``) as a dict.

    Keys and values are trimmed and percent-decoded, as the OpenTelemetry
    specification has it; empty entries are skipped.

    Raises:
        ValueError: an entry without ``=`` or with an empty key.  The message
            never repeats the text: header values are credentials.
    """
    pairs: dict[str, str] = {}
    for i, entry in enumerate(text.split(",")):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = unquote(key.strip())
        if not sep or not key:
            raise ValueError(f"entry {i + 1} is not key=value (expected k1=v1,k2=v2)")
        pairs[key] = unquote(value.strip())
    return pairs


def _has_module(name: str) -> bool:
    """Whether *name* can be imported, without importing it (only its parent packages)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _otel_service_name() -> str:
    return os.environ.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME


def is_valid_api_key(key: str) -> bool:
    """Return whether *key* has the ``ags_<32 hex>_<6 hex>`` form (any case)."""
    return bool(API_KEY_RE.match(key))


def endpoint_scheme(endpoint: str) -> str:
    """The exporter family an endpoint selects: ``http``, ``sqlite`` or ``memory``."""
    scheme = urlsplit(endpoint).scheme.lower()
    return "http" if scheme in ("http", "https") else scheme


def is_loopback_url(endpoint: str) -> bool:
    """True for ``http(s)://`` URLs whose host is localhost or a loopback address."""
    host = (urlsplit(endpoint).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Everything the SDK can be configured with.

    Every field can be set as a constructor argument or as ``AGENTSIGHT_<NAME>``
    (``AGENTSIGHT_FLUSH_INTERVAL=0.5``).  Use :func:`load_settings` rather than
    the constructor to get a :class:`ConfigurationError` instead of pydantic's
    ``ValidationError``.
    """

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        frozen=True,
    )

    # --- the seed's names ----------------------------------------------------
    api_key: SecretStr | None = Field(
        default=None, description="Api-Key credential: ags_ + 32 hex + _ + 6 hex."
    )
    api_endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        description="https://... (AgentSight), sqlite:///path (local store) or memory://",
    )
    log_level: LogLevel | None = Field(
        default=None,
        description="Level set on the 'agentsight_async' logger; None leaves it alone.",
    )
    environment: str | None = Field(
        default=None,
        description="Environment slug for conversations that do not name one.",
    )
    conversation_id: str | None = Field(
        default=None, description="Default conversation for code that never sets one."
    )
    app_url: str = Field(
        default="https://app.agentsight.io",
        description="The AgentSight web app, as the original SDK's settings named it (no "
        "request is made to it).",
    )

    # --- transport -------------------------------------------------------------
    protocol: Protocol = Field(
        default="ingest",
        description="Wire format for http(s) endpoints: " + ", ".join(HTTP_PROTOCOLS),
    )
    enabled: bool = Field(
        default=True,
        description="false turns every call into a quiet no-op: nothing is queued or sent.",
    )
    request_timeout: float = Field(
        default=15.0, gt=0, le=600, description="Seconds one HTTP request may take."
    )
    verify_tls: bool = Field(
        default=True, description="Verify the server's TLS certificate (turn off only for tests)."
    )
    max_concurrency: int = Field(
        default=8, ge=1, le=256, description="Requests in flight at once (REST chains, batches)."
    )

    # --- delivery knobs -------------------------------------------------------
    flush_interval: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds between background flushes (widened while AgentSight throttles).",
    )
    batch_size: int = Field(
        default=500, ge=1, le=100_000, description="Most events in one request."
    )
    batch_bytes: int = Field(
        default=1 << 20,
        ge=1024,
        le=64 << 20,
        description="Most JSON bytes in one request; a larger single event goes alone.",
    )
    max_queue_events: int = Field(
        default=100_000,
        ge=1,
        description="Most events queued or in flight; beyond it new events are dropped "
        "(queue_full).",
    )
    max_queue_bytes: int = Field(
        default=64 << 20,
        ge=1024,
        description="Most memory (estimated) that queued events may take; beyond it new "
        "events are dropped (queue_full).",
    )
    backpressure_timeout: float = Field(
        default=0.0, ge=0, le=600, description="How long `await track_*` may wait for room."
    )
    retry_budget: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="Seconds from a batch's first attempt after which no new attempt starts.",
    )
    retry_after_cap: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Longest Retry-After honoured, in seconds; a longer one is cut to this.",
    )
    shutdown_timeout: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="Seconds close() and the interpreter's exit give the flush.",
    )
    max_attachment_bytes: int = Field(
        default=20 << 20,
        ge=1,
        description="Most decoded bytes of the files of one call (they travel in one request).",
    )
    max_message_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Longest message, action response or error text, in characters.",
    )
    spool_dir: str | None = Field(
        default=None,
        description="A directory for the durable spool: queued events survive a crash and are "
        "delivered by the next process that uses it.",
    )

    # --- automatic capture (off by default: see docs/integrations) --------------
    instrument: str | None = Field(
        default=None,
        description="Capture on first use of a tracker: all, none, or a comma list of "
        + ", ".join(INSTRUMENT_TARGETS),
    )
    token_handler_type: Literal["llamaindex", "langchain"] | None = Field(
        default=None,
        description="The original SDK's token handler: llamaindex feeds LlamaIndex model "
        "usage into get_token_usage() (and langchain, which the original ignored, LangChain's).",
    )

    # --- privacy and control (docs/privacy.md) --------------------------------------
    redact: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Built-in redaction kinds: email, phone, card, iban, ip, secret, or all "
        "(a comma-separated string or a list); empty: no built-in redaction.",
    )
    redact_patterns: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Your own regular expressions to redact: one pattern, or a JSON list of "
        "them. A match becomes [redacted], or [name] for a pattern with a (?P<name>...) group.",
    )
    sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of conversations kept (0..1), decided from the conversation id "
        "alone, so every process of a fleet keeps the same ones.",
    )
    sample_keep_errors: bool = Field(
        default=False,
        description="Also keep a sampled-out conversation from its first error (an action "
        "with error_msg) or negative feedback on; the events before it stay dropped.",
    )

    # --- otlp (AGENTSIGHT_PROTOCOL=otlp; see docs/otlp.md) ---------------------------
    otlp_headers: SecretStr | None = Field(
        default=None,
        description="Headers for every OTLP request, k1=v1,k2=v2 (values percent-decoded); "
        "secret: never logged.",
    )
    otlp_encoding: OtlpEncoding = Field(
        default="protobuf", description="OTLP/HTTP body: protobuf (default) or json."
    )
    otlp_capture_content: bool = Field(
        default=False,
        description="Send message text, files, tool arguments/results, error text and "
        "metadata in OTLP attributes (opt-in, as the GenAI conventions require).",
    )
    service_name: str = Field(
        default_factory=_otel_service_name,
        min_length=1,
        description="OTLP resource service.name; defaults to OTEL_SERVICE_NAME, as in OTel.",
    )
    otlp_agent_name: str | None = Field(
        default=None, description="gen_ai.agent.name of turn spans (invoke_agent {name})."
    )

    @field_validator("api_key", mode="before")
    @classmethod
    def _check_key(cls, value: Any) -> Any:
        if value is None:
            return None
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        raw = raw.strip()
        if not raw:
            return None
        if not is_valid_api_key(raw):
            raise ValueError(
                "the key is malformed; expected 'ags_' followed by 32 hex characters, "
                "'_' and 6 hex characters"
            )
        return raw

    @field_validator("api_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            if not parts.hostname:
                raise ValueError(f"{value!r} has no host")
            return value.rstrip("/")
        if scheme == "sqlite":
            if not value.startswith("sqlite:///") or len(value) <= len("sqlite:///"):
                raise ValueError(f"{value!r}: expected sqlite:///relative/path or sqlite:////abs")
            return value
        if scheme == "memory":
            return value
        raise ValueError(f"{value!r}: expected an http(s)://, sqlite:/// or memory:// URL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper() or None
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _check_protocol(cls, value: Any) -> Any:
        name = value.strip().lower() if isinstance(value, str) else value
        if not isinstance(name, str) or name not in HTTP_PROTOCOLS:
            valid = ", ".join(repr(p) for p in HTTP_PROTOCOLS)
            raise ValueError(f"must be one of {valid}; got {value!r}")
        if name == "otlp" and not _has_module("opentelemetry.proto"):
            raise ValueError(
                "'otlp' needs the OpenTelemetry protocol messages: "
                "pip install 'agentsight-async[otlp]'"
            )
        return name

    @field_validator("instrument", mode="before")
    @classmethod
    def _check_instrument(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string: all, none, or a comma list of targets")
        instrument_targets(value)
        return value.strip().lower() or None

    @field_validator("token_handler_type", mode="before")
    @classmethod
    def _lower_handler(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower() or None
        return value

    @field_validator("otlp_headers", mode="before")
    @classmethod
    def _check_otlp_headers(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        if not isinstance(raw, str):
            raise ValueError("must be a string of k1=v1,k2=v2 pairs")
        parse_otel_pairs(raw)
        return raw

    @field_validator("otlp_encoding", mode="before")
    @classmethod
    def _lower_encoding(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "environment", "conversation_id", "spool_dir", "otlp_agent_name", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redact", mode="before")
    @classmethod
    def _check_redact(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str) and value.strip().startswith("["):
            value = _json_list(value)
        if not isinstance(value, (str, list, tuple, set, frozenset)):
            raise ValueError("must be a comma-separated string or a list of kinds")
        return parse_kinds(value)

    @field_validator("redact_patterns", mode="before")
    @classmethod
    def _check_patterns(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            value = _json_list(value) if _looks_like_json_list(value) else [value]
        if not isinstance(value, (list, tuple)):
            raise ValueError("must be a pattern or a list of patterns")
        patterns = []
        for i, item in enumerate(value):
            raw = item.pattern if isinstance(item, re.Pattern) else item
            if not isinstance(raw, str):
                raise ValueError(f"pattern {i}: must be a string, got {type(raw).__name__}")
            try:
                compile_pattern(raw)
            except ValueError as exc:
                raise ValueError(f"pattern {i}: {exc}") from None
            patterns.append(raw)
        return tuple(patterns)

    @model_validator(mode="after")
    def _check_caps(self) -> Settings:
        if self.batch_bytes > self.max_queue_bytes:
            raise ValueError("batch_bytes must not exceed max_queue_bytes")
        return self

    # --- derived -----------------------------------------------------------------
    @property
    def scheme(self) -> str:
        """The exporter family the endpoint selects: ``http``, ``sqlite`` or ``memory``."""
        return endpoint_scheme(self.api_endpoint)

    @property
    def is_local(self) -> bool:
        """True when events stay on this machine (sqlite:/// or memory://)."""
        return self.scheme in ("sqlite", "memory")

    @property
    def needs_api_key(self) -> bool:
        """True when the endpoint is a remote AgentSight, which refuses requests without a key.

        Local endpoints need none: ``sqlite:///``, ``memory://``, and an
        ``http://`` collector on this machine (``agentsight-async serve --dev``).
        Neither does ``otlp``: an OpenTelemetry Collector takes its credentials
        from ``AGENTSIGHT_OTLP_HEADERS``, and the AgentSight key is never sent to it.
        """
        return (
            self.scheme == "http"
            and self.protocol != "otlp"
            and not is_loopback_url(self.api_endpoint)
        )

    @property
    def otlp_header_pairs(self) -> dict[str, str]:
        """``AGENTSIGHT_OTLP_HEADERS`` as a dict (values are secrets: never log them)."""
        if self.otlp_headers is None:
            return {}
        return parse_otel_pairs(self.otlp_headers.get_secret_value())

    @property
    def tracking_disabled_reason(self) -> str | None:
        """Why nothing would be delivered, or None when tracking works."""
        if not self.enabled:
            return "AGENTSIGHT_ENABLED is false"
        if self.api_key is None and self.needs_api_key:
            return (
                f"AGENTSIGHT_API_KEY is not set, and {self.api_endpoint} needs one "
                "(a local endpoint - sqlite:///, memory:// or a collector on this machine - "
                "does not)"
            )
        return None


def _looks_like_json_list(text: str) -> bool:
    """``'["a", "b"]'`` rather than one pattern that starts with a character class."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, list)


def _json_list(text: str) -> list[Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValueError("looks like a JSON list but does not parse") from None
    if not isinstance(parsed, list):
        raise ValueError("must be a JSON list")
    return parsed


def _variable_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "settings"
    return _ENV_PREFIX + str(loc[0]).upper()


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning validation errors into ConfigurationError.

    ``None`` overrides are ignored so that ``Tracker(api_key=None)`` means "use
    the environment", like the original SDK.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = []
        bad_key = False
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(err.get("loc", ()))
            bad_key = bad_key or loc[:1] == ("api_key",)
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            problems.append(f"{_variable_name(loc)}: {msg}")
        error = InvalidApiKeyException if bad_key else ConfigurationError
        raise error("; ".join(problems)) from None
