"""`esa-enricher setup`: Kafka topics, Elasticsearch templates/alias/lifecycle policy, Kibana's saved objects."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from enricher.cli.options import EXIT_OK, config_of, setting, switch


def cmd_setup(a: argparse.Namespace) -> int:
    """Create the Kafka topics, install the Elasticsearch templates and lifecycle policy, import Kibana's objects."""
    cfg = config_of(a)
    report: dict[str, Any] = {}
    if not a.skip_kafka:
        from enricher.edges.kafka.confluent import check_access
        from enricher.edges.kafka.kafka_python import ensure_topics

        check_access(cfg.kafka)

        report["kafka_topics_created"] = ensure_topics(
            cfg.kafka,
            cfg.kafka.topic_partitions,
            cfg.kafka.topic_replication_factor,
            sessions="kafka" in cfg.service.outputs,
        )
    if not a.skip_elasticsearch:
        from enricher.edges.sinks.elasticsearch import access_error, make_client
        from enricher.edges.sinks.elasticsearch import assets as es_assets

        client = make_client(cfg.elasticsearch)
        try:
            report["elasticsearch"] = es_assets.install(client, prefix=cfg.elasticsearch.index_prefix)
        except Exception as exc:
            raise (access_error(exc) or exc) from None
    if cfg.kibana.url:
        from enricher.assets.kibana import BUNDLE
        from enricher.assets.kibana_import import import_bundle

        report["kibana"] = import_bundle(cfg.kibana, a.kibana_bundle or BUNDLE)
    sys.stderr.write(orjson.dumps(report).decode() + "\n")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `setup` to the sub-commands."""
    p = sub.add_parser("setup", help="create Kafka topics; install Elasticsearch templates, alias and lifecycle policy")
    p.add_argument("-c", "--config", help="TOML config file (environment variables override it, flags override both)")
    setting(p, "--partitions", "kafka.topic_partitions", "partitions of new topics", type=int)
    setting(p, "--replication", "kafka.topic_replication_factor", "replication factor of new topics", type=int)
    p.add_argument("--skip-kafka", action="store_true", help="leave Kafka alone")
    p.add_argument("--skip-elasticsearch", action="store_true", help="leave Elasticsearch alone")
    g = p.add_argument_group("Kibana (overrides of kibana.* of the config; secrets only from config or environment)")
    setting(g, "--kibana", "kibana.url", "import the saved objects into this Kibana", default_note="no import",
            metavar="URL")  # fmt: skip
    setting(g, "--kibana-space", "kibana.space", "Kibana space", default_note="the default space")
    setting(g, "--kibana-user", "kibana.username", "basic auth user (env ESA_KIBANA_USERNAME)")
    setting(g, "--kibana-ca-certs", "kibana.ca_certs", "CA bundle that issued Kibana's certificate", metavar="FILE")
    setting(g, "--kibana-fingerprint", "kibana.ssl_assert_fingerprint", "pin Kibana's certificate", metavar="SHA256")
    switch(g, "--kibana-no-verify", "kibana.verify_certs", False, "do not verify Kibana's certificate")
    g.add_argument("--kibana-bundle", type=Path, help="NDJSON to import (default: the bundled one)")
    p.set_defaults(func=cmd_setup)
