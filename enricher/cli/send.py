"""`python -m enricher.edges.sources.syslog send FILE…`: the listener's matching sender (the lab's replayer, the tests).

Reads log files as the parser does (wrapped lines joined) and sends one syslog message per record over
UDP, TCP (newline or octet-counted framing) or TLS; native file lines can be rewritten as syslog from a
given appliance host.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import sys
import time
from typing import Any

import orjson

from enricher.edges.sources.syslog_framing import STYLES, SYSLOG_PORT, octet_frame, to_syslog


def _records(path: str) -> Any:
    """(record, utc offset) of a log file: wrapped lines joined (the parser's stream logic)."""
    from enricher.core.parsing.parser import Parser
    from enricher.edges.sources.files import open_input, read_lines

    f, _size = open_input(path)
    offset: int | None = None
    try:
        for ev in Parser().parse_lines(read_lines(f)):
            raw = ev.raw
            i = raw.find("Time offset from UTC: ")
            if i >= 0:
                with contextlib.suppress(ValueError):
                    offset = int(raw[i + 22 :].split()[0])
            yield raw, offset
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _connect(a: argparse.Namespace) -> socket.socket:
    deadline = time.monotonic() + a.connect_timeout
    while True:
        try:
            sock = socket.create_connection((a.host, a.port), timeout=30)
            break
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
    if a.transport == "tls":
        ctx = ssl.create_default_context(cafile=a.ca)
        if a.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=a.server_name or a.host)
    return sock


def cmd_send(a: argparse.Namespace) -> int:
    """Send log files to a syslog receiver, one message per record (native records rewritten as syslog)."""
    n = nbytes = 0
    t0 = time.monotonic()
    interval = 1.0 / a.rate if a.rate else 0.0
    if a.transport == "udp":
        family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.connect((a.host, a.port))
    else:
        sock = _connect(a)
    try:
        for path in a.files:
            for raw, offset in _records(path):
                msg = to_syslog(raw, a.hostname, a.style, a.tag, offset).encode("utf-8") if a.hostname else raw.encode("utf-8")
                if a.transport == "udp":
                    sock.send(msg)
                else:
                    sock.sendall(octet_frame(msg) if a.framing == "octet" else msg + b"\n")
                n += 1
                nbytes += len(msg)
                if interval:
                    time.sleep(max(0.0, t0 + n * interval - time.monotonic()))
        if a.transport != "udp":
            # Close cleanly and wait for the receiver to close too: by then it has read everything.
            if isinstance(sock, ssl.SSLSocket):
                with contextlib.suppress(OSError, ssl.SSLError):
                    sock = sock.unwrap()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(30)
                while sock.recv(4096):
                    pass
    finally:
        sock.close()
    sys.stderr.write(orjson.dumps({"records": n, "bytes": nbytes, "seconds": round(time.monotonic() - t0, 3)}).decode() + "\n")
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add `send` (the sender) to a sub-command parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "send", help="send log files to a syslog receiver", description=cmd_send.__doc__
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files (plain or .gz), or - for stdin")
    p.add_argument("--host", default="127.0.0.1", help="receiver address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=SYSLOG_PORT, help=f"receiver port (default {SYSLOG_PORT})")
    p.add_argument("--transport", choices=("udp", "tcp", "tls"), default="tcp", help="default tcp")
    p.add_argument("--framing", choices=("lf", "octet"), default="lf", help="TCP/TLS framing: newline or octet counting (RFC 6587)")
    p.add_argument("--hostname", help="rewrite native file lines as syslog from this appliance host (others are sent as they are)")
    p.add_argument("--style", choices=STYLES, default="rfc3164", help="syslog shape of rewritten lines (default rfc3164, as AsyncOS sends)")
    p.add_argument("--tag", default="mail_logs", help="syslog tag of rewritten lines (the log subscription name)")
    p.add_argument("--rate", type=float, default=0.0, help="messages per second (default: as fast as possible)")
    p.add_argument("--connect-timeout", type=float, default=30.0, help="keep trying to connect this long (default 30 s)")
    p.add_argument("--ca", help="CA file to verify the receiver's certificate (TLS)")
    p.add_argument("--server-name", help="name to verify in the receiver's certificate (default: --host)")
    p.add_argument("--insecure", action="store_true", help="do not verify the receiver's certificate (TLS)")
    p.set_defaults(func=cmd_send)
    return p


