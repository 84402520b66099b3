"""Connection options of both Kafka clients (TLS, SASL) and the sessions topic's size options, from `KafkaSettings`.

One place for what kafka-python (`client_options`) and librdkafka (`confluent_options`) are told, so the two
clients connect the same way: the same certificates, the same SASL credentials (secrets unwrapped only here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from enricher.errors import ConfigError

if TYPE_CHECKING:
    from enricher.config import KafkaSettings

# Room for a record's key, headers and batch framing above a session document (kafka.sessions_max_bytes): the
# sessions producer's request limit is the document limit plus this, the topic's limit plus twice this.
FRAMING_BYTES = 32 * 1024


def _servers(k: KafkaSettings) -> list[str]:
    return [s.strip() for s in k.bootstrap_servers.split(",") if s.strip()]


def sasl_credentials(k: KafkaSettings) -> tuple[str, str, str]:
    """(mechanism, user, password) of a SASL protocol; all three are required."""
    if not k.sasl_mechanism or not k.sasl_username or k.sasl_password is None:
        raise ConfigError("kafka.sasl_mechanism", "SASL needs sasl_mechanism, sasl_username and sasl_password")
    return k.sasl_mechanism, k.sasl_username, k.sasl_password.get_secret_value()


def client_options(k: KafkaSettings) -> dict[str, Any]:
    """kafka-python connection options shared by consumers, producers and the admin client."""
    opts: dict[str, Any] = {
        "bootstrap_servers": _servers(k),
        "client_id": k.client_id,
        "security_protocol": k.security_protocol,
    }
    if k.security_protocol in ("SSL", "SASL_SSL"):
        opts.update(
            ssl_cafile=k.ssl_cafile,
            ssl_certfile=k.ssl_certfile,
            ssl_keyfile=k.ssl_keyfile,
            ssl_check_hostname=k.ssl_check_hostname,
        )
        if k.ssl_password is not None:
            opts["ssl_password"] = k.ssl_password.get_secret_value()
    if k.security_protocol.startswith("SASL"):
        mechanism, username, password = sasl_credentials(k)
        opts.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
    return opts


def confluent_options(k: KafkaSettings) -> dict[str, Any]:
    """librdkafka connection properties (the same TLS/SASL settings as `client_options`)."""
    opts: dict[str, Any] = {
        "bootstrap.servers": ",".join(_servers(k)),
        "client.id": k.client_id,
        "security.protocol": k.security_protocol,
    }
    if k.security_protocol in ("SSL", "SASL_SSL"):
        for key, value in (
            ("ssl.ca.location", k.ssl_cafile),
            ("ssl.certificate.location", k.ssl_certfile),
            ("ssl.key.location", k.ssl_keyfile),
        ):
            if value is not None:
                opts[key] = value
        if k.ssl_password is not None:
            opts["ssl.key.password"] = k.ssl_password.get_secret_value()
        opts["ssl.endpoint.identification.algorithm"] = "https" if k.ssl_check_hostname else "none"
    if k.security_protocol.startswith("SASL"):
        mechanism, username, password = sasl_credentials(k)
        opts.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})
    return opts


def sessions_topic_configs(k: KafkaSettings) -> dict[str, str]:
    """Configs of the sessions topic: compacted, and batches as large as the sessions producer may send."""
    return {"cleanup.policy": "compact", "max.message.bytes": str(k.sessions_max_bytes + 2 * FRAMING_BYTES)}
