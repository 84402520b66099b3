"""The listener's metrics (docs/telemetry.md)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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
