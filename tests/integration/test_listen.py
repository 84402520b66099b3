"""`esa-enricher listen` for real: a child process receives syslog over UDP, TCP (newline and octet-counted
framing) and TLS, publishes to the real Kafka, and the real enricher turns the lines into sessions in the
real Elasticsearch.

The inputs are the seed's three examples (tests/golden/seed-*) and the demo sample, rewritten as the syslog
an appliance pushes (`<22>Mmm dd hh:mm:ss HOST mail_logs: Info: …`, RFC 5424 for the demo over TLS), each from
its own appliance host and over its own transport.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enricher.core.parsing.parser import Parser
from enricher.edges.sources.syslog_framing import to_syslog
from tests.integration.harness import GOLDEN, PY, REPO, SEEDS, Stack, by_id, clean_env, parse_metrics, wait_until

pytestmark = pytest.mark.integration

DEMO = REPO / "samples" / "demo-mail_logs.log"
DEMO_HOST = "esa1.corp.example"
# case → (transport, framing, style) it is sent with
ROUTES = {
    "seed-connection-lost": ("udp", "lf", "rfc3164"),
    "seed-inbound-timeout": ("tcp", "lf", "rfc3164"),
    "seed-sender-quit": ("tcp", "octet", "rfc3164"),
    "demo": ("tls", "octet", "rfc5424"),
}
_LISTENING = re.compile(r"listening (.*?) topic=\S+; metrics and health on http://[0-9.]+:(\d+)/metrics")


def listen_module() -> str:
    """`python -m enricher listen` once cli.py wires it; the module's own entry point until then."""
    from enricher.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return "enricher" if "listen" in sub.choices else "enricher.edges.sources.syslog"  # type: ignore[attr-defined]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key (cryptography when installed, else the openssl CLI)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.fail("neither the cryptography package nor the openssl CLI: cannot make a test certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return cert, key
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(k, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


def as_syslog(path: Path, host: str, style: str, out: Path) -> list[str]:
    """The records of a native log file as the appliance `host` would push them; written to `out`, returned."""
    lines, offset = [], None
    for ev in Parser().parse_lines(path.read_text().splitlines()):
        if ev.raw.find("Time offset from UTC: ") >= 0:
            offset = int(ev.raw.split("Time offset from UTC: ")[1].split()[0])
        lines.append(to_syslog(ev.raw, host, style, "mail_logs", offset))
    out.write_text("\n".join(lines) + "\n")
    return lines


class Listener:
    """The listener as a child process, on free ports, with its log."""

    def __init__(self, stack: Stack, cert: Path, key: Path) -> None:
        self.log_path = stack.dir / "listen.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = [PY, "-m", listen_module(), "listen", "-c", str(stack.config_path), "--udp-port", "0", "--tcp-port", "0",
                "--tls-port", "0", "--tls-cert", str(cert), "--tls-key", str(key), "--metrics-port", "0"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=clean_env(), cwd=stack.dir)

        def bound() -> re.Match[str] | None:
            m = _LISTENING.search(self.log())
            if m is None and self.proc.poll() is not None:
                raise AssertionError(f"listen exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return m

        m = wait_until(bound, 60, "listen to bind its ports")
        self.ports = {t: int(hp.rsplit(":", 1)[1]) for t, hp in (x.split("=", 1) for x in m.group(1).split())}
        self.metrics_port = int(m.group(2))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            samples = parse_metrics(r.read().decode())
        return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))

    def healthz(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=10) as r:
            return int(r.status)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


def send(path: Path, port: int, transport: str, framing: str, ca: Path | None = None) -> dict[str, Any]:
    args = [PY, "-m", "enricher.edges.sources.syslog", "send", str(path), "--port", str(port), "--transport", transport,
            "--framing", framing]  # fmt: skip
    if transport == "udp":
        args += ["--rate", "2000"]  # loopback UDP is lossless at this pace; the listener would count any drop
    if ca is not None:
        args += ["--ca", str(ca)]
    p = subprocess.run(args, capture_output=True, text=True, env=clean_env(), timeout=120)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stderr.strip().splitlines()[-1]))


def test_listen_udp_tcp_tls_to_kafka_then_sessions_in_elasticsearch(
    make_stack: Callable[..., Stack], es_client: Any, tmp_path: Path
) -> None:
    stack = make_stack("listen")
    cert, key = self_signed(tmp_path)
    sent: dict[str, list[str]] = {}
    files: dict[str, Path] = {}
    for case, (_transport, _framing, style) in ROUTES.items():
        host = DEMO_HOST if case == "demo" else SEEDS[case][0]
        src = DEMO if case == "demo" else GOLDEN / case / "input.log"
        files[case] = tmp_path / f"{case}.syslog"
        sent[host] = as_syslog(src, host, style, files[case])

    listener = Listener(stack, cert, key)
    try:
        assert listener.healthz() == 200
        for case, (transport, framing, _style) in ROUTES.items():
            stats = send(files[case], listener.ports[transport], transport, framing, ca=cert if transport == "tls" else None)
            host = DEMO_HOST if case == "demo" else SEEDS[case][0]
            assert stats["records"] == len(sent[host])
        total = sum(len(v) for v in sent.values())
        wait_until(lambda: listener.metric("esa_syslog_lines_published_total") >= total, 60, "every line published")
        for transport in ("udp", "tcp", "tls"):
            want = sum(len(sent[DEMO_HOST if c == "demo" else SEEDS[c][0]]) for c, r in ROUTES.items() if r[0] == transport)
            assert listener.metric("esa_syslog_lines_received_total", transport=transport) == want
        assert listener.metric("esa_syslog_lines_dropped_total") == 0
        assert listener.metric("esa_syslog_lines_truncated_total") == 0
    finally:
        rc = listener.stop()
    assert rc == 0, listener.log()[-3000:]
    summary = json.loads(listener.log().strip().splitlines()[-1])
    assert summary["published"] == total and summary["dropped"] == {}

    # Every line arrived once, unchanged, keyed by its appliance, in order within the appliance's partition.
    records = stack.read_topic(stack.topic)
    got: dict[str, list[str]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for r in records:
        got[r.key.decode()].append(r.value.decode())
        partitions[r.key.decode()].add(r.partition)
    assert dict(got) == sent
    assert all(len(p) == 1 for p in partitions.values())

    # The enricher turns them into sessions with the right abort fields.
    p = stack.start(exit_when_idle=8)
    assert p.wait(180) == 0, p.log()[-3000:]
    docs = list(stack.es_docs(es_client).values())
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        by_host[d["observer"]["hostname"]].append(d)
    for case, (host, reason, layer) in SEEDS.items():
        assert [(d.get("abort_reason"), d.get("abort_layer")) for d in by_host[host]] == [(reason, layer)], case
        assert by_host[host][0]["esa"]["session"]["state"] == "complete"
    expected = by_id(stack.replay(DEMO, DEMO_HOST))  # the same sample read from the native file
    want = Counter((d.get("abort_reason"), d.get("abort_layer"), d["esa"]["session"]["state"]) for d in expected.values())
    assert Counter((d.get("abort_reason"), d.get("abort_layer"), d["esa"]["session"]["state"]) for d in by_host[DEMO_HOST]) == want
    # RFC 5424 carries the zone: the demo's sessions have the same times, hence the same ids, as the native replay.
    assert {d["event"]["id"] for d in by_host[DEMO_HOST]} == set(expected)


def test_listen_stops_cleanly_and_refuses_bad_flags(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack("listenflags", setup=False)
    mod = listen_module()
    p = subprocess.run(
        [PY, "-m", mod, "listen", "-c", str(stack.config_path), "--tls-port", "0"],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert p.returncode == 3 and "listen.tls_cert" in p.stderr and "--tls-cert" in p.stderr
    # SIGTERM with nothing received: exit 0 at once, empty summary.
    log = stack.dir / "idle.log"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [PY, "-m", mod, "listen", "-c", str(stack.config_path), "--udp-port", "0", "--tcp-port", "0", "--metrics-port", "0"],
            stdout=f, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip
        try:
            wait_until(lambda: "listening" in log.read_text(), 60, "listen to start")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            assert time.monotonic() - t0 < 15
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert json.loads(log.read_text().strip().splitlines()[-1])["published"] == 0
