"""`esa-enricher listen`: a syslog receiver (UDP, TCP, TLS) that publishes each message to the raw Kafka topic.

    appliance ──UDP/TCP/TLS──▶ asyncio (framing, key) ──bounded queue──▶ one producer thread ──▶ Kafka

- Key = the appliance host the envelope names (syslog_framing.KeyExtractor), value = the message as received
  (framing and trailing CR/LF/NUL removed, bytes untouched), the same records `esa-enricher produce` writes.
- Back-pressure, not unbounded buffering: between the network side and the producer sits a queue of
  `listen.queue_size` messages. When it is full a TCP/TLS connection stops reading (asyncio pauses the socket, the
  kernel's receive window closes and the sender waits); UDP cannot push back, so datagrams that find the queue
  full are dropped and counted (`esa_syslog_lines_dropped_total{reason="queue_full"}`).
- Messages longer than `listen.max_line_bytes` are truncated (kept) and counted; connections beyond
  `listen.max_connections` are closed at once and counted.
- SIGTERM/SIGINT: stop accepting, publish what was received, flush the producer, print a JSON summary on stderr.

`python -m enricher.edges.sources.syslog send FILE…` is the matching sender (the lab's replayer, the tests);
`python -m enricher.edges.sources.syslog listen …` is `esa-enricher listen` (enricher/cli/send.py, listen.py).
"""

from enricher.edges.sources.syslog.listener import SyslogListener, tls_context
from enricher.edges.sources.syslog.metrics import ListenMetrics

__all__ = ["ListenMetrics", "SyslogListener", "tls_context"]
