"""Settings: the only place that reads the environment.

>>> Settings(MEDGW_ENV="production").is_production
True
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.auth import parse_duration


def _default_data_dir() -> Path:
    """``var/`` of the source checkout this package runs from (``make`` installs it editable),
    else ``~/.local/share/medgw``: never the current directory."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "var"
    return Path.home() / ".local" / "share" / "medgw"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL URL the gateway connects with (the app role, ACCESS.md); "
        "unset starts the embedded server in the data directory.",
    )
    migration_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MEDGW_MIGRATION_URL", "migration_url"),
        description="PostgreSQL URL of the owner role, for migrations; unset = DATABASE_URL.",
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        validation_alias=AliasChoices("MEDGW_DATA_DIR", "data_dir"),
        description="Holds the embedded database and the generated JWT secret; made absolute "
        "(a relative MEDGW_DATA_DIR is taken from where the process starts).",
    )
    jwt_secret_value: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MEDGW_JWT_SECRET", "jwt_secret"),
        repr=False,
    )
    env: Literal["development", "production"] = Field(
        default="development", validation_alias=AliasChoices("MEDGW_ENV", "env")
    )
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("MEDGW_HOST", "host"))
    port: int = Field(default=8000, validation_alias=AliasChoices("MEDGW_PORT", "port"))
    workers: int = Field(default=1, ge=1, validation_alias=AliasChoices("MEDGW_WORKERS", "workers"))

    # Hardening (OWASP GraphQL cheat sheet); defaults suit the bundled schema.
    max_page_size: int = Field(default=100, ge=1, validation_alias="MEDGW_MAX_PAGE_SIZE")
    max_query_depth: int = Field(default=10, ge=2, validation_alias="MEDGW_MAX_QUERY_DEPTH")
    max_aliases: int = Field(default=15, ge=1, validation_alias="MEDGW_MAX_ALIASES")
    max_tokens: int = Field(default=2000, ge=50, validation_alias="MEDGW_MAX_TOKENS")
    # Limits of a document, fragments expanded, and of its response (gateway/limits.py).
    max_fields: int = Field(default=500, ge=10, validation_alias="MEDGW_MAX_FIELDS")
    max_query_cost: int = Field(default=50_000, ge=10, validation_alias="MEDGW_MAX_QUERY_COST")
    assumed_list_size: int = Field(default=10, ge=1, validation_alias="MEDGW_ASSUMED_LIST_SIZE")
    max_response_bytes: int = Field(
        default=10_000_000, ge=1_000, validation_alias="MEDGW_MAX_RESPONSE_BYTES"
    )
    statistics_k: int = Field(
        default=5,
        ge=1,
        validation_alias="MEDGW_STATISTICS_K",
        description="k of the k-suppressed aggregates (ACCESS.md): a statistics cell computed "
        "over 1 to k-1 persons is null with suppressed: true.",
    )
    max_body_bytes: int = Field(default=100_000, ge=1_000, validation_alias="MEDGW_MAX_BODY_BYTES")
    max_batch: int = Field(
        default=0, ge=0, validation_alias="MEDGW_MAX_BATCH", description="0 = no batching"
    )
    statement_timeout_ms: int = Field(
        default=5_000, ge=100, validation_alias="MEDGW_STATEMENT_TIMEOUT_MS"
    )
    pool_size: int = Field(default=10, ge=1, validation_alias="MEDGW_POOL_SIZE")
    connection_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias="MEDGW_CONNECTION_TIMEOUT_S",
        description="Seconds a request waits for a database connection (a free one of the pool "
        "or a new one) before it is answered UNAVAILABLE.",
    )
    retry_after_s: int = Field(
        default=5,
        ge=1,
        validation_alias="MEDGW_RETRY_AFTER_S",
        description="The Retry-After of a 503 UNAVAILABLE answer, seconds.",
    )
    max_token_regions: int = Field(
        default=64,
        ge=1,
        validation_alias="MEDGW_MAX_TOKEN_REGIONS",
        description="At most this many region prefixes in a token (more is 401).",
    )
    max_token_ttl: timedelta = Field(
        default=timedelta(days=30),
        ge=timedelta(minutes=1),
        validation_alias="MEDGW_MAX_TOKEN_TTL",
        description="The longest lifetime `medgw token --ttl` signs, e.g. 30d or 12h.",
    )
    max_json_depth: int = Field(
        default=32,
        ge=4,
        validation_alias="MEDGW_MAX_JSON_DEPTH",
        description="Deepest nesting of arrays and objects in a request's JSON (more is 400).",
    )
    refusal_cache_bytes: int = Field(
        default=4_000_000,
        ge=0,
        validation_alias="MEDGW_REFUSAL_CACHE_BYTES",
        description="Per department: the answers of the access check, by query hash.",
    )
    audit_checkpoints_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("MEDGW_AUDIT_CHECKPOINTS", "audit_checkpoints_path"),
        description="Append-only JSON-lines file of signed audit-chain checkpoints; unset = "
        "<data_dir>/audit_checkpoints.jsonl. Keep it (and the key) off the database server.",
    )
    audit_checkpoint_seconds: float = Field(
        default=300,
        gt=0,
        validation_alias=AliasChoices("MEDGW_AUDIT_CHECKPOINT_SECONDS", "audit_checkpoint_seconds"),
        description="How often the running gateway signs a checkpoint (and once at shutdown).",
    )
    audit_shards: int = Field(
        default=16,
        ge=1,
        le=1024,
        validation_alias=AliasChoices("MEDGW_AUDIT_SHARDS", "audit_shards"),
        description="Shards of the audit hash chain this process appends to (each its own "
        "head and lock): up to this many audit writes proceed at once.",
    )
    audit_key_value: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MEDGW_AUDIT_KEY", "audit_key"),
        repr=False,
        description="HMAC key of the checkpoints; unset = generated in <data_dir>/audit_key.",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        validation_alias=AliasChoices("MEDGW_TIMEZONE", "timezone"),
        description="Where 'today' is (SETTLEMENT.md §3): on: defaults, the current year, "
        "decidedOn and the future-date checks; never the host's local date.",
    )

    # Operations (README "Operations: metrics, logs, CORS").
    metrics: bool = Field(default=True, validation_alias=AliasChoices("MEDGW_METRICS", "metrics"))
    """Serve ``GET /metrics`` (no token, no personal value) and count requests."""
    log_format_value: Literal["json", "text"] | None = Field(
        default=None, validation_alias=AliasChoices("MEDGW_LOG_FORMAT", "log_format")
    )
    """``json`` or ``text`` log lines; unset = json in production, text in development."""
    otel: bool = Field(default=False, validation_alias=AliasChoices("MEDGW_OTEL", "otel"))
    """OpenTelemetry spans of operations and resolvers (the ``[otel]`` extra; no values)."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=AliasChoices("MEDGW_CORS_ORIGINS", "cors_origins")
    )
    """Comma-separated browser origins allowed to call the API; empty = no CORS headers."""
    # Change notifications (resolvers/outbox.py, resolvers/webhooks.py).
    webhooks: bool = Field(
        default=True,
        validation_alias=AliasChoices("MEDGW_WEBHOOKS", "webhooks"),
        description="Run the webhook dispatcher in this process (several processes share the "
        "work; false: this one delivers none).",
    )
    outbox_poll_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias=AliasChoices("MEDGW_OUTBOX_POLL_S", "outbox_poll_s"),
        description="Seconds a dispatcher or subscription waits for a notification before it "
        "looks at the outbox anyway.",
    )
    webhook_max_attempts: int = Field(
        default=8,
        ge=1,
        validation_alias=AliasChoices("MEDGW_WEBHOOK_MAX_ATTEMPTS", "webhook_max_attempts"),
        description="Attempts of one delivery before it goes to the dead letters.",
    )
    webhook_backoff_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias=AliasChoices("MEDGW_WEBHOOK_BACKOFF_S", "webhook_backoff_s"),
        description="The first retry's delay; each further retry waits twice as long.",
    )
    webhook_timeout_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("MEDGW_WEBHOOK_TIMEOUT_S", "webhook_timeout_s"),
        description="How long a receiver may take to answer a delivery.",
    )
    # Change notifications, hardened (resolvers/egress.py, resolvers/webhooks.py, README).
    webhook_allow_private: bool = Field(
        default=False,
        validation_alias=AliasChoices("MEDGW_WEBHOOK_ALLOW_PRIVATE", "webhook_allow_private"),
        description="Let webhooks deliver to loopback and private addresses, over http too "
        "(on-premises receivers, tests); link-local, multicast, reserved, unspecified and cloud "
        "metadata addresses stay refused.",
    )
    webhook_allow_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        validation_alias=AliasChoices("MEDGW_WEBHOOK_ALLOW_NETWORKS", "webhook_allow_networks"),
        description="Comma-separated networks webhooks may deliver to whatever they are, over "
        "http too (e.g. 10.20.0.0/16, fd12::/64).",
    )
    webhook_max_response_bytes: int = Field(
        default=65_536,
        ge=0,
        validation_alias=AliasChoices(
            "MEDGW_WEBHOOK_MAX_RESPONSE_BYTES", "webhook_max_response_bytes"
        ),
        description="At most this much of a receiver's answer is read (the rest is dropped).",
    )
    webhooks_per_org: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("MEDGW_WEBHOOKS_PER_ORG", "webhooks_per_org"),
        description="Webhooks one department's organisation may have registered at once.",
    )
    outbox_retention_days: float = Field(
        default=30,
        gt=0,
        validation_alias=AliasChoices("MEDGW_OUTBOX_RETENTION_DAYS", "outbox_retention_days"),
        description="Outbox events older than this, once no webhook delivery needs them, are "
        "deleted; a change-feed cursor from before them is refused (expired).",
    )
    outbox_prune_s: float = Field(
        default=3600,
        gt=0,
        validation_alias=AliasChoices("MEDGW_OUTBOX_PRUNE_S", "outbox_prune_s"),
        description="How often a webhook dispatcher prunes the outbox.",
    )

    # Performance (README "Performance").
    document_cache_bytes: int = Field(
        default=16_000_000,
        ge=0,
        validation_alias="MEDGW_DOCUMENT_CACHE_BYTES",
        description="Per department: parsed and validated documents, by query hash "
        "(gateway/query_cache.py); 0 = none.",
    )
    read_compiler: bool = Field(
        default=True,
        validation_alias="MEDGW_READ_COMPILER",
        description="Answer the reads the read compiler covers with one SQL statement per root "
        'field (resolvers/compiler.py; README "Read compiler"); off = resolvers only.',
    )
    plan_cache_size: int = Field(
        default=1_000,
        ge=0,
        validation_alias="MEDGW_PLAN_CACHE_SIZE",
        description="Per department: compiled read plans, by document hash and operation name "
        "(gateway/query_cache.py), and as many prepared reads (gateway/read_compiler.py); "
        "0 = none.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("max_token_ttl", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError("expected a number and a unit s, m, h or d (e.g. 30d)") from None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """``"https://a, https://b"`` → ``("https://a", "https://b")``; a trailing ``/`` is
        dropped (browsers send origins without one).

        >>> Settings(MEDGW_CORS_ORIGINS="https://a.cn, https://b.cn/").cors_origins
        ('https://a.cn', 'https://b.cn')
        """
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        return tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """``"10.0.0.0/8, fd00::/8"`` → the networks.

        >>> Settings(MEDGW_WEBHOOK_ALLOW_NETWORKS="10.0.0.0/8, fd00::/8").webhook_allow_networks
        (IPv4Network('10.0.0.0/8'), IPv6Network('fd00::/8'))
        """
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    def today(self) -> date:
        """Today's date in the configured time zone (China by default), whatever the host's.

        >>> Settings().today() == datetime.now(ZoneInfo("Asia/Shanghai")).date()
        True
        """
        return datetime.now(ZoneInfo(self.timezone)).date()

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def log_format(self) -> Literal["json", "text"]:
        """``MEDGW_LOG_FORMAT``, else json in production and text in development.

        >>> Settings(MEDGW_ENV="production").log_format, Settings().log_format
        ('json', 'text')
        """
        if self.log_format_value is not None:
            return self.log_format_value
        return "json" if self.is_production else "text"

    @cached_property
    def jwt_secret(self) -> str:
        """The configured secret, else one generated once and kept in the data directory."""
        return self.jwt_secret_value or self._secret_file("jwt_secret")

    @cached_property
    def audit_key(self) -> bytes:
        """The key that signs audit checkpoints: configured, else generated once and kept in
        the data directory (never in the database)."""
        return (self.audit_key_value or self._secret_file("audit_key")).encode()

    @property
    def audit_checkpoints(self) -> Path:
        """Where the signed checkpoints of the audit chain are appended."""
        return self.audit_checkpoints_path or self.data_dir / "audit_checkpoints.jsonl"

    def _secret_file(self, name: str) -> str:
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()
