"""The syslog listener: asyncio on the network side, a bounded queue, one blocking Kafka producer thread.

Its settings are `listen.*` of the configuration (`ListenSettings`); `esa-enricher listen` (enricher/cli/listen.py)
builds it. See the package's docstring for the behaviour (back-pressure, truncation, the graceful stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from enricher.config import ListenSettings
from enricher.edges.sources.syslog.metrics import ListenMetrics
from enricher.edges.sources.syslog_framing import Frame, KeyExtractor, StreamFramer, datagram_frame

log = logging.getLogger("esa_enricher.listen")

_READ_SIZE = 65536
_BATCH = 1000  # messages handed to the producer thread at once
_SATURATED_UNHEALTHY_S = 30.0


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

    def __init__(self, opts: ListenSettings, topic: str, appliance: str, producer: Any, metrics: ListenMetrics) -> None:
        self.opts = opts
        self.topic = topic
        self.appliance = appliance
        self.producer = producer
        self.metrics = metrics
        self.keys = KeyExtractor(appliance)
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
        return self.appliance

    # -- start ----------------------------------------------------------------------------------------------
    async def start(self) -> dict[str, tuple[str, int]]:
        """Bind every configured port; returns transport → (host, port) actually bound."""
        loop = asyncio.get_running_loop()
        o = self.opts
        self._queue = asyncio.Queue(o.queue_size)
        q = self._queue
        self.metrics.queued.set_function(q.qsize)
        if o.udp:
            sock = socket.socket(socket.AF_INET6 if ":" in o.bind else socket.AF_INET, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):  # a deeper kernel buffer absorbs bursts (capped by rmem_max)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((o.bind, o.udp_port))
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
            self._udp = transport
            self.bound["udp"] = transport.get_extra_info("sockname")[:2]
        if o.tcp:
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
                    fut = self.producer.send(self.topic, key=key, value=value)
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
        self._give_up_at = time.monotonic() + self.opts.flush_timeout_seconds
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
            log.error(
                "%d messages were not acknowledged by Kafka within %.0f s", inflight, self.opts.flush_timeout_seconds
            )
            if inflight > 0:
                self.metrics.dropped.labels("all", "shutdown").inc(inflight)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener.datagram(data, addr[0] if addr else None)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP errors: nothing to do for a receiver
        log.debug("UDP error: %s", exc)
