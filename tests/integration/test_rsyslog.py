"""pipelines/rsyslog/esa-enricher.conf in a real rsyslogd (omkafka) writing to the real Kafka.

rsyslogd runs in the foreground as a child (`-n -f main.conf -i pidfile`) with its own work directory, on a free
loopback port; main.conf only sets the work directory and includes the shipped file unchanged (the shipped
file reads broker, topic, address and port from the environment). Lines come from `logger` (RFC 3164 over UDP
and TCP, RFC 5424 with octet counting) and from the project's sender (ESA lines with their appliance host).

rsyslog and omkafka are installed by .ci/run (`apt-get install -y rsyslog rsyslog-kafka`); this test installs
nothing and is skipped only when they are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enricher.edges.sources.syslog_framing import KeyExtractor
from tests.integration.harness import PY, REPO, clean_env, wait_until

pytestmark = pytest.mark.integration

CONF = REPO / "pipelines" / "rsyslog" / "esa-enricher.conf"
PARTITIONS = 4


def _rsyslog_with_omkafka(tmp: Path) -> str | None:
    """Why rsyslogd + omkafka cannot run here, or None when they can."""
    if shutil.which("rsyslogd") is None:
        return "rsyslogd not installed (apt-get install -y rsyslog rsyslog-kafka; .ci/run does)"
    if shutil.which("logger") is None:
        return "logger (util-linux / bsdutils) not installed"
    probe = tmp / "probe.conf"
    probe.write_text('module(load="omkafka")\naction(type="omkafka" topic="probe" broker=["127.0.0.1:1"])\n')
    p = subprocess.run(["rsyslogd", "-N1", "-f", str(probe)], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return f"rsyslog's omkafka module is missing (apt-get install -y rsyslog-kafka): {p.stderr.strip()[-300:]}"
    return None


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise AssertionError("no free port")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"it-rsyslog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id=f"{name}-admin")
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        yield name
    finally:
        if os.environ.get("ESA_IT_KEEP") != "1":
            try:
                admin.delete_topics([name])
            except Exception as exc:  # noqa: BLE001 - clean-up is best effort
                print(f"deleting {name} failed: {exc}")
        admin.close()


@contextlib.contextmanager
def _running_rsyslogd(tmp_path: Path, kafka_bootstrap: str, topic: str) -> Iterator[dict[str, Any]]:
    """A real rsyslogd with the shipped configuration, publishing to `topic`."""
    why = _rsyslog_with_omkafka(tmp_path)
    if why:
        pytest.skip(why)
    work = tmp_path / "work"
    work.mkdir()
    main = tmp_path / "main.conf"
    # net.enableDNS off: a header without a host is keyed by the sender's address, not a name the test can't know.
    main.write_text(f'global(workDirectory="{work}" net.enableDNS="off")\ninclude(file="{CONF}")\n')
    port = _free_port()
    env = {
        **clean_env(),
        "ESA_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ESA__KAFKA__TOPIC": topic,
        "ESA_SYSLOG_ADDRESS": "127.0.0.1",
        "ESA_SYSLOG_PORT": str(port),
    }
    check = subprocess.run(["rsyslogd", "-N1", "-f", str(main)], capture_output=True, text=True, env=env, timeout=60)
    assert check.returncode == 0, f"rsyslogd -N1 refuses the configuration:\n{check.stderr}"
    log = tmp_path / "rsyslogd.log"
    pidfile = tmp_path / "rsyslogd.pid"
    with log.open("wb") as f:
        proc = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(main), "-i", str(pidfile)], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_until(lambda: _port_open(port) or (proc.poll() is not None and _raise(log)), 60, "rsyslogd to listen")
        yield {"port": port, "log": log, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def rsyslogd(tmp_path: Path, kafka_bootstrap: str, topic: str) -> Iterator[dict[str, Any]]:
    with _running_rsyslogd(tmp_path, kafka_bootstrap, topic) as rs:
        yield rs


def _raise(log: Path) -> bool:
    raise AssertionError(f"rsyslogd exited:\n{log.read_text(errors='replace')[-3000:]}")


def _logger(port: int, *args: str) -> None:
    p = subprocess.run(["logger", "--server", "127.0.0.1", "--port", str(port), *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr


def _send(port: int, path: Path, transport: str) -> None:
    p = subprocess.run(
        [PY, "-m", "enricher.edges.sources.syslog", "send", str(path), "--port", str(port), "--transport", transport],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def _read(kafka_bootstrap: str, topic: str, want: int) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, client_id=f"{topic}-reader")
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: list[Any] = []

        def enough() -> bool:
            for records in c.poll(timeout_ms=500).values():
                out.extend(records)
            return len(out) >= want

        wait_until(enough, 60, f"{want} records in {topic}", interval=0)
        for records in c.poll(timeout_ms=1000).values():  # nothing more than expected
            out.extend(records)
        return out
    finally:
        c.close()


def test_rsyslog_omkafka_config_publishes_raw_lines_keyed_by_appliance(
    rsyslogd: dict[str, Any], kafka_bootstrap: str, topic: str, tmp_path: Path
) -> None:
    from kafka.partitioner.default import murmur2

    port = rsyslogd["port"]
    token = uuid.uuid4().hex[:8]
    _logger(port, "--udp", "--rfc3164", "-t", "mail_logs", f"Info: logger udp 3164 {token}")
    _logger(port, "--tcp", "--rfc3164", "-t", "mail_logs", f"Info: logger tcp 3164 {token}")
    _logger(port, "--tcp", "--octet-count", "--rfc5424", "-t", "mail_logs", f"Info: logger tcp 5424 octet {token}")
    esa = [
        "<22>Nov 27 09:00:01 esa-rs-a.example mail_logs: Info: New SMTP ICID 5001 interface Data 1 (192.0.2.10) address 198.51.100.23",
        "<22>Nov 27 09:00:02 esa-rs-a.example mail_logs: Info: Message aborted MID 42 Receiving aborted by sender",
        "<22>1 2026-11-27T09:00:03+09:00 esa-rs-b.example mail_logs - - - Info: ICID 5002 close",
        "<166>Mar 17 18:24:37 mail_logs: Info: ICID 5003 close",  # no host: the sender's address
    ]
    lines = tmp_path / "esa.log"
    lines.write_text("\n".join(esa[:3]) + "\n")
    _send(port, lines, "tcp")
    one = tmp_path / "one.log"
    one.write_text(esa[3] + "\n")
    _send(port, one, "udp")

    records = _read(kafka_bootstrap, topic, 3 + len(esa))
    assert len(records) == 3 + len(esa), [r.value for r in records]
    got = {r.value.decode(): r for r in records}

    # The ESA lines: the value is the line as sent, the key its appliance host (the sender's address without one).
    keys = {esa[0]: "esa-rs-a.example", esa[1]: "esa-rs-a.example", esa[2]: "esa-rs-b.example", esa[3]: "127.0.0.1"}
    for line, key in keys.items():
        assert line in got, f"missing from Kafka: {line}"
        assert got[line].key.decode() == key

    # logger's lines: whatever logger wrote as the header, the key is its host, as the project's parser reads it.
    host = socket.gethostname()
    logger_records = [r for v, r in got.items() if token in v]
    assert len(logger_records) == 3
    kinds = set()
    for r in logger_records:
        v = r.value.decode()
        assert r.key.decode() in (host, host.split(".")[0])
        assert r.key.decode() == KeyExtractor("none").key(v)
        kinds.add(("5424" if v.split(">", 1)[1].startswith("1 ") else "3164", v.rsplit(" ", 1)[0].split("Info: ", 1)[1]))
    assert kinds == {("3164", "logger udp 3164"), ("3164", "logger tcp 3164"), ("5424", "logger tcp 5424 octet")}

    # Java-compatible partitioning: the partition kafka-python (and so `esa-enricher listen`) picks for the key.
    for r in records:
        assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % PARTITIONS, r.key

    # A clean stop flushes and exits 0.
    proc = rsyslogd["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, rsyslogd["log"].read_text(errors="replace")[-2000:]


def test_rsyslog_to_sessions_in_elasticsearch(make_stack: Any, es_client: Any, kafka_bootstrap: str, tmp_path: Path) -> None:
    """The seed's three sessions sent through rsyslog (omkafka) come out of the enricher with their abort fields."""
    stack = make_stack("rsyslog-e2e")
    seeds = {
        "esa-rs-1.example": ("seed-connection-lost", "connection_lost", "transport"),
        "esa-rs-2.example": ("seed-inbound-timeout", "inbound_timeout", "timeout"),
        "esa-rs-3.example": ("seed-sender-quit", "sender_quit", "application"),
    }
    with _running_rsyslogd(tmp_path, kafka_bootstrap, stack.topic) as rs:
        for host, (case, _, _) in seeds.items():
            p = subprocess.run(
                [PY, "-m", "enricher.edges.sources.syslog", "send", str(REPO / "tests" / "golden" / case / "input.log"),
                 "--port", str(rs["port"]), "--transport", "tcp", "--hostname", host],
                capture_output=True, text=True, env=clean_env(), timeout=60,
            )  # fmt: skip
            assert p.returncode == 0, p.stderr
        _read(kafka_bootstrap, stack.topic, 5 + 9 + 8)  # the seeds' records (wrapped lines joined)
        rs["proc"].send_signal(signal.SIGTERM)
        assert rs["proc"].wait(30) == 0
    enricher = stack.start(exit_when_idle=8)
    assert enricher.wait(180) == 0, enricher.log()[-3000:]
    docs = list(stack.es_docs(es_client).values())
    got = {d["observer"]["hostname"]: (d.get("abort_reason"), d.get("abort_layer")) for d in docs}
    assert got == {host: (reason, layer) for host, (_, reason, layer) in seeds.items()}
