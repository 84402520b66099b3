"""`esa-enricher listen`: a syslog receiver (UDP, TCP, TLS) that publishes each message to the raw Kafka topic.

    appliance ──UDP/TCP/TLS──▶ asyncio (framing, key) ──bounded queue──▶ one producer thread ──▶ Kafka

- Key = the appliance host the envelope names (syslog_framing.KeyExtractor), value = the message as received
  (framing and trailing CR/LF/NUL removed, bytes untouched), the same records `esa-enricher produce` writes.
- Back-pressure, not unbounded buffering: between the network side and the producer sits a queue of
  `--queue-size` messages. When it is full a TCP/TLS connection stops reading (asyncio pauses the socket, the
  kernel's receive window closes and the sender waits); UDP cannot push back, so datagrams that find the queue
  full are dropped and counted (`esa_syslog_lines_dropped_total{reason="queue_full"}`).
- Messages longer than `--max-line-bytes` are truncated (kept) and counted; connections beyond
  `--max-connections` are closed at once and counted.
- SIGTERM/SIGINT: stop accepting, publish what was received, flush the producer, print a JSON summary on stderr.

`python -m enricher.edges.sources.syslog send FILE…` is the matching sender (the lab's replayer, the tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from enricher.edges.sources.syslog_cli import DEFAULT_PORT, register
from enricher.edges.sources.syslog_framing import (
    DEFAULT_MAX_BYTES,
    Frame,
    KeyExtractor,
    StreamFramer,
    datagram_frame,
)

log = logging.getLogger("esa_enricher.listen")

_READ_SIZE = 65536
_BATCH = 1000  # messages handed to the producer thread at once
_KAFKA_MAX_LINE = 900_000  # below the producer's and broker's 1 MiB defaults, with room for key and framing
_SATURATED_UNHEALTHY_S = 30.0


class ListenMetrics:
    """The listener's metrics (docs/telemetry.md); labels are closed lists: transport and reason."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.received = Counter("esa_syslog_lines_received", "Syslog messages received, by transport.", ["transport"], registry=r)
        self.truncated = Counter(
            "esa_syslog_lines_truncated", "Messages longer than --max-line-bytes, truncated and kept.", ["transport"], registry=r
        )
        self.dropped = Counter(
            "esa_syslog_lines_dropped", "Messages not published, by transport and reason.", ["transport", "reason"], registry=r
        )
        self.published = Counter("esa_syslog_lines_published", "Messages acknowledged by Kafka.", registry=r)
        self.queued = Gauge("esa_syslog_queue_lines", "Messages between the network side and the producer.", registry=r)
        self.connections = Gauge("esa_syslog_connections_open", "Open TCP/TLS connections.", ["transport"], registry=r)
        self.rejected = Counter(
            "esa_syslog_connections_rejected", "Connections closed at once: --max-connections reached.", ["transport"], registry=r
        )
        self.backpressure = Counter(
            "esa_syslog_backpressure_seconds", "Time TCP/TLS connections waited (not reading) for room in the queue.", ["transport"], registry=r
        )

    def exposition(self) -> bytes:
        """The text exposition format (what HealthServer serves)."""
        return generate_latest(self.registry)

    def totals(self) -> dict[str, Any]:
        """Counter values for the summary line."""
        out: dict[str, Any] = {"received": {}, "truncated": {}, "dropped": {}, "published": 0}
        for fam in self.registry.collect():
            for s in fam.samples:
                if not s.name.endswith("_total"):
                    continue
                if fam.name == "esa_syslog_lines_received":
                    out["received"][s.labels["transport"]] = int(s.value)
                elif fam.name == "esa_syslog_lines_truncated":
                    out["truncated"][s.labels["transport"]] = int(s.value)
                elif fam.name == "esa_syslog_lines_dropped":
                    out["dropped"][f"{s.labels['transport']}/{s.labels['reason']}"] = int(s.value)
                elif fam.name == "esa_syslog_lines_published":
                    out["published"] = int(s.value)
        return out


@dataclass
class ListenOptions:
    """What `listen` binds and how it bounds itself."""

    topic: str
    appliance: str = "esa"
    bind: str = "127.0.0.1"
    udp_port: int | None = DEFAULT_PORT
    tcp_port: int | None = DEFAULT_PORT
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    peers: dict[str, str] = field(default_factory=dict)
    appliance_from_peer: bool = False
    max_line_bytes: int = DEFAULT_MAX_BYTES
    max_connections: int = 512
    queue_size: int = 10_000
    flush_timeout: float = 30.0


def tls_context(cert: str | None, key: str | None, client_ca: str | None = None) -> ssl.SSLContext:
    """The server side of syslog over TLS (TLS 1.2+); with `client_ca`, senders must show a certificate it issued."""
    if not cert or not key:
        raise ValueError("TLS needs a certificate and its key")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class SyslogListener:
    """The network side (asyncio) and the bounded hand-off to a blocking Kafka producer (one thread)."""

    def __init__(self, opts: ListenOptions, producer: Any, metrics: ListenMetrics) -> None:
        self.opts = opts
        self.producer = producer
        self.metrics = metrics
        self.keys = KeyExtractor(opts.appliance)
        self.bound: dict[str, tuple[str, int]] = {}
        self._queue: asyncio.Queue[tuple[bytes, bytes, str] | None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kafka-send")  # one thread: order is kept
        self._servers: list[asyncio.base_events.Server] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._open = 0
        self._stop = asyncio.Event()
        self._stopping = False
        self._give_up_at = float("inf")  # once stopping: when to stop waiting for an unreachable Kafka
        self._full_since: float | None = None
        # Sent to the producer vs acknowledged or failed (callbacks run in the producer's IO thread, or in ours).
        self._sent = 0
        self._done = 0
        self._done_lock = threading.Lock()

    # -- keys ---------------------------------------------------------------------------------------------
    def _default_for(self, peer: str | None) -> str:
        if peer is not None:
            name = self.opts.peers.get(peer)
            if name:
                return name
            if self.opts.appliance_from_peer:
                return peer
        return self.opts.appliance

    # -- start ----------------------------------------------------------------------------------------------
    async def start(self) -> dict[str, tuple[str, int]]:
        """Bind every configured port; returns transport → (host, port) actually bound."""
        loop = asyncio.get_running_loop()
        o = self.opts
        self._queue = asyncio.Queue(o.queue_size)
        q = self._queue
        self.metrics.queued.set_function(q.qsize)
        if o.udp_port is not None:
            sock = socket.socket(socket.AF_INET6 if ":" in o.bind else socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):  # a deeper kernel buffer absorbs bursts (capped by rmem_max)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((o.bind, o.udp_port))
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp = transport
            self.bound["udp"] = transport.get_extra_info("sockname")[:2]
        if o.tcp_port is not None:
            srv = await asyncio.start_server(lambda r, w: self._handle(r, w, "tcp"), o.bind, o.tcp_port, limit=_READ_SIZE)
            self._servers.append(srv)
            self.bound["tcp"] = srv.sockets[0].getsockname()[:2]
        if o.tls_port is not None:
            srv = await asyncio.start_server(
                lambda r, w: self._handle(r, w, "tls"),
                o.bind,
                o.tls_port,
                ssl=tls_context(o.tls_cert, o.tls_key, o.tls_client_ca),
                ssl_handshake_timeout=30,
                limit=_READ_SIZE,
            )
            self._servers.append(srv)
            self.bound["tls"] = srv.sockets[0].getsockname()[:2]
        self._publisher = asyncio.create_task(self._publish_loop(), name="publisher")
        return self.bound

    # -- the network side -----------------------------------------------------------------------------------
    def datagram(self, data: bytes, peer: str | None) -> None:
        """One UDP datagram: enqueue without waiting, or drop and count (UDP cannot push back)."""
        fr = datagram_frame(data, self.opts.max_line_bytes)
        if fr is None:
            return
        m = self.metrics
        m.received.labels("udp").inc()
        if fr.truncated:
            m.truncated.labels("udp").inc()
        if self._stopping:
            m.dropped.labels("udp", "shutdown").inc()
            return
        key = self.keys.key_of_bytes(fr.data, self._default_for(peer))
        assert self._queue is not None
        try:
            self._queue.put_nowait((key.encode(), fr.data, "udp"))
        except asyncio.QueueFull:
            m.dropped.labels("udp", "queue_full").inc()
            if self._full_since is None:
                self._full_since = time.monotonic()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        m = self.metrics
        if self._open >= self.opts.max_connections or self._stopping:
            m.rejected.labels(transport).inc()
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._open += 1
        m.connections.labels(transport).inc()
        peername = writer.get_extra_info("peername")
        default = self._default_for(peername[0] if peername else None)
        framer = StreamFramer(self.opts.max_line_bytes)
        previous: str | None = None
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                for fr in framer.feed(data):
                    previous = await self._enqueue(fr, transport, default, previous)
            for fr in framer.close():
                previous = await self._enqueue(fr, transport, default, previous)
            if framer.incomplete:
                m.dropped.labels(transport, "incomplete_frame").inc(framer.incomplete)
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("connection from %s ended: %s", peername, exc)
        finally:
            self._open -= 1
            m.connections.labels(transport).dec()
            self._handlers.discard(task)
            writer.close()

    async def _enqueue(self, fr: Frame, transport: str, default: str, previous: str | None) -> str:
        m = self.metrics
        m.received.labels(transport).inc()
        if fr.truncated:
            m.truncated.labels(transport).inc()
        key = self.keys.key_of_bytes(fr.data, default, previous)
        q = self._queue
        assert q is not None
        if q.full():  # wait, not reading: the socket buffer fills and the sender's window closes
            if self._full_since is None:
                self._full_since = time.monotonic()
            t0 = time.monotonic()
            await q.put((key.encode(), fr.data, transport))
            m.backpressure.labels(transport).inc(time.monotonic() - t0)
        else:
            q.put_nowait((key.encode(), fr.data, transport))
        return key

    # -- the Kafka side ---------------------------------------------------------------------------------------
    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        q = self._queue
        assert q is not None
        done = False
        while not done:
            item = await q.get()
            batch = []
            if item is None:
                done = True
            else:
                batch.append(item)
                while len(batch) < _BATCH:
                    try:
                        item = q.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if item is None:
                        done = True
                        break
                    batch.append(item)
            if batch:
                await loop.run_in_executor(self._executor, self._send_batch, batch)
            if not q.full():
                self._full_since = None

    def _send_batch(self, batch: list[tuple[bytes, bytes, str]]) -> None:
        """Producer thread: hand the batch to the producer; while its buffer is full (Kafka away), keep waiting."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        m = self.metrics
        for i, (key, value, transport) in enumerate(batch):
            while True:
                if time.monotonic() > self._give_up_at:  # stopping, and Kafka still does not take anything
                    for _, _, t in batch[i:]:
                        m.dropped.labels(t, "shutdown").inc()
                    return
                try:
                    fut = self.producer.send(self.opts.topic, key=key, value=value)
                except KafkaTimeoutError:  # buffer full for max_block_ms: hold on (back-pressure), do not drop
                    log.warning("Kafka is not accepting records; holding %d queued messages", len(batch) - i)
                    continue
                except KafkaError as exc:
                    log.error("cannot publish a %s message: %s", transport, exc)
                    m.dropped.labels(transport, "kafka_error").inc()
                    break
                self._sent += 1
                fut.add_callback(self._acked)
                fut.add_errback(self._failed, transport)
                break

    def _acked(self, _metadata: Any) -> None:
        with self._done_lock:
            self._done += 1
        self.metrics.published.inc()

    def _failed(self, transport: str, exc: BaseException) -> None:
        with self._done_lock:
            self._done += 1
        self.metrics.dropped.labels(transport, "kafka_error").inc()
        log.error("Kafka refused a %s message after retries: %s", transport, exc)

    # -- stop -------------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask `serve` to return (signal handlers call this)."""
        self._stop.set()

    def health(self) -> tuple[bool, str]:
        """/healthz: 503 when stopping or when the queue has been full for a while (Kafka not keeping up)."""
        if self._stopping:
            return False, "stopping"
        q = self._queue
        depth = f"queue {q.qsize() if q else 0}/{self.opts.queue_size}, connections {self._open}"
        if self._full_since is not None and time.monotonic() - self._full_since > _SATURATED_UNHEALTHY_S:
            return False, f"queue full for more than {_SATURATED_UNHEALTHY_S:.0f} s: Kafka is not keeping up ({depth})"
        return True, f"listening ({depth})"

    async def serve(self) -> None:
        """Run until `request_stop`, then stop gracefully."""
        await self._stop.wait()
        await self.close()

    async def close(self) -> None:
        """Stop accepting, end the connections, publish what was received, flush the producer."""
        self._stopping = True
        self._give_up_at = time.monotonic() + self.opts.flush_timeout
        for srv in self._servers:
            srv.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        assert self._queue is not None
        await self._queue.put(None)
        await self._publisher
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._flush)
        self._executor.shutdown()

    def _flush(self) -> None:
        from kafka.errors import KafkaTimeoutError

        try:
            self.producer.flush(timeout=max(1.0, self._give_up_at - time.monotonic()))
        except KafkaTimeoutError:
            with self._done_lock:
                inflight = self._sent - self._done
            log.error("%d messages were not acknowledged by Kafka within %.0f s", inflight, self.opts.flush_timeout)
            if inflight > 0:
                self.metrics.dropped.labels("all", "shutdown").inc(inflight)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener.datagram(data, addr[0] if addr else None)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP errors: nothing to do for a receiver
        log.debug("UDP error: %s", exc)


# -- `esa-enricher listen` ------------------------------------------------------------------------------------


def _peer_map(items: Sequence[str] | None, p: argparse.ArgumentParser) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        addr, sep, name = item.partition("=")
        if not sep or not addr or not name:
            p.error(f"--peer expects ADDRESS=APPLIANCE, got {item!r}")
        out[addr] = name
    return out


def cmd_listen(a: argparse.Namespace) -> int:
    """Receive syslog over UDP/TCP/TLS and publish each message to the raw topic, keyed by appliance host."""
    from enricher.config import env_overrides, load
    from enricher.edges.kafka.kafka_python import has_lz4, make_producer
    from enricher.errors import ConfigError, EnricherError
    from enricher.telemetry import HealthServer

    p: argparse.ArgumentParser = a.parser
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    if a.tls_port is not None and not (a.tls_cert and a.tls_key):
        p.error("--tls-port needs --tls-cert and --tls-key")
    if not 1 <= a.max_line_bytes <= _KAFKA_MAX_LINE:
        p.error(f"--max-line-bytes must be between 1 and {_KAFKA_MAX_LINE}")
    if a.no_udp and a.no_tcp and a.tls_port is None:
        p.error("nothing to listen on (--no-udp, --no-tcp and no --tls-port)")
    if a.tls_port is not None:
        try:  # a bad certificate or key fails now, with its name, not after binding
            tls_context(a.tls_cert, a.tls_key, a.tls_client_ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError("--tls-cert", f"cannot use {a.tls_cert} / {a.tls_key}: {exc}") from None
    cfg = load(a.config, env_overrides())
    opts = ListenOptions(
        topic=a.topic or cfg.kafka.topic,
        appliance=a.appliance or cfg.appliance,
        bind=a.bind,
        udp_port=None if a.no_udp else a.udp_port,
        tcp_port=None if a.no_tcp else a.tcp_port,
        tls_port=a.tls_port,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_client_ca=a.tls_client_ca,
        peers=_peer_map(a.peer, p),
        appliance_from_peer=a.appliance_from_peer,
        max_line_bytes=a.max_line_bytes,
        max_connections=a.max_connections,
        queue_size=a.queue_size,
    )
    metrics = ListenMetrics()
    box: list[SyslogListener] = []
    metrics_host = a.metrics_host or cfg.service.metrics_host
    try:
        health = HealthServer(
            metrics,  # type: ignore[arg-type]  # anything with exposition()
            metrics_host,
            a.metrics_port,
            lambda: box[0].health() if box else (False, "starting"),
        )
    except OSError as exc:
        raise ConfigError("--metrics-port", f"cannot listen on {metrics_host}:{a.metrics_port}: {exc.strerror or exc}") from None
    health.start()  # /healthz says "starting" until the listener exists
    try:
        from kafka.errors import KafkaError

        from enricher.edges.kafka.confluent import check_access

        check_access(cfg.kafka)
        try:
            producer = make_producer(cfg.kafka, compression_type="lz4" if has_lz4() else "gzip", max_block_ms=5000)
        except KafkaError as exc:
            raise EnricherError(f"Kafka at {cfg.kafka.bootstrap_servers}: {exc}") from None
        listener = SyslogListener(opts, producer, metrics)
        box.append(listener)
        try:
            asyncio.run(_serve(listener, metrics_host, health.port))
        except OSError as exc:
            raise ConfigError("--bind", f"cannot listen on {opts.bind}: {exc.strerror or exc}") from None
        finally:
            producer.close(timeout=10)
    finally:
        health.stop()
    sys.stderr.write(orjson.dumps({"topic": opts.topic, **metrics.totals()}).decode() + "\n")
    return 0


async def _serve(listener: SyslogListener, metrics_host: str, metrics_port: int) -> None:
    bound = await listener.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, listener.request_stop)
    where = " ".join(f"{t}={h}:{port}" for t, (h, port) in bound.items())
    log.info(
        "listening %s topic=%s; metrics and health on http://%s:%d/metrics /healthz",
        where,
        listener.opts.topic,
        metrics_host,
        metrics_port,
    )
    await listener.serve()
    log.info("stopped: producer flushed")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m enricher.edges.sources.syslog send|listen …`."""
    parser = argparse.ArgumentParser(prog="python -m enricher.edges.sources.syslog", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)  # enricher.edges.sources.syslog_cli
    from enricher.edges.sources.syslog_send import register_send

    register_send(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m enricher.edges.sources.syslog send|listen …`."""
    from enricher.errors import ConfigError, EnricherError

    a = build_parser().parse_args(argv)
    try:
        return int(a.func(a))
    except ConfigError as exc:
        sys.stderr.write(f"esa-enricher: configuration error: {exc}\n")
        return 3
    except (EnricherError, OSError) as exc:
        sys.stderr.write(f"esa-enricher: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
