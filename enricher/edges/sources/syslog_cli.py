"""The `listen` command's arguments, apart from the listener itself: building the `esa-enricher` parser must
not import asyncio, ssl and prometheus_client for every command (`replay` starts ~30 ms sooner)."""

from __future__ import annotations

import argparse
from typing import Any

from enricher.edges.sources.syslog_framing import DEFAULT_MAX_BYTES

DEFAULT_PORT = 5514
DEFAULT_METRICS_PORT = 9465  # `run` has 9464


def _cmd_listen(a: argparse.Namespace) -> int:
    from enricher.edges.sources.syslog import cmd_listen

    return cmd_listen(a)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `listen` to the `esa-enricher` sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "listen",
        help="receive syslog (UDP/TCP/TLS) and publish each message to the raw Kafka topic",
        description="A syslog receiver (RFC 3164/5424; TCP newline or octet-counting framing, detected per frame; "
        "optional TLS) that publishes every message to the raw topic, keyed by the appliance host of its envelope. "
        "Back-pressure: TCP stops reading while the queue to Kafka is full; UDP datagrams are then dropped and counted.",
    )
    p.add_argument("-c", "--config", help="TOML config file (kafka.*, appliance; environment variables override it)")
    p.add_argument("--topic", help="topic (default: kafka.topic of the config, esa-mail-logs)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--udp-port", type=int, default=DEFAULT_PORT, help=f"UDP port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--tcp-port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port)")
    p.add_argument("--no-udp", action="store_true", help="do not listen on UDP")
    p.add_argument("--no-tcp", action="store_true", help="do not listen on plain TCP")
    p.add_argument("--tls-port", type=int, help="TCP port for syslog over TLS (RFC 5425; off unless given)")
    p.add_argument("--tls-cert", help="server certificate (PEM, with its chain)")
    p.add_argument("--tls-key", help="server private key (PEM)")
    p.add_argument("--tls-client-ca", help="require client certificates issued by this CA (mutual TLS)")
    p.add_argument("--appliance", help="key of messages whose envelope names no host (default: appliance of the config, esa)")
    p.add_argument("--peer", action="append", metavar="ADDRESS=APPLIANCE", help="key of host-less messages from ADDRESS (repeatable)")
    p.add_argument("--appliance-from-peer", action="store_true", help="key host-less messages by the sender's address")
    p.add_argument(
        "--max-line-bytes", type=int, default=DEFAULT_MAX_BYTES, help=f"longer messages are truncated and counted (default {DEFAULT_MAX_BYTES})"
    )
    p.add_argument("--max-connections", type=int, default=512, help="open TCP/TLS connections; more are closed at once (default 512)")
    p.add_argument("--queue-size", type=int, default=10_000, help="messages between the network and the producer (default 10000)")
    p.add_argument("--metrics-host", help="address of /metrics and /healthz (default: service.metrics_host, 127.0.0.1)")
    p.add_argument(
        "--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help=f"port of /metrics and /healthz (default {DEFAULT_METRICS_PORT}; 0 = any)"
    )
    p.set_defaults(func=_cmd_listen, parser=p)
    return p
