"""The tests that claim security, against secured services started for this module only (both at once).

Elasticsearch (es.sh's secure profile, x-pack security): the sink, `setup` and the Kibana import client's TLS, with an
API key and a native user made through the security API. Kafka (kafka.sh's secure profile): `setup`, `produce`, `run`
and `listen` over TLS + SASL/SCRAM-SHA-512. Right CA and credentials → documents indexed, lines published; a wrong
CA, key or password → a clear error of each command (no retry loop, no traceback); secrets never in a log line or a
message. See tests/integration/secure_services.py.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enricher.assets.kibana_import import KibanaImportError, import_bundle
from enricher.config import ElasticsearchSettings, KibanaSettings, load
from enricher.edges.kafka.options import client_options
from enricher.edges.sinks.elasticsearch import ElasticsearchAccessError, ElasticsearchSink, make_client
from tests.integration import secure_services as secure
from tests.integration.harness import PY, REPO, Stack, clean_env, wait_until
from tests.integration.secure_services import KAFKA_USER as USER
from tests.integration.secure_services import SecureBroker
from tests.tls_ca import TestCA, fingerprint

pytestmark = pytest.mark.integration

DEMO = REPO / "samples" / "demo-mail_logs.log"
_LISTENING = re.compile(r"listening (.*?) topic=\S+; metrics and health")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[secure.SecureNode, SecureBroker]]:
    try:
        node, kafka = secure.start_both(tmp_path_factory.mktemp("secure"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield node, kafka
    node.es_sh("down")
    kafka.kafka_sh("down")


@pytest.fixture(scope="module")
def node(services: tuple[secure.SecureNode, SecureBroker]) -> secure.SecureNode:
    return services[0]


@pytest.fixture(scope="module")
def broker(services: tuple[secure.SecureNode, SecureBroker]) -> SecureBroker:
    return services[1]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("replay") / "demo.ndjson"
    subprocess.run([PY, "-m", "enricher", "replay", "--no-progress", "-o", str(out), str(DEMO)],
                   check=True, capture_output=True, env=clean_env(), timeout=300)  # fmt: skip
    return [json.loads(line) for line in out.read_text().splitlines()]


def _secrets(node: secure.SecureNode) -> list[str]:
    return [node.admin_password, node.user_password, node.api_key, node.api_key_secret]


def _setup(node: secure.SecureNode, tmp_path: Path, **es: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(ESA_ES_URL=node.url, ESA__ELASTICSEARCH__INDEX_PREFIX=secure.PREFIX, **es)
    return subprocess.run([PY, "-m", "enricher", "setup", "--skip-kafka"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip


def _write(settings: ElasticsearchSettings, docs: list[dict[str, Any]]) -> None:
    sink = ElasticsearchSink(make_client(settings), secure.PREFIX, lambda d, e, s: pytest.fail(f"dead letter: {e}"))
    for d in docs:
        sink.add(d)
    sink.flush()


def _count(node: secure.SecureNode) -> int:
    node.call("POST", f"/{secure.PREFIX}/_refresh")
    return int(node.call("GET", f"/{secure.PREFIX}/_count")["count"])


def test_setup_and_sink_with_the_right_ca_and_credentials(
    node: secure.SecureNode, docs: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ca = str(node.ca.ca_file)
    p = _setup(node, tmp_path, ESA_ES_API_KEY=node.api_key, ESA__ELASTICSEARCH__CA_CERTS=ca)
    assert p.returncode == 0, p.stderr
    assert f"index template {secure.PREFIX}" in p.stderr
    half = len(docs) // 2
    _write(ElasticsearchSettings(url=node.url, ca_certs=ca, api_key=node.api_key), docs[:half])
    # basic auth as the native user made through the security API, the certificate pinned instead of a CA
    pin = fingerprint(node.ca.directory / "node.pem")
    _write(ElasticsearchSettings(url=node.url, ssl_assert_fingerprint=pin, username=node.user, password=node.user_password), docs[half:])
    assert _count(node) == len({d["event"]["id"] for d in docs})
    for secret in _secrets(node):
        assert secret not in p.stdout + p.stderr + caplog.text


def test_wrong_ca_or_credentials_are_clear_errors_without_secrets(
    node: secure.SecureNode, docs: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    ca = str(node.ca.ca_file)
    wrong_key = node.api_key[:-6] + ("AAAAAA" if not node.api_key.endswith("AAAAAA") else "BBBBBB")
    cases = [
        (ElasticsearchSettings(url=node.url, ca_certs=str(other.ca_file), api_key=node.api_key),
         "TLS certificate is not accepted", {"ESA__ELASTICSEARCH__CA_CERTS": str(other.ca_file), "ESA_ES_API_KEY": node.api_key}),
        (ElasticsearchSettings(url=node.url, ca_certs=ca, api_key=wrong_key),
         "refused the credentials (HTTP 401", {"ESA__ELASTICSEARCH__CA_CERTS": ca, "ESA_ES_API_KEY": wrong_key}),
        (ElasticsearchSettings(url=node.url, ca_certs=ca, username=node.user, password="not-" + node.user_password),
         "refused the credentials (HTTP 401",
         {"ESA__ELASTICSEARCH__CA_CERTS": ca, "ESA_ES_USERNAME": node.user, "ESA_ES_PASSWORD": "not-" + node.user_password}),
    ]  # fmt: skip
    for settings, message, env in cases:
        with pytest.raises(ElasticsearchAccessError, match=message.replace("(", r"\(")) as exc:
            _write(settings, docs[:3])
        p = _setup(node, tmp_path, **env)
        assert p.returncode != 0 and message in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        shown = str(exc.value) + p.stdout + p.stderr + caplog.text
        for secret in [*_secrets(node), wrong_key, "not-" + node.user_password]:
            assert secret not in shown


def test_kibana_import_client_tls_against_the_secured_node(node: secure.SecureNode, tmp_path: Path) -> None:
    """The node is not Kibana: a handshake that passes ends in Elasticsearch's HTTP answer, one that fails says TLS."""
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    pin = fingerprint(node.ca.directory / "node.pem")
    for ok in (KibanaSettings(url=node.url, ca_certs=str(node.ca.ca_file), username="nobody", password="x"),
               KibanaSettings(url=node.url, ssl_assert_fingerprint=pin, username="nobody", password="x")):  # fmt: skip
        with pytest.raises(KibanaImportError, match=r"refused user 'nobody' \(HTTP 401\)"):
            import_bundle(ok)
    with pytest.raises(KibanaImportError, match="TLS certificate at .* is not trusted"):
        import_bundle(KibanaSettings(url=node.url, ca_certs=str(other.ca_file)))
    with pytest.raises(KibanaImportError, match="fingerprint .* nothing was sent"):
        import_bundle(KibanaSettings(url=node.url, ssl_assert_fingerprint="00" * 32))


# -- Kafka over TLS + SASL/SCRAM ------------------------------------------------------------------------------------


def _stack(broker: SecureBroker, es_url: str, tmp_path: Path, name: str, **kafka: Any) -> Stack:
    security = {"security_protocol": "SASL_SSL", "ssl_cafile": str(broker.ca.ca_file), "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": USER, "sasl_password": broker.password, **kafka}  # fmt: skip
    return Stack.create(name, broker.bootstrap, es_url, tmp_path, 2, {"kafka": security})


def _cli(stack: Stack, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "enricher", *args], capture_output=True, text=True, env=clean_env(), cwd=stack.dir,
                          timeout=timeout)  # fmt: skip


def _start_listen(stack: Stack) -> tuple[subprocess.Popen[bytes], Path]:
    log = stack.dir / "listen.log"
    args = [PY, "-m", "enricher", "listen", "-c", str(stack.config_path), "--udp-port", "0", "--no-tcp", "--metrics-port", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=stack.dir)
    return proc, log


def test_setup_produce_run_and_listen_with_the_right_credentials(
    broker: SecureBroker, es_url: str, es_client: Any, tmp_path: Path
) -> None:
    stack = _stack(broker, es_url, tmp_path, "sasl-ok")
    try:
        p = _cli(stack, "setup", "-c", str(stack.config_path), "--partitions", "2")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stderr.strip().splitlines()[-1])["kafka_topics_created"] == [stack.topic, stack.state_topic, stack.dlq]
        p = _cli(stack, "produce", "-c", str(stack.config_path), str(DEMO), "--appliance", "esa1.corp.example")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stderr.strip().splitlines()[-1])["records"] == len(DEMO.read_bytes().splitlines())
        expected = {d["event"]["id"] for d in stack.replay(DEMO, "esa1.corp.example")}
        assert stack.start(exit_when_idle=2).wait(180) == 0
        es_client.indices.refresh(index=stack.prefix)
        assert set(stack.es_docs(es_client)) == expected

        proc, log = _start_listen(stack)
        try:
            m = wait_until(lambda: _LISTENING.search(log.read_text(errors="replace")) or proc.poll(), 60, "listen binds")
            assert proc.poll() is None, log.read_text()
            udp = int(dict(x.split("=", 1) for x in m.group(1).split())["udp"].rsplit(":", 1)[1])
            line = "<22>Dec  3 10:00:00 esa9.example mail_logs: Info: New SMTP ICID 777 interface Data 1 (192.0.2.1) address 198.51.100.7 reverse dns host unknown verified no"  # noqa: E501
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(line.encode(), ("127.0.0.1", udp))
            assert b"New SMTP ICID 777" in wait_until(lambda: _read_value_with(stack, b"ICID 777"), 60, "the line on the topic")
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        stack.stop_all()
        es_client.options(ignore_status=404).indices.delete(index=f"{stack.prefix}-*", expand_wildcards="all")


def _read_value_with(stack: Stack, needle: bytes) -> bytes | None:
    from kafka import KafkaConsumer

    cfg = load(str(stack.config_path))
    consumer = KafkaConsumer(stack.topic, **client_options(cfg.kafka), auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return next((r.value for r in consumer if needle in r.value), None)
    finally:
        consumer.close()


def test_a_wrong_password_or_ca_is_a_clear_error_of_every_command(
    broker: SecureBroker, es_url: str, tmp_path: Path
) -> None:
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    wrong = "not-" + broker.password
    for kafka, message in (({"sasl_password": wrong}, "refused the SASL credentials"),
                           ({"ssl_cafile": str(other.ca_file)}, "refused the TLS settings")):  # fmt: skip
        directory = tmp_path / message.split()[-1]
        directory.mkdir()
        stack = _stack(broker, es_url, directory, "sasl-bad", **kafka)
        cfg = str(stack.config_path)
        commands = {
            "setup": ("setup", "-c", cfg, "--skip-elasticsearch"),
            "produce": ("produce", "-c", cfg, str(DEMO)),
            "run": ("run", "-c", cfg, "--exit-when-idle", "2"),
            "listen": ("listen", "-c", cfg, "--udp-port", "0", "--no-tcp", "--metrics-port", "0"),
        }
        procs = {name: subprocess.Popen([PY, "-m", "enricher", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=clean_env(), cwd=stack.dir) for name, args in commands.items()}  # fmt: skip
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode != 0 and message in err, f"{name}: {err[-2000:]}"
            assert "Traceback" not in err
            assert broker.password not in err + out and wrong not in err + out
