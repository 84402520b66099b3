"""The configuration's sections: typed, validated, unknown keys rejected, every field described.

The core's own settings (`StitchConfig`, `ClassifyConfig`) keep their defaults in the core; the sections below read
them from there, so a default is written once. Loading, the environment and the precedence: enricher/config/loading.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from enricher.core.classify.verdict import ClassifyConfig
from enricher.core.parsing.timestamps import parse_iso, parse_zone
from enricher.core.sessions.stitcher import StitchConfig
from enricher.edges.sources.syslog_framing import DEFAULT_MAX_BYTES, SYSLOG_PORT
from enricher.errors import ConfigError

# The core's defaults, read from its own settings classes (written there, once).
_STITCH = StitchConfig()
_CLASSIFY = ClassifyConfig()


def _read_secret_file(path: str, key: str) -> SecretStr:
    try:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(key, f"cannot read secret file {path}: {exc.strerror}") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    _section: ClassVar[str] = ""  # the key of the section, in error messages

    @model_validator(mode="after")
    def _secret_files(self) -> _Section:
        """`<secret>_file` fills the secret `<secret>` from a file (when the secret itself is not set)."""
        fields = type(self).model_fields
        for name in fields:
            secret = name.removesuffix("_file")
            path = getattr(self, name)
            if secret != name and secret in fields and path is not None and getattr(self, secret) is None:
                object.__setattr__(self, secret, _read_secret_file(path, f"{self._section}.{name}"))
        return self


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

    grace_seconds: float = Field(
        _STITCH.grace_seconds, ge=0, description="Wait after `Message finished` / `ICID close` for late lines (the lateness promised); a message with a connection is written twice this long after its `Message finished`, showing the connection lines stamped up to once this long after it.")
    idle_timeout_seconds: float = Field(
        _STITCH.idle_timeout_seconds, gt=0, description="Write a session as `expired` after this long without a line; revived if more come."
    )
    max_open_sessions: int = Field(
        _STITCH.max_open_sessions, ge=1, description="Cap on open sessions; beyond it the oldest is `evicted`."
    )
    max_dormant_sessions: int = Field(
        _STITCH.max_dormant_sessions, ge=0, description="Expired sessions kept to be updated in place.")
    dormant_horizon_seconds: float = Field(
        _STITCH.dormant_horizon_seconds, ge=0, description="How long an expired session can be revived.")
    closed_retention_seconds: float | None = Field(
        _STITCH.closed_retention_seconds,
        ge=0,
        description="How long a written session is kept (event time, from when it was written) so that a late line "
        "merges into it, same id; unset: the idle timeout.",
    )
    max_closed_sessions: int = Field(
        _STITCH.max_closed_sessions, ge=0, description="Cap on written sessions kept for late lines (memory bound; oldest forgotten first)."
    )
    max_closed_digests: int = Field(
        _STITCH.max_closed_digests,
        ge=0,
        description="Forgotten sessions remembered by key only: a late line for one is written as `late`, its own id.",
    )
    quiet_seconds: float = Field(
        _STITCH.quiet_seconds, gt=0, description="Processing-time fallback: advance a quiet appliance's clock after this long."
    )
    keep_raw: bool = Field(
        _STITCH.keep_raw, description="Keep each session's raw lines in its document (`esa.raw`).")


class ClassifySettings(_Section):
    """Abort classification settings (docs/abort-taxonomy.md)."""

    inbound_timeout_seconds: float = Field(
        _CLASSIFY.inbound_timeout_seconds, gt=0, description="Listener timeout for unsuccessful inbound connections (AsyncOS default 300 s)."
    )
    inbound_timeout_tolerance_seconds: float = Field(
        _CLASSIFY.inbound_timeout_tolerance_seconds, ge=0, description="How close to the timeout counts as it.")
    inbound_timeouts: dict[str, float] = Field(
        default_factory=dict, description="Overrides per appliance (`esa1`) or appliance/listener (`esa1/Data 1`)."
    )
    lost_window_seconds: float = Field(
        _CLASSIFY.lost_window_seconds, ge=0, description="`ICID lost` within this many seconds of the abort (before or after) means transport."
    )


class KafkaSettings(_Section):
    """The Kafka source, state and dead-letter topics, and how to connect (TLS, SASL)."""

    _section: ClassVar[str] = "kafka"

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
    topic_partitions: int = Field(4, ge=1, description="`setup`: partitions of the topics it creates.")
    topic_replication_factor: int = Field(1, ge=1, description="`setup`: replication factor of the topics it creates.")
    auto_offset_reset: Literal["earliest", "latest"] = Field("earliest", description="Where a new group starts.")
    max_poll_records: int = Field(5000, ge=1, description="Records per poll.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Transport security."
    )
    ssl_cafile: str | None = Field(None, description="CA bundle to verify the brokers.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client key (mutual TLS).")
    ssl_password: SecretStr | None = Field(None, description="Password of the client key (env ESA_KAFKA_SSL_PASSWORD).")
    ssl_password_file: str | None = Field(None, description="File holding the password of the client key.")
    ssl_check_hostname: bool = Field(True, description="Verify the broker host name against its certificate.")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(None, description="SASL mechanism.")
    sasl_username: str | None = Field(None, description="SASL user (env ESA_KAFKA_SASL_USERNAME).")
    sasl_password: SecretStr | None = Field(None, description="SASL password (env ESA_KAFKA_SASL_PASSWORD).")
    sasl_password_file: str | None = Field(None, description="File holding the SASL password (instead of the value).")


class _HttpClientSettings(_Section):
    """How to reach and authenticate to an Elastic HTTP endpoint (TLS, API key or basic auth); one model for both."""

    api_key: SecretStr | None = Field(None, description="API key (its base64 `encoded` form).")
    api_key_file: str | None = Field(None, description="File holding the API key.")
    username: str | None = Field(None, description="Basic auth user.")
    password: SecretStr | None = Field(None, description="Basic auth password.")
    password_file: str | None = Field(None, description="File holding the password.")
    ca_certs: str | None = Field(None, description="CA bundle (PEM) to verify the server's certificate.")
    verify_certs: bool = Field(True, description="Verify the server's certificate (false: no verification at all).")
    ssl_assert_fingerprint: str | None = Field(
        None, description="Pin the server certificate's SHA-256 fingerprint (hex, colons allowed) instead of a CA."
    )
    request_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one request.")


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


# Below the producer's and the broker's 1 MiB defaults, with room for the key and the framing.
_KAFKA_MAX_LINE = 900_000


class ListenSettings(_Section):
    """`listen`: the syslog receiver (UDP, TCP, TLS) that publishes each message to the raw topic (`kafka.topic`)."""

    _section: ClassVar[str] = "listen"

    bind: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 for all).")
    udp: bool = Field(True, description="Listen on UDP (`listen.udp_port`).")
    udp_port: int = Field(SYSLOG_PORT, ge=0, le=65535, description="UDP port (0 = any free port).")
    tcp: bool = Field(True, description="Listen on plain TCP (`listen.tcp_port`).")
    tcp_port: int = Field(SYSLOG_PORT, ge=0, le=65535, description="TCP port (0 = any free port).")
    tls_port: int | None = Field(
        None, ge=0, le=65535, description="TCP port of syslog over TLS (RFC 5425); off unless set."
    )
    tls_cert: str | None = Field(None, description="Server certificate (PEM, with its chain); needed by TLS.")
    tls_key: str | None = Field(None, description="Server private key (PEM); needed by TLS.")
    tls_client_ca: str | None = Field(
        None, description="Require client certificates issued by this CA (mutual TLS)."
    )
    peers: dict[str, str] = Field(
        default_factory=dict,
        description='Key of host-less messages per sender address, e.g. {"192.0.2.10" = "esa1"} (else `appliance`).',
    )
    appliance_from_peer: bool = Field(False, description="Key host-less messages by the sender's address.")
    max_line_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1, le=_KAFKA_MAX_LINE, description="Longer messages are truncated (kept) and counted."
    )
    max_connections: int = Field(512, ge=1, description="Open TCP/TLS connections; more are closed at once and counted.")
    queue_size: int = Field(
        10_000, ge=1, description="Messages between the network and the producer (back-pressure beyond it)."
    )
    flush_timeout_seconds: float = Field(
        30.0, gt=0, description="On SIGTERM: how long to wait for Kafka to take what was received."
    )
    metrics_host: str | None = Field(None, description="Address of /metrics and /healthz (unset: `service.metrics_host`).")
    metrics_port: int = Field(9465, ge=0, le=65535, description="Port of /metrics and /healthz (0 = any; `run` has 9464).")

    @model_validator(mode="after")
    def _usable(self) -> ListenSettings:
        if self.tls_port is not None and not (self.tls_cert and self.tls_key):
            missing = "listen.tls_cert" if not self.tls_cert else "listen.tls_key"
            raise ConfigError(missing, "listen.tls_port is set: TLS needs a certificate (tls_cert) and its key (tls_key)")
        if not self.udp and not self.tcp and self.tls_port is None:
            raise ConfigError("listen", "nothing to listen on (udp and tcp are off and tls_port is not set)")
        return self


class ServiceSettings(_Section):
    """The long-running service."""

    outputs: list[Literal["elasticsearch", "kafka"]] = Field(
        default_factory=lambda: ["elasticsearch"],  # type: ignore[arg-type]  # a list of the Literal
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
    listen: ListenSettings = Field(default_factory=ListenSettings)  # type: ignore[arg-type]

    def stitch_config(self) -> StitchConfig:
        """The stitcher's settings."""
        return StitchConfig(**self.sessions.model_dump())

    def classify_config(self) -> ClassifyConfig:
        """The classifier's settings."""
        return ClassifyConfig(**self.classify.model_dump())
