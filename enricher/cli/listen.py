"""`esa-enricher listen` (the syslog receiver in front of the raw topic) and `python -m enricher.edges.sources.syslog
send|listen`, its stand-alone entry point with the matching sender.

Building the parser must not import asyncio, ssl and prometheus_client for every command (`replay` starts ~30 ms
sooner): the listener is imported when `listen` runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from enricher.cli.options import EXIT_OK, config_of, pairs, run_command, setting, switch
from enricher.errors import ConfigError, EnricherError


def cmd_listen(a: argparse.Namespace) -> int:
    """Receive syslog over UDP/TCP/TLS and publish each message to the raw topic, keyed by appliance host."""
    import asyncio
    import logging
    import ssl

    from enricher.edges.kafka.kafka_python import has_lz4, make_producer
    from enricher.edges.sources.syslog import ListenMetrics, SyslogListener, tls_context
    from enricher.telemetry import HealthServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    cfg = config_of(a, pairs(a.peer, "listen.peers", "--peer", "ADDRESS=APPLIANCE"))
    opts = cfg.listen
    if opts.tls_port is not None:
        try:  # a bad certificate or key fails now, with its name, not after binding
            tls_context(opts.tls_cert, opts.tls_key, opts.tls_client_ca)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError("listen.tls_cert", f"cannot use {opts.tls_cert} / {opts.tls_key}: {exc}") from None
    metrics = ListenMetrics()
    box: list[SyslogListener] = []
    metrics_host = opts.metrics_host or cfg.service.metrics_host
    try:
        health = HealthServer(
            metrics,  # type: ignore[arg-type]  # anything with exposition()
            metrics_host,
            opts.metrics_port,
            lambda: box[0].health() if box else (False, "starting"),
        )
    except OSError as exc:
        raise ConfigError(
            "listen.metrics_port", f"cannot listen on {metrics_host}:{opts.metrics_port}: {exc.strerror or exc}"
        ) from None
    health.start()  # /healthz says "starting" until the listener exists
    try:
        from kafka.errors import KafkaError

        from enricher.edges.kafka.confluent import check_access

        check_access(cfg.kafka)
        try:
            producer = make_producer(cfg.kafka, compression_type="lz4" if has_lz4() else "gzip", max_block_ms=5000)
        except KafkaError as exc:
            raise EnricherError(f"Kafka at {cfg.kafka.bootstrap_servers}: {exc}") from None
        listener = SyslogListener(opts, cfg.kafka.topic, cfg.appliance, producer, metrics)
        box.append(listener)
        try:
            asyncio.run(_serve(listener, metrics_host, health.port))
        except OSError as exc:
            raise ConfigError("listen.bind", f"cannot listen on {opts.bind}: {exc.strerror or exc}") from None
        finally:
            producer.close(timeout=10)
    finally:
        health.stop()
    sys.stderr.write(orjson.dumps({"topic": listener.topic, **metrics.totals()}).decode() + "\n")
    return EXIT_OK


async def _serve(listener: Any, metrics_host: str, metrics_port: int) -> None:
    import asyncio
    import logging
    import signal

    log = logging.getLogger("esa_enricher.listen")
    bound = await listener.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, listener.request_stop)
    where = " ".join(f"{t}={h}:{port}" for t, (h, port) in bound.items())
    log.info(
        "listening %s topic=%s; metrics and health on http://%s:%d/metrics /healthz",
        where,
        listener.topic,
        metrics_host,
        metrics_port,
    )
    await listener.serve()
    log.info("stopped: producer flushed")


def register(sub: Any) -> argparse.ArgumentParser:
    """Add `listen` to the sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "listen",
        help="receive syslog (UDP/TCP/TLS) and publish each message to the raw Kafka topic",
        description="A syslog receiver (RFC 3164/5424; TCP newline or octet-counting framing, detected per frame; "
        "optional TLS) that publishes every message to the raw topic, keyed by the appliance host of its envelope. "
        "Back-pressure: TCP stops reading while the queue to Kafka is full; UDP datagrams are then dropped and counted. "
        "Settings: listen.* of the config (-c FILE < environment < flags; docs/configuration.md).",
    )
    p.add_argument("-c", "--config", help="TOML config file (listen.*, kafka.*, appliance; environment variables override it)")
    setting(p, "--topic", "kafka.topic", "topic")
    setting(p, "--bind", "listen.bind", "address to listen on (0.0.0.0 for all)")
    setting(p, "--udp-port", "listen.udp_port", "UDP port (0 = any free port)", type=int)
    setting(p, "--tcp-port", "listen.tcp_port", "TCP port (0 = any free port)", type=int)
    switch(p, "--no-udp", "listen.udp", False, "do not listen on UDP")
    switch(p, "--no-tcp", "listen.tcp", False, "do not listen on plain TCP")
    setting(p, "--tls-port", "listen.tls_port", "TCP port for syslog over TLS (RFC 5425)", default_note="off", type=int)
    setting(p, "--tls-cert", "listen.tls_cert", "server certificate (PEM, with its chain)")
    setting(p, "--tls-key", "listen.tls_key", "server private key (PEM)")
    setting(p, "--tls-client-ca", "listen.tls_client_ca", "require client certificates issued by this CA (mutual TLS)")
    setting(p, "--appliance", "appliance", "key of messages whose envelope names no host")
    p.add_argument("--peer", action="append", metavar="ADDRESS=APPLIANCE",
                   help="key of host-less messages from ADDRESS (repeatable; listen.peers)")  # fmt: skip
    switch(p, "--appliance-from-peer", "listen.appliance_from_peer", True, "key host-less messages by the sender's address")
    setting(p, "--max-line-bytes", "listen.max_line_bytes", "longer messages are truncated and counted", type=int)
    setting(p, "--max-connections", "listen.max_connections", "open TCP/TLS connections; more are closed at once", type=int)
    setting(p, "--queue-size", "listen.queue_size", "messages between the network and the producer", type=int)
    setting(p, "--metrics-host", "listen.metrics_host", "address of /metrics and /healthz",
            default_note="service.metrics_host, 127.0.0.1")  # fmt: skip
    setting(p, "--metrics-port", "listen.metrics_port", "port of /metrics and /healthz (0 = any)", type=int)
    p.set_defaults(func=cmd_listen)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m enricher.edges.sources.syslog send|listen …`."""
    parser = argparse.ArgumentParser(
        prog="python -m enricher.edges.sources.syslog",
        description="A syslog receiver that publishes to the raw Kafka topic (listen), and the matching sender (send).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    from enricher.cli.send import register as register_send

    register_send(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m enricher.edges.sources.syslog send|listen …`."""
    return run_command(build_parser(), argv, errors=(EnricherError, OSError))
