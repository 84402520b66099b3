"""The listener's own behaviour, in process, with a stand-in producer (Kafka itself is in
tests/integration/test_listen.py): back-pressure (TCP stops reading, UDP drops and counts), truncation,
the connection cap, keys per connection and the graceful stop that publishes what was received."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from enricher.config import ListenSettings
from enricher.edges.sources.syslog import ListenMetrics, SyslogListener
from enricher.edges.sources.syslog_framing import octet_frame


class _Done:
    def add_callback(self, f: Any, *args: Any) -> _Done:
        f(*args, None)
        return self

    def add_errback(self, f: Any, *args: Any) -> _Done:
        return self


class GatedProducer:
    """Accepts records only while its gate is open (a Kafka that stopped accepting blocks `send`)."""

    def __init__(self, open_: bool = True) -> None:
        self.gate = threading.Event()
        if open_:
            self.gate.set()
        self.records: list[tuple[str, bytes, bytes]] = []
        self.flushed = False

    def send(self, topic: str, key: bytes, value: bytes) -> _Done:
        from kafka.errors import KafkaTimeoutError

        if not self.gate.wait(0.2):  # as KafkaProducer.send does after max_block_ms with a full buffer
            raise KafkaTimeoutError("buffer full")
        self.records.append((topic, key, value))
        return _Done()

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True


def value(m: ListenMetrics, name: str, **labels: str) -> float:
    total = 0.0
    for fam in m.registry.collect():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def started(producer: Any, **kw: Any) -> tuple[SyslogListener, ListenMetrics]:
    m = ListenMetrics()
    opts = ListenSettings(udp_port=0, tcp_port=0, **kw)
    lst = SyslogListener(opts, "t", "dflt", producer, m)
    await lst.start()
    return lst, m


def line(i: int, host: str = "esa1") -> bytes:
    return f"<22>Nov 27 09:00:01 {host} mail_logs: Info: ICID {i} close".encode()


def test_tcp_and_udp_messages_are_published_with_keys_and_flushed_on_stop() -> None:
    async def main() -> None:
        prod = GatedProducer()
        lst, m = await started(prod, peers={"127.0.0.1": "from-peer"})
        tcp = lst.bound["tcp"][1]
        udp = lst.bound["udp"][1]

        def client() -> None:
            with socket.create_connection(("127.0.0.1", tcp)) as s:
                s.sendall(line(1) + b"\n" + octet_frame(line(2, "esa2")) + b"<166>Mar 17 18:24:37 mail_logs: Info: ICID 3 close\n")
                s.sendall(b"Thu Aug 14 11:04:31 2014 Info: New SMTP ICID 4 interface Management\n(192.168.0.199) wrapped\n")
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.sendto(line(5, "esa5") + b"\n", ("127.0.0.1", udp))
            u.close()

        await asyncio.to_thread(client)
        deadline = time.monotonic() + 10
        while value(m, "esa_syslog_lines_received_total") < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lst.request_stop()
        await lst.serve()
        assert prod.flushed
        got = sorted((k.decode(), v) for _, k, v in prod.records)
        assert got == sorted(
            [
                ("esa1", line(1)),
                ("esa2", line(2, "esa2")),
                ("from-peer", b"<166>Mar 17 18:24:37 mail_logs: Info: ICID 3 close"),
                ("from-peer", b"Thu Aug 14 11:04:31 2014 Info: New SMTP ICID 4 interface Management"),
                ("from-peer", b"(192.168.0.199) wrapped"),
                ("esa5", line(5, "esa5")),
            ]
        )
        assert value(m, "esa_syslog_lines_received_total", transport="tcp") == 5
        assert value(m, "esa_syslog_lines_received_total", transport="udp") == 1
        assert value(m, "esa_syslog_lines_published_total") == 6
        assert value(m, "esa_syslog_lines_dropped_total") == 0
        assert lst.health() == (False, "stopping")

    asyncio.run(main())


def test_full_queue_stops_tcp_reading_and_drops_udp() -> None:
    async def main() -> None:
        prod = GatedProducer(open_=False)  # Kafka is not accepting anything
        lst, m = await started(prod, queue_size=20)
        tcp = lst.bound["tcp"][1]
        udp = lst.bound["udp"][1]
        n_tcp = 60_000  # ~3.6 MB: several times what the socket buffers hold here (~0.7 MB when stalled)
        sent = {"bytes": 0, "done": False}
        payload = b"".join(line(i) + b"\n" for i in range(n_tcp))

        def tcp_client() -> None:
            with socket.create_connection(("127.0.0.1", tcp)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                view = memoryview(payload)
                while view:
                    k = s.send(view[:65536])
                    sent["bytes"] += k
                    view = view[k:]
                s.shutdown(socket.SHUT_WR)
                s.settimeout(60)
                while s.recv(4096):
                    pass
            sent["done"] = True

        th = threading.Thread(target=tcp_client, daemon=True)
        th.start()
        await asyncio.sleep(1.5)
        received_1 = value(m, "esa_syslog_lines_received_total", transport="tcp")
        bytes_1 = sent["bytes"]
        await asyncio.sleep(1.0)
        # Stalled: the listener holds at most the queue (+ one batch in the producer thread), reads nothing more,
        # and the sender is blocked by TCP flow control.
        assert value(m, "esa_syslog_lines_received_total", transport="tcp") == received_1
        assert received_1 <= 20 + 1000 + 1
        assert sent["bytes"] == bytes_1 < len(payload)
        assert not sent["done"]

        # UDP cannot be paused: datagrams that find the queue full are dropped and counted.
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(30):
            u.sendto(line(i, "esa-udp"), ("127.0.0.1", udp))
        u.close()
        deadline = time.monotonic() + 5
        while value(m, "esa_syslog_lines_received_total", transport="udp") < 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert value(m, "esa_syslog_lines_dropped_total", transport="udp", reason="queue_full") == 30
        assert value(m, "esa_syslog_backpressure_seconds_total", transport="tcp") < 0.5  # the long wait is not over yet

        prod.gate.set()  # Kafka is back: everything read so far and everything still in flight goes through
        deadline = time.monotonic() + 120
        while not sent["done"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert sent["done"]
        lst.request_stop()
        await lst.serve()
        assert value(m, "esa_syslog_lines_received_total", transport="tcp") == n_tcp
        assert [v for _, _, v in prod.records] == [line(i) for i in range(n_tcp)]  # order kept
        assert value(m, "esa_syslog_lines_dropped_total", transport="tcp") == 0
        assert value(m, "esa_syslog_backpressure_seconds_total", transport="tcp") > 2.0

    asyncio.run(main())


def test_truncation_and_connection_cap_are_counted() -> None:
    async def main() -> None:
        prod = GatedProducer()
        lst, m = await started(prod, max_line_bytes=64, max_connections=1)
        tcp = lst.bound["tcp"][1]
        held = socket.create_connection(("127.0.0.1", tcp))
        held.sendall(line(1) + b"\n")
        deadline = time.monotonic() + 5
        while value(m, "esa_syslog_connections_open", transport="tcp") < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

        def second() -> bytes:
            with socket.create_connection(("127.0.0.1", tcp)) as s:
                s.settimeout(5)
                return s.recv(10)  # closed at once by the listener: EOF

        assert await asyncio.to_thread(second) == b""
        assert value(m, "esa_syslog_connections_rejected_total", transport="tcp") == 1
        held.sendall(b"<22>Nov 27 09:00:01 esa1 mail_logs: Info: " + b"x" * 200 + b"\n" + octet_frame(line(2))[:20])
        held.close()
        deadline = time.monotonic() + 5
        while value(m, "esa_syslog_connections_open", transport="tcp") > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lst.request_stop()
        await lst.serve()
        assert [len(v) for _, _, v in prod.records] == [len(line(1)), 64]
        assert value(m, "esa_syslog_lines_truncated_total", transport="tcp") == 1
        assert value(m, "esa_syslog_lines_dropped_total", transport="tcp", reason="incomplete_frame") == 1

    asyncio.run(main())


def test_stop_gives_up_on_a_kafka_that_never_comes_back_and_counts_it() -> None:
    async def main() -> None:
        prod = GatedProducer(open_=False)
        lst, m = await started(prod, flush_timeout_seconds=1.0)

        def client() -> None:
            with socket.create_connection(("127.0.0.1", lst.bound["tcp"][1])) as s:
                s.sendall(b"".join(line(i) + b"\n" for i in range(50)))

        await asyncio.to_thread(client)
        deadline = time.monotonic() + 5
        while value(m, "esa_syslog_lines_received_total") < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        t0 = time.monotonic()
        lst.request_stop()
        await lst.serve()
        assert time.monotonic() - t0 < 5
        assert value(m, "esa_syslog_lines_dropped_total", transport="tcp", reason="shutdown") == 50
        assert value(m, "esa_syslog_lines_published_total") == 0

    asyncio.run(main())


def test_every_listen_metric_is_in_the_telemetry_contract() -> None:
    import re

    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "telemetry.md").read_text()
    documented = set(re.findall(r"`(esa_[a-z_]+)`", doc))
    for fam in ListenMetrics().registry.collect():
        assert fam.name in documented or f"{fam.name}_total" in documented, f"{fam.name} missing from docs/telemetry.md"
