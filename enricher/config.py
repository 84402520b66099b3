"""Configuration, declared once: typed, validated, unknown keys rejected, every field described.

Files are TOML. A bad value fails at start with its dotted key path (`sessions.grace_seconds: …`).
docs/configuration.md is generated from these models (`esa-enricher config-reference`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from enricher.core.classify.verdict import ClassifyConfig
from enricher.core.parsing.timestamps import parse_iso, parse_zone
from enricher.core.sessions.stitcher import StitchConfig
from enricher.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSettings(_Section):
    """Event time: zones and year inference."""

    default_timezone: str = Field(
        "UTC", description="Zone of stamps without one (RFC 3164, native files without header)."
    )
    timezones: dict[str, str] = Field(
        default_factory=dict, description='Zone per appliance host, e.g. {"esa1.example.net" = "Asia/Tokyo"}.'
    )
    reference_time: str | None = Field(
        None,
        description="ISO time that year-less stamps are inferred against (default: now). Pin it for reproducible replays.",
    )

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        parse_zone(v, "time.default_timezone")
        return v

    @field_validator("timezones")
    @classmethod
    def _zones(cls, v: dict[str, str]) -> dict[str, str]:
        for host, zone in v.items():
            parse_zone(zone, f"time.timezones.{host}")
        return v

    @field_validator("reference_time")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None and parse_iso(v) is None:
            raise ValueError(f"not an ISO-8601 time: {v!r}")
        return v


class SessionSettings(_Section):
    """Windowing of the stitcher (seconds of event time)."""

    grace_seconds: float = Field(5.0, ge=0, description="Wait after `Message finished` / `ICID close` for late lines.")
    idle_timeout_seconds: float = Field(
        3600.0, gt=0, description="Write a session as `expired` after this long without a line; revived if more come."
    )
    max_open_sessions: int = Field(
        200_000, ge=1, description="Cap on open sessions; beyond it the oldest is `evicted`."
    )
    max_dormant_sessions: int = Field(20_000, ge=0, description="Expired sessions kept to be updated in place.")
    dormant_horizon_seconds: float = Field(7 * 86400.0, ge=0, description="How long an expired session can be revived.")
    closed_retention_seconds: float | None = Field(
        None,
        ge=0,
        description="How long a written session is kept (event time, from when it was written) so that a late line "
        "merges into it, same id; unset: the idle timeout.",
    )
    max_closed_sessions: int = Field(
        10_000, ge=0, description="Cap on written sessions kept for late lines (memory bound; oldest forgotten first)."
    )
    max_closed_digests: int = Field(
        100_000,
        ge=0,
        description="Forgotten sessions remembered by key only: a late line for one is written as `late`, its own id.",
    )
    quiet_seconds: float = Field(
        60.0, gt=0, description="Processing-time fallback: advance a quiet appliance's clock after this long."
    )
    keep_raw: bool = Field(True, description="Keep each session's raw lines in its document (`esa.raw`).")


class ClassifySettings(_Section):
    """Abort classification settings (docs/abort-taxonomy.md)."""

    inbound_timeout_seconds: float = Field(
        300.0, gt=0, description="Listener timeout for unsuccessful inbound connections (AsyncOS default 300 s)."
    )
    inbound_timeout_tolerance_seconds: float = Field(5.0, ge=0, description="How close to the timeout counts as it.")
    inbound_timeouts: dict[str, float] = Field(
        default_factory=dict, description="Overrides per appliance (`esa1`) or appliance/listener (`esa1/Data 1`)."
    )
    lost_window_seconds: float = Field(
        5.0, ge=0, description="`ICID lost` within this many seconds of the abort (before or after) means transport."
    )


def _read_secret_file(path: str | None, key: str) -> SecretStr | None:
    if path is None:
        return None
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(key, f"cannot read secret file {path}: {exc.strerror}") from None


class KafkaSettings(_Section):
    """The Kafka source, state and dead-letter topics, and how to connect (TLS, SASL)."""

    client: Literal["kafka-python", "confluent"] = Field(
        "kafka-python",
        description="Consumer client of `run`: kafka-python (pure Python) or confluent (librdkafka, about 20 µs less per record).",
    )
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list (env ESA_KAFKA_BOOTSTRAP).")
    topic: str = Field("esa-mail-logs", description="Raw lines: key = appliance host, value = the raw record.")
    group_id: str = Field("esa-enricher", description="Consumer group: more consumers share the partitions.")
    state_topic: str = Field("esa-mail-logs-state", description="Compacted topic of state checkpoints.")
    dead_letter_topic: str = Field(
        "esa-mail-logs-dlq", description="Documents a sink refused (or too large for the sessions topic), with error and offsets."
    )
    sessions_topic: str = Field(
        "esa-sessions",
        description="Session documents when `service.outputs` has `kafka`: key = event.id, value = the document "
        "(compacted; docs/sessions-topic.md).",
    )
    sessions_max_bytes: int = Field(
        1_000_000,
        ge=1024,
        le=100 << 20,
        description="Largest document written to the sessions topic (bytes of JSON); larger ones are dead letters.",
    )
    client_id: str = Field("esa-enricher", description="Client id sent to the brokers.")
    auto_offset_reset: Literal["earliest", "latest"] = Field("earliest", description="Where a new group starts.")
    max_poll_records: int = Field(5000, ge=1, description="Records per poll.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport security."
    )
    ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client key (mutual TLS).")
    ssl_password: SecretStr | None = Field(None, description="Password of the client key (env ESA_KAFKA_SSL_PASSWORD).")
    ssl_check_hostname: bool = Field(True, description="Verify the broker host name against its certificate.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(None, description="SASL mechanism.")
    sasl_username: str | None = Field(None, description="SASL user (env ESA_KAFKA_SASL_USERNAME).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (env ESA_KAFKA_SASL_PASSWORD).")
    sasl_password_file: str | None = Field(None, description="File holding the SASL password (instead of the value).")

    @model_validator(mode="after")
    def _secret_files(self) -> KafkaSettings:
        if self.sasl_password is None and self.sasl_password_file is not None:
            object.__setattr__(self, "sasl_password", _read_secret_file(self.sasl_password_file, "kafka.sasl_password_file"))
        return self


class _HttpClientSettings(_Section):
    """How to reach and authenticate to an Elastic HTTP endpoint (TLS, API key or basic auth); one model for both."""

    _section: ClassVar[str]  # the key of the section, in error messages

    api_key: SecretStr | None = Field(None, description="API key (its base64 `encoded` form).")
    username: str | None = Field(None, description="Basic auth user.")
    password: SecretStr | None = Field(None, description="Basic auth password.")
    password_file: str | None = Field(None, description="File holding the password.")
    ca_certs: str | None = Field(None, description="CA bundle (PEM) to verify the server's certificate.")
    verify_certs: bool = Field(True, description="Verify the server's certificate (false: no verification at all).")
    ssl_assert_fingerprint: str | None = Field(
        None, description="Pin the server certificate's SHA-256 fingerprint (hex, colons allowed) instead of a CA."
    )
    request_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one request.")

    @model_validator(mode="after")
    def _secret_files(self) -> _HttpClientSettings:
        if self.password is None and self.password_file is not None:
            key = f"{self._section}.password_file"
            object.__setattr__(self, "password", _read_secret_file(self.password_file, key))
        return self


class ElasticsearchSettings(_HttpClientSettings):
    """The Elasticsearch sink and how to connect (TLS, API key or basic auth)."""

    _section: ClassVar[str] = "elasticsearch"

    url: str = Field("http://127.0.0.1:9200", description="Comma-separated node URLs (env ESA_ES_URL).")
    index_prefix: str = Field("esa-sessions", description="Indices are <prefix>-YYYY.MM; the alias <prefix> reads them all.")
    bulk_max_docs: int = Field(2000, ge=1, description="Documents per bulk request.")
    bulk_max_bytes: int = Field(8 << 20, ge=1024, description="Bytes per bulk request.")
    flush_interval_seconds: float = Field(
        2.0, gt=0, description="Write queued documents at least this often (and at once when the consumer has caught up)."
    )
    max_backoff_seconds: float = Field(30.0, gt=0, description="Cap of the retry backoff on 429/5xx/unavailable.")


class KibanaSettings(_HttpClientSettings):
    """Kibana, where `setup` imports the saved objects (same TLS and auth settings as Elasticsearch)."""

    _section: ClassVar[str] = "kibana"

    url: str | None = Field(None, description="Kibana URL; when set (or `setup --kibana URL`), `setup` imports the saved objects.")
    space: str | None = Field(None, description="Space to import into (default: the default space).")
    request_timeout_seconds: float = Field(60.0, gt=0, description="Timeout of one request.")


class ServiceSettings(_Section):
    """The long-running service."""

    outputs: list[Literal["elasticsearch", "kafka"]] = Field(
        default_factory=lambda: ["elasticsearch"],
        min_length=1,
        description="Where `run` writes the session documents: Elasticsearch, the Kafka sessions topic "
        "(`kafka.sessions_topic`), or both.",
    )
    checkpoint_interval_seconds: float = Field(
        5.0, gt=0, description="How often state is checkpointed and offsets committed (bounds the replay after a crash)."
    )
    on_processing_error: Literal["dead_letter", "stop"] = Field(
        "dead_letter",
        description="A record whose processing raises: `dead_letter` writes it to `kafka.dead_letter_topic` (with the "
        "error and its topic/partition/offset, counted in esa_processing_errors) and goes on; `stop` stops `run` "
        "(exit 1) without committing past the previous checkpoint, so a restart reads the record again.",
    )
    shutdown_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM/SIGINT `run` flushes and checkpoints for at most this long, then exits without "
        "committing what is not written (the last checkpoint covers it); a second signal exits at once.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address of /metrics and /healthz (loopback unless told).")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Port of /metrics and /healthz (0 = any free port).")
    gc_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="`run` and `replay`: Python's cyclic garbage collection runs this often instead of automatically "
        "(it cost 6-12 % of the CPU; see enricher/accel/gcpace.py); 0 = Python's automatic collection.",
    )

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"an output is named twice: {v}")
        return v


class Config(_Section):
    """The whole configuration."""

    appliance: str = Field("esa", min_length=1, description="Appliance name of lines whose envelope has no host.")
    time: TimeSettings = Field(default_factory=TimeSettings)  # type: ignore[arg-type]
    sessions: SessionSettings = Field(default_factory=SessionSettings)  # type: ignore[arg-type]
    classify: ClassifySettings = Field(default_factory=ClassifySettings)  # type: ignore[arg-type]
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)  # type: ignore[arg-type]
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)  # type: ignore[arg-type]
    kibana: KibanaSettings = Field(default_factory=KibanaSettings)  # type: ignore[arg-type]
    service: ServiceSettings = Field(default_factory=ServiceSettings)  # type: ignore[arg-type]

    def stitch_config(self) -> StitchConfig:
        """The stitcher's settings."""
        return StitchConfig(**self.sessions.model_dump())

    def classify_config(self) -> ClassifyConfig:
        """The classifier's settings."""
        return ClassifyConfig(**self.classify.model_dump())


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def validate(data: dict[str, Any]) -> Config:
    """Build a Config from a dict; the first error names its key path."""
    try:
        return Config.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, ConfigError):
            raise ctx_err from None
        raise ConfigError(_key_path(err["loc"]), msg) from None


# Friendly environment variables; any key can also be set as ESA__SECTION__KEY (double underscores).
ENV_ALIASES = {
    "ESA_KAFKA_BOOTSTRAP": "kafka.bootstrap_servers",
    "ESA_KAFKA_SASL_USERNAME": "kafka.sasl_username",
    "ESA_KAFKA_SASL_PASSWORD": "kafka.sasl_password",
    "ESA_KAFKA_SSL_PASSWORD": "kafka.ssl_password",
    "ESA_ES_URL": "elasticsearch.url",
    "ESA_ES_API_KEY": "elasticsearch.api_key",
    "ESA_ES_USERNAME": "elasticsearch.username",
    "ESA_ES_PASSWORD": "elasticsearch.password",
    "ESA_KIBANA_URL": "kibana.url",
    "ESA_KIBANA_API_KEY": "kibana.api_key",
    "ESA_KIBANA_USERNAME": "kibana.username",
    "ESA_KIBANA_PASSWORD": "kibana.password",
}


def env_overrides(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Dotted-key overrides from the environment (values are parsed as TOML scalars when they can be)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name in ENV_ALIASES:
            out[ENV_ALIASES[name]] = value
        elif name.startswith("ESA__"):
            key = ".".join(p.lower() for p in name[5:].split("__") if p)
            try:
                out[key] = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                out[key] = value
    return out


def load(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a TOML file (or defaults), then apply dotted-key overrides (from flags or environment)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("<file>", f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", f"{path}: invalid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return validate(data)


def reference_markdown() -> str:
    """docs/configuration.md, generated from the models (`esa-enricher config-reference`)."""
    out = [
        "# Configuration reference",
        "",
        "Generated by `esa-enricher config-reference` from `enricher/config.py`; do not edit by hand.",
        "",
        "Configuration is a TOML file (`-c FILE`); unknown keys are errors that name the key. Every key can also",
        "be set from the environment as `ESA__SECTION__KEY` (e.g. `ESA__SESSIONS__GRACE_SECONDS=10`), plus the",
        "aliases " + ", ".join(f"`{k}` ({v})" for k, v in ENV_ALIASES.items()) + ".",
        "Secrets are never logged; `*_file` keys read them from files.",
        "",
    ]

    def section(model: type[BaseModel], prefix: str) -> None:
        rows = []
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                continue
            default = f.get_default(call_default_factory=True)
            shown = "—" if default is None else f"`{default!r}`".replace("'", '"')
            rows.append(f"| `{prefix}{name}` | {shown} | {f.description or ''} |")
        if rows:
            title = prefix.rstrip(".") or "top level"
            out.extend([f"## {title}", "", (model.__doc__ or "").strip(), "", "| key | default | meaning |", "|---|---|---|", *rows, ""])
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                section(ann, f"{prefix}{name}.")

    section(Config, "")
    return "\n".join(out)
