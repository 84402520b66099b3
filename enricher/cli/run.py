"""`esa-enricher run`: the streaming service (Kafka → enricher → Elasticsearch and/or the sessions topic)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from enricher.accel.gcpace import paced_collection
from enricher.cli.options import config_of
from enricher.cli.wiring import build_pipeline
from enricher.errors import ConfigError


def cmd_run(a: argparse.Namespace) -> int:
    """The streaming service: Kafka → enricher → Elasticsearch and/or the sessions topic (`service.outputs`)."""
    import logging

    from enricher.service.wiring import connect
    from enricher.telemetry import HealthServer, Metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the client's connection chatter
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    cfg = config_of(a)
    metrics = Metrics()
    health_box: list[Any] = []  # the service's health, once it exists
    try:
        health = HealthServer(
            metrics,
            cfg.service.metrics_host,
            cfg.service.metrics_port,
            lambda: health_box[0].health() if health_box else (False, "starting"),
        )
    except OSError as exc:
        raise ConfigError(
            "service.metrics_port",
            f"cannot listen on {cfg.service.metrics_host}:{cfg.service.metrics_port}: {exc.strerror or exc} "
            "(another enricher on this machine? use another port, or 0 for any free one)",
        ) from None
    service = connect(cfg, metrics, lambda: build_pipeline(cfg))
    health_box.append(service)
    health.start()
    logging.getLogger("esa_enricher").info("consuming %s with the %s client", cfg.kafka.topic, cfg.kafka.client)
    logging.getLogger("esa_enricher").info(
        "metrics and health on http://%s:%d/metrics /healthz", cfg.service.metrics_host, health.port
    )
    try:
        with paced_collection(cfg.service.gc_interval_seconds):
            return service.run(exit_when_idle=a.exit_when_idle)
    finally:
        health.stop()


def register(sub: Any) -> None:
    """Add `run` to the sub-commands."""
    p = sub.add_parser("run", help="run the streaming service (Kafka → Elasticsearch and/or the sessions topic)")
    p.add_argument("-c", "--config", help="TOML config file (environment variables override it)")
    p.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS", help="write open sessions and exit after this long without input"
    )
    p.set_defaults(func=cmd_run)
