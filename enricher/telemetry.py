"""The metrics contract (Prometheus) and the health/metrics HTTP endpoint.

Names and labels are part of the product's interface (docs/telemetry.md). Labels are bounded: reasons,
states and layers come from closed lists, partitions from the topic; never a MID, host or address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """Every metric the service exports, in one registry per instance (tests build several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.lines_in = Counter("esa_lines_received", "Raw records read from the source.", registry=r)
        self.duplicates = Counter(
            "esa_lines_duplicate",
            "Records that repeat a line already applied to their session (same appliance, second and body): "
            "counted in esa_lines_received, changing nothing.",
            registry=r,
        )
        self.unparsed = Counter("esa_lines_unparsed", "Records that could not be typed, by reason.", ["reason"], registry=r)
        self.lines_accounted = Counter(
            "esa_lines_accounted",
            "Records by where they went (error_document, session, or why in no document); sums to esa_lines_received.",
            ["outcome"],
            registry=r,
        )
        self.sessions_open = Gauge("esa_sessions_open", "Sessions held in the windowed state.", registry=r)
        self.sessions_closed = Counter(
            "esa_sessions_closed", "Sessions written, by cause (complete/partial/expired/evicted/late).", ["state"], registry=r
        )
        self.aborts = Counter("esa_aborts", "Sessions with an abort_reason.", ["reason", "layer"], registry=r)
        self.documents_written = Counter("esa_documents_written", "Documents acknowledged by Elasticsearch.", registry=r)
        self.topic_documents_written = Counter(
            "esa_topic_documents_written",
            "Documents acknowledged by Kafka on the sessions topic (all in-sync replicas).",
            registry=r,
        )
        self.topic_retries = Counter(
            "esa_topic_retries", "Documents produced again to the sessions topic after a passing failure.", ["reason"], registry=r
        )
        self.bulk_latency = Histogram(
            "esa_bulk_latency_seconds",
            "Latency of one bulk request.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.bulk_failures = Counter(
            "esa_bulk_failures", "Bulk requests that failed as a whole (retried).", ["reason"], registry=r
        )
        self.bulk_retries = Counter("esa_bulk_retries", "Documents retried, by status.", ["status"], registry=r)
        self.dead_letters = Counter("esa_dead_letters", "Documents sent to the dead-letter topic.", ["reason"], registry=r)
        self.processing_errors = Counter(
            "esa_processing_errors",
            "Records whose processing raised, by exception (dead-lettered, or the service stopped: "
            "service.on_processing_error).",
            ["exception"],
            registry=r,
        )
        self.documents_dropped = Counter(
            "esa_documents_dropped",
            "Documents a sink dropped unwritten, by reason (revoked: the partition was given up; closed: still "
            "queued at shutdown); the last checkpoint has them, they are written again from it.",
            ["reason"],
            registry=r,
        )
        self.consumer_lag = Gauge("esa_consumer_lag", "Records behind the end of each partition.", ["partition"], registry=r)
        self.checkpoints = Counter("esa_checkpoints", "State checkpoints written.", registry=r)
        self.checkpoint_seconds = Histogram(
            "esa_checkpoint_seconds", "Time to flush, snapshot and commit.", registry=r
        )
        self.checkpoint_bytes = Gauge("esa_checkpoint_bytes", "Size of the last snapshot, per partition.", ["partition"], registry=r)
        self.backpressure_seconds = Counter(
            "esa_backpressure_seconds", "Time spent with partitions paused waiting for the sink.", registry=r
        )
        self.restores = Counter("esa_state_restores", "Partitions whose state was restored from a checkpoint.", registry=r)

    def exposition(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class HealthServer:
    """`/metrics` and `/healthz` on one port (127.0.0.1 unless configured otherwise)."""

    def __init__(self, metrics: Metrics, host: str, port: int, healthy: Callable[[], tuple[bool, str]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.startswith("/metrics"):
                    body, ctype, code = outer.metrics.exposition(), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    ok, why = outer.healthy()
                    body, ctype, code = why.encode(), "text/plain; charset=utf-8", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain; charset=utf-8", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet access log
                return

        self.metrics = metrics
        self.healthy = healthy
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
