"""The secured services of the tests that claim security, started for them only (both at once: the start is most
of their cost).

- Elasticsearch: es.sh's secure profile. x-pack security on: TLS on HTTP with a certificate from a CA the test
  makes, a bootstrap superuser in the file realm (PBKDF2 hash written here), then, through the security API, a role,
  a native user and an API key limited to the test's index prefix.
- Kafka: kafka.sh's secure profile. The client listener is SASL_SSL (certificate from the same CA, SCRAM-SHA-512
  user written into the metadata log when the storage is formatted).
Each has its own ports, state directory (under the test's temporary directory) and a small heap.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.harness import REPO
from tests.tls_ca import TestCA

ES_SH = REPO / "services" / "elasticsearch" / "es.sh"
KAFKA_SH = REPO / "services" / "kafka" / "kafka.sh"
KAFKA_USER = "esa-enricher"
ADMIN = "esa_admin"
PREFIX = "esa-secure"  # what the role allows: PREFIX-* indices and the PREFIX alias


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port() -> int:
    """A port p with p, p+1 (Kafka's controller) and p+2 (its inter-broker listener) free on loopback."""
    for _ in range(50):
        base = free_port()
        if base + 2 < 65536 and _free(base + 1) and _free(base + 2):
            return base
    raise RuntimeError("no three consecutive free ports")


def pbkdf2_hash(password: str) -> str:
    """Elasticsearch's `{PBKDF2}` password hash (PBKDF2-HMAC-SHA512, 10,000 rounds, 32-byte salt and key)."""
    salt = secrets.token_bytes(32)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 10_000, 32)
    return f"{{PBKDF2}}10000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


@dataclass
class SecureNode:
    """A running secured node and the credentials made on it (the secrets are test-made, random)."""

    url: str
    ca: TestCA
    env: dict[str, str]
    admin_password: str
    user: str = "esa_writer"
    user_password: str = ""
    api_key: str = ""  # the `encoded` form (what elasticsearch.api_key takes)
    api_key_secret: str = ""  # its secret part alone (must never show in a log)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A request as the bootstrap superuser (stdlib client: independent of the code under test)."""
        token = base64.b64encode(f"{ADMIN}:{self.admin_password}".encode()).decode()
        req = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        with urllib.request.urlopen(req, context=ctx, timeout=60) as resp:  # noqa: S310 - the test's own node
            return json.loads(resp.read() or b"null")

    def es_sh(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run es.sh with this node's profile and ports."""
        return subprocess.run([str(ES_SH), command], capture_output=True, text=True, timeout=900, env=self.env)


def start_es(directory: Path, ca: TestCA) -> SecureNode:
    """Make the certificate and bootstrap user, start the node, create the role, user and API key."""
    cert, key = ca.issue("node")
    secure_dir = directory / "secure"
    secure_dir.mkdir()
    for src, name in ((ca.ca_file, "ca.pem"), (cert, "node.pem"), (key, "node.key")):
        (secure_dir / name).write_bytes(src.read_bytes())
    admin_password = secrets.token_urlsafe(18)
    (secure_dir / "users").write_text(f"{ADMIN}:{pbkdf2_hash(admin_password)}\n")
    (secure_dir / "users_roles").write_text(f"superuser:{ADMIN}\n")
    (secure_dir / "health.curlrc").write_text(f'user = "{ADMIN}:{admin_password}"\n')
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESA_ES_")},
        "ESA_ES_PROFILE": "secure",
        "ESA_ES_SECURE_DIR": str(secure_dir),
        "ESA_ES_PORT": str(port),
        "ESA_ES_TRANSPORT_PORT": str(free_port()),
        "ESA_ES_HEAP": "-Xms256m -Xmx512m",
        "ESA_SERVICES_STATE": str(directory / "state"),
    }
    node = SecureNode(f"https://127.0.0.1:{port}", ca, env, admin_password)
    up = node.es_sh("up")
    if up.returncode != 0:
        raise RuntimeError(f"the secured Elasticsearch node did not start (es.sh up → {up.returncode}):\n{up.stderr[-4000:]}")
    role = {"cluster": ["monitor", "manage_index_templates"], "indices": [{"names": [f"{PREFIX}-*", PREFIX], "privileges": ["all"]}]}
    node.call("PUT", "/_security/role/esa_writer", role)
    node.user_password = secrets.token_urlsafe(18)
    node.call("PUT", f"/_security/user/{node.user}", {"password": node.user_password, "roles": ["esa_writer"]})
    key = node.call("POST", "/_security/api_key", {"name": "esa-enricher-test", "role_descriptors": {"esa_writer": role}})
    node.api_key, node.api_key_secret = key["encoded"], key["api_key"]
    return node


@dataclass
class SecureBroker:
    """A running TLS + SASL/SCRAM broker and its user's (random) password."""

    bootstrap: str
    ca: TestCA
    password: str
    env: dict[str, str]

    def kafka_sh(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run kafka.sh with this broker's profile and ports."""
        return subprocess.run([str(KAFKA_SH), command], capture_output=True, text=True, timeout=300, env=self.env)


def start_kafka(directory: Path, ca: TestCA) -> SecureBroker:
    """Make the certificate and SCRAM user, start the broker."""
    cert, key = ca.issue("broker")
    secure_dir = directory / "secure-kafka"
    secure_dir.mkdir()
    (secure_dir / "server.pem").write_bytes(key.read_bytes() + cert.read_bytes())
    password = secrets.token_urlsafe(18)
    (secure_dir / "scram-users").write_text(f"SCRAM-SHA-512=[name={KAFKA_USER},password={password}]\n")
    port = free_base_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ESA_KAFKA_")},
        "ESA_KAFKA_PROFILE": "secure", "ESA_KAFKA_SECURE_DIR": str(secure_dir), "ESA_KAFKA_PORT": str(port),
        "ESA_KAFKA_HEAP": "256m", "ESA_SERVICES_STATE": str(directory / "state"),
    }  # fmt: skip
    broker = SecureBroker(f"127.0.0.1:{port}", ca, password, env)
    up = broker.kafka_sh("up")
    if up.returncode != 0:
        raise RuntimeError(f"the TLS + SASL Kafka broker did not start (kafka.sh up → {up.returncode}):\n{up.stderr[-4000:]}")
    return broker


def start_both(directory: Path) -> tuple[SecureNode, SecureBroker]:
    """Both services, started at the same time, with one CA; raises RuntimeError (stopping what did start)."""
    from concurrent.futures import ThreadPoolExecutor

    ca = TestCA.create(directory / "tls")
    with ThreadPoolExecutor(2) as pool:
        es, kafka = pool.submit(start_es, directory, ca), pool.submit(start_kafka, directory, ca)
        errors = [f.exception() for f in (es, kafka) if f.exception() is not None]
    if errors:
        for f, stop in ((es, lambda n: n.es_sh("down")), (kafka, lambda b: b.kafka_sh("down"))):
            if f.exception() is None:
                stop(f.result())
        raise RuntimeError("\n".join(str(e) for e in errors))
    return es.result(), kafka.result()
