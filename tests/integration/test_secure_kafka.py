"""`setup`, `produce`, `run` and `listen` against a Kafka listener with TLS and SASL/SCRAM-SHA-512.

The broker is kafka.sh's secure profile, started for this module only, on its own ports and state directory: a
certificate from a CA the test makes, a SCRAM user written into the metadata log when the storage is formatted.
The right credentials carry the demo sample through to Elasticsearch (the lab's plain node) and a syslog line
through `listen` onto the topic; a wrong password or CA is a clear error of each command, never showing a secret.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from enricher.config import load
from enricher.sources.kafka import client_options
from tests.integration.harness import PY, REPO, Stack, clean_env, wait_until
from tests.tls_ca import TestCA

pytestmark = pytest.mark.integration

KAFKA_SH = REPO / "services" / "kafka" / "kafka.sh"
DEMO = REPO / "samples" / "demo-mail_logs.log"
USER = "esa-enricher"
_LISTENING = re.compile(r"listening (.*?) topic=\S+; metrics and health")


def _free_base_port() -> int:
    """A port p with p, p+1 (controller) and p+2 (inter-broker) free on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 2 < 65536 and all(_free(base + i) for i in (1, 2)):
            return base
    raise RuntimeError("no three consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class SecureBroker:
    bootstrap: str
    ca: TestCA
    password: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    d = tmp_path_factory.mktemp("secure-kafka")
    ca = TestCA.create(d / "tls")
    cert, key = ca.issue("broker")
    secure_dir = d / "secure"
    secure_dir.mkdir()
    (secure_dir / "server.pem").write_bytes(key.read_bytes() + cert.read_bytes())
    password = secrets.token_urlsafe(18)
    (secure_dir / "scram-users").write_text(f"SCRAM-SHA-512=[name={USER},password={password}]\n")
    port = _free_base_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESA_KAFKA_")},
        "ESA_KAFKA_PROFILE": "secure", "ESA_KAFKA_SECURE_DIR": str(secure_dir), "ESA_KAFKA_PORT": str(port),
        "ESA_KAFKA_HEAP": "256m", "ESA_SERVICES_STATE": str(d / "state"),
    }  # fmt: skip
    up = subprocess.run([str(KAFKA_SH), "up"], capture_output=True, text=True, env=env, timeout=300)
    if up.returncode != 0:
        pytest.fail(f"the TLS + SASL Kafka broker did not start:\n{up.stderr[-4000:]}", pytrace=False)
    yield SecureBroker(f"127.0.0.1:{port}", ca, password, env)
    subprocess.run([str(KAFKA_SH), "down"], capture_output=True, env=env, timeout=120)


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
        assert stack.start(exit_when_idle=4).wait(180) == 0
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
        for args in (("setup", "-c", cfg, "--skip-elasticsearch"), ("produce", "-c", cfg, str(DEMO)),
                     ("run", "-c", cfg, "--exit-when-idle", "2"),
                     ("listen", "-c", cfg, "--udp-port", "0", "--no-tcp", "--metrics-port", "0")):  # fmt: skip
            p = _cli(stack, *args, timeout=120)
            assert p.returncode != 0 and message in p.stderr, f"{args[0]}: {p.stderr[-2000:]}"
            assert "Traceback" not in p.stderr
            assert broker.password not in p.stderr + p.stdout and wrong not in p.stderr + p.stdout
