"""`kafka.client`: the librdkafka adapter gets the same connection settings as kafka-python, under its names."""

from __future__ import annotations

import logging

import pytest

from enricher.config import KafkaSettings, load
from enricher.edges.kafka import make_consumer
from enricher.edges.kafka.confluent import ConfluentConsumer
from enricher.edges.kafka.options import client_options, confluent_options
from enricher.errors import ConfigError


def test_plaintext_maps_servers_and_client_id_only() -> None:
    k = KafkaSettings(bootstrap_servers=" a:9092, b:9093 ,", client_id="esa-x")
    assert confluent_options(k) == {"bootstrap.servers": "a:9092,b:9093", "client.id": "esa-x", "security.protocol": "PLAINTEXT"}
    assert client_options(k)["bootstrap_servers"] == ["a:9092", "b:9093"]


def test_tls_and_sasl_map_to_librdkafka_names() -> None:
    k = KafkaSettings(
        security_protocol="SASL_SSL",
        ssl_cafile="/etc/ca.pem",
        ssl_certfile="/etc/client.pem",
        ssl_keyfile="/etc/client.key",
        ssl_password="key-pass",
        ssl_check_hostname=False,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="enricher",
        sasl_password="sasl-pass",
    )
    got = confluent_options(k)
    assert got == {
        "bootstrap.servers": "127.0.0.1:9092",
        "client.id": "esa-enricher",
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "key-pass",
        "ssl.endpoint.identification.algorithm": "none",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "enricher",
        "sasl.password": "sasl-pass",
    }
    # The same settings, as kafka-python takes them: one source of truth for both clients.
    kp = client_options(k)
    assert (kp["ssl_cafile"], kp["ssl_password"], kp["sasl_plain_password"]) == ("/etc/ca.pem", "key-pass", "sasl-pass")


def test_hostname_check_is_on_by_default_and_plain_ssl_has_no_sasl() -> None:
    got = confluent_options(KafkaSettings(security_protocol="SSL"))
    assert got["ssl.endpoint.identification.algorithm"] == "https"
    assert not any(key.startswith("sasl.") for key in got)
    assert "ssl.ca.location" not in got  # unset: librdkafka's default CA store, as kafka-python's


def test_sasl_without_credentials_names_the_key() -> None:
    with pytest.raises(ConfigError, match="kafka.sasl_mechanism"):
        confluent_options(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u"))


def test_client_key_is_validated() -> None:
    assert load(None).kafka.client == "kafka-python"
    assert load(None, {"kafka.client": "confluent"}).kafka.client == "confluent"
    with pytest.raises(ConfigError, match="kafka.client"):
        load(None, {"kafka.client": "librdkafka"})


def test_librdkafka_accepts_the_settings_and_never_logs_the_secrets(caplog: pytest.LogCaptureFixture) -> None:
    # A real librdkafka consumer (nothing listens on port 9: it only fails to connect).
    k = KafkaSettings(
        client="confluent",
        bootstrap_servers="127.0.0.1:9",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="enricher",
        sasl_password="do-not-log-me",
    )
    caplog.set_level(logging.DEBUG)
    consumer = make_consumer(k, 10_000)
    assert isinstance(consumer, ConfluentConsumer)
    try:
        assert consumer.poll(timeout_ms=300, max_records=10) == {}
        assert consumer.assignment() == set()
    finally:
        consumer.close()
    assert "do-not-log-me" not in caplog.text
    assert "do-not-log-me" not in repr(k) and "do-not-log-me" not in str(k.model_dump())
