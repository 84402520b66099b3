"""`esa-enricher produce`: publish log files to the raw Kafka topic, keyed by appliance host."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from enricher.cli.options import EXIT_OK, config_of, setting
from enricher.cli.wiring import build_pipeline
from enricher.edges.sources.files import open_input, read_lines


def cmd_produce(a: argparse.Namespace) -> int:
    """Publish log files to the raw topic, keyed by appliance host."""
    from enricher.edges.kafka.confluent import check_access
    from enricher.edges.kafka.kafka_python import produce_records, records_from_lines

    cfg = config_of(a)
    check_access(cfg.kafka)
    topic = cfg.kafka.topic
    parser = build_pipeline(cfg).parser
    totals: dict[str, float] = {"records": 0, "bytes": 0, "seconds": 0.0}
    inputs = [(path, *open_input(path)) for path in a.files]
    for _path, f, _size in inputs:
        try:
            stats = produce_records(cfg.kafka, topic, records_from_lines(parser, read_lines(f)))
        finally:
            if f is not sys.stdin.buffer:
                f.close()
        for k in totals:
            totals[k] += stats[k]
    totals["records_per_second"] = round(totals["records"] / totals["seconds"], 1) if totals["seconds"] else 0.0
    sys.stderr.write(orjson.dumps({"topic": topic, **totals}).decode() + "\n")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `produce` to the sub-commands."""
    p = sub.add_parser("produce", help="publish log files to the raw Kafka topic, keyed by appliance host")
    p.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    setting(p, "--topic", "kafka.topic", "topic")
    setting(p, "--appliance", "appliance", "key for records whose envelope has no host")
    p.add_argument("-c", "--config", help="TOML config file (environment variables override it, flags override both)")
    p.set_defaults(func=cmd_produce)
