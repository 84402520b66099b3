"""Command line: `esa-enricher replay` (the embedded default) and the service commands."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from enricher import __version__
from enricher.accel.gcpace import paced_collection
from enricher.config import Config, load
from enricher.core.documents import DocumentConfig
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver, parse_iso, parse_zone
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.stitcher import Stitcher
from enricher.edges.sinks.ndjson import NdjsonSink
from enricher.edges.sources.files import open_input, read_lines
from enricher.errors import ConfigError, EnricherError, InputError

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def build_pipeline(cfg: Config) -> Pipeline:
    """Wire parser, stitcher and document builder from a Config."""
    t = cfg.time
    times = TimeResolver(
        default_zone=parse_zone(t.default_timezone, "time.default_timezone"),
        zones={h: parse_zone(z, f"time.timezones.{h}") for h, z in t.timezones.items()},
        reference_time=parse_iso(t.reference_time) if t.reference_time else None,
    )
    stitch = cfg.stitch_config()
    parser = Parser(times, default_appliance=cfg.appliance, lateness=stitch.grace_seconds)
    stitcher = Stitcher(stitch)
    docs = DocumentConfig(keep_raw=cfg.sessions.keep_raw, classify=cfg.classify_config())
    return Pipeline(parser, stitcher, docs)


def _replay_overrides(a: argparse.Namespace) -> dict[str, Any]:
    pairs: dict[str, Any] = {
        "appliance": a.appliance,
        "time.default_timezone": a.timezone,
        "time.reference_time": a.reference_time,
        "sessions.grace_seconds": a.grace,
        "sessions.idle_timeout_seconds": a.idle_timeout,
        "sessions.max_open_sessions": a.max_open_sessions,
        "sessions.closed_retention_seconds": a.closed_retention,
        "classify.inbound_timeout_seconds": a.inbound_timeout,
        "classify.inbound_timeout_tolerance_seconds": a.timeout_tolerance,
        "classify.lost_window_seconds": a.lost_window,
    }
    if a.no_raw:
        pairs["sessions.keep_raw"] = False
    if a.year is not None:
        pairs["time.reference_time"] = f"{a.year}-12-31T23:59:59Z"
    out = {k: v for k, v in pairs.items() if v is not None}
    for item in a.tz or []:
        host, sep, zone = item.partition("=")
        if not sep or not host or not zone:
            raise ConfigError("time.timezones", f"--tz expects HOST=ZONE, got {item!r}")
        out[f"time.timezones.{host}"] = zone
    return out


class _Progress:
    """A progress bar on stderr (only when it is a terminal)."""

    def __init__(self, total: int | None, label: str) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=_stderr_console(),
            transient=True,
        )
        self._p.start()
        self._task = self._p.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self._p.advance(self._task, n)

    def close(self) -> None:
        self._p.stop()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _print_table(summary: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title="esa-enricher replay", show_header=True)
    t.add_column("measure")
    t.add_column("value", justify="right")
    for k in ("lines", "unparsed", "sessions", "system_lines", "duplicates"):
        t.add_row(k, str(summary[k]))
    for state, n in summary["states"].items():
        t.add_row(f"sessions {state}", str(n))
    for reason, n in sorted(summary["aborted"].items(), key=lambda kv: -kv[1]):
        t.add_row(f"aborted: {reason}", str(n))
    _stderr_console().print(t)


def cmd_replay(a: argparse.Namespace) -> int:
    """Replay log files into session documents (NDJSON)."""
    cfg = load(a.config, _replay_overrides(a))
    pipeline = build_pipeline(cfg)
    out_f = sys.stdout.buffer if a.output in (None, "-") else open(a.output, "wb")  # noqa: SIM115
    sink = NdjsonSink(out_f)
    show_progress = not a.no_progress and sys.stderr.isatty()
    try:
        # Open everything first: an unreadable file fails before any output is written.
        inputs = [(path, *open_input(path)) for path in a.files]
        with paced_collection(cfg.service.gc_interval_seconds):
            for path, f, size in inputs:
                progress = _Progress(size, os.path.basename(path)) if show_progress and size else None
                try:
                    lines = read_lines(f, progress.advance if progress else None)
                    for doc in pipeline.process_lines(lines):
                        sink.add(doc)
                finally:
                    if progress:
                        progress.close()
                    if f is not sys.stdin.buffer:
                        f.close()
            for doc in pipeline.flush():
                sink.add(doc)
        sink.flush()
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): not an error worth a traceback
        return EXIT_OK
    finally:
        if out_f is not sys.stdout.buffer:
            out_f.close()
    summary = pipeline.summary()
    sys.stderr.write(orjson.dumps(summary).decode() + "\n")
    if sys.stderr.isatty() and not a.no_progress:
        _print_table(summary)
    return EXIT_OK


def _add_replay(sub: Any) -> None:
    p = sub.add_parser(
        "replay",
        help="turn log files into session documents (NDJSON)",
        description="Read ESA mail_logs files (plain or gzip; `-` for stdin), stitch and classify each message, "
        "and write one JSON document per session. A JSON summary line goes to stderr at the end.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    p.add_argument("-o", "--output", help="write NDJSON here instead of stdout")
    p.add_argument("-c", "--config", help="TOML config file (see docs/configuration.md)")
    p.add_argument("--appliance", help="appliance name for lines without a host (default: esa)")
    p.add_argument("--timezone", help="zone of stamps without one: UTC, +09:00 or an IANA name")
    p.add_argument("--tz", action="append", metavar="HOST=ZONE", help="zone of one appliance (repeatable)")
    p.add_argument("--reference-time", help="ISO time that year-less syslog stamps are inferred against")
    p.add_argument("--year", type=int, help="infer year-less stamps as of the end of YEAR")
    p.add_argument("--inbound-timeout", type=float, help="listener timeout in seconds (default 300)")
    p.add_argument("--timeout-tolerance", type=float, help="tolerance around the timeout (default 5)")
    p.add_argument("--lost-window", type=float, help="seconds between ICID lost and the abort (default 5)")
    p.add_argument("--grace", type=float, help="seconds to wait after Message finished (default 5)")
    p.add_argument("--idle-timeout", type=float, help="seconds of inactivity before a session expires (default 3600)")
    p.add_argument("--max-open-sessions", type=int, help="cap on open sessions (default 200000)")
    p.add_argument(
        "--closed-retention",
        type=float,
        help="seconds a written session is kept to merge late lines into (default: the idle timeout)",
    )
    p.add_argument("--no-raw", action="store_true", help="leave raw lines out of the documents")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or table on stderr")
    p.set_defaults(func=cmd_replay)


def _service_config(a: argparse.Namespace) -> Config:
    from enricher.config import env_overrides

    return load(a.config, env_overrides())


def cmd_produce(a: argparse.Namespace) -> int:
    """Publish log files to the raw topic, keyed by appliance host."""
    from enricher.edges.kafka.confluent import check_access
    from enricher.edges.kafka.kafka_python import produce_records, records_from_lines

    cfg = _service_config(a)
    check_access(cfg.kafka)
    topic = a.topic or cfg.kafka.topic
    parser = build_pipeline(cfg).parser
    totals: dict[str, float] = {"records": 0, "bytes": 0, "seconds": 0.0}
    inputs = [(path, *open_input(path)) for path in a.files]
    for _path, f, _size in inputs:
        try:
            stats = produce_records(cfg.kafka, topic, records_from_lines(parser, read_lines(f), a.appliance))
        finally:
            if f is not sys.stdin.buffer:
                f.close()
        for k in totals:
            totals[k] += stats[k]
    totals["records_per_second"] = round(totals["records"] / totals["seconds"], 1) if totals["seconds"] else 0.0
    sys.stderr.write(orjson.dumps({"topic": topic, **totals}).decode() + "\n")
    return EXIT_OK


def cmd_setup(a: argparse.Namespace) -> int:
    """Create the Kafka topics, install the Elasticsearch templates and lifecycle policy, import Kibana's objects."""
    from enricher.assets import kibana_import
    from enricher.config import env_overrides

    cfg = load(a.config, {**env_overrides(), **kibana_import.setup_overrides(a)})
    report: dict[str, Any] = {}
    if not a.skip_kafka:
        from enricher.edges.kafka.confluent import check_access
        from enricher.edges.kafka.kafka_python import ensure_topics

        check_access(cfg.kafka)

        report["kafka_topics_created"] = ensure_topics(
            cfg.kafka, a.partitions, a.replication, sessions="kafka" in cfg.service.outputs
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
        report["kibana"] = kibana_import.import_bundle(cfg.kibana, a.kibana_bundle)
    sys.stderr.write(orjson.dumps(report).decode() + "\n")
    return EXIT_OK



def cmd_run(a: argparse.Namespace) -> int:
    """The streaming service: Kafka → enricher → Elasticsearch and/or the sessions topic (`service.outputs`)."""
    import logging

    from enricher.service.wiring import connect
    from enricher.telemetry import HealthServer, Metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the client's connection chatter
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    cfg = _service_config(a)
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


def _add_service_commands(sub: Any) -> None:
    p = sub.add_parser("produce", help="publish log files to the raw Kafka topic, keyed by appliance host")
    p.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    p.add_argument("--topic", help="topic (default: kafka.topic of the config, esa-mail-logs)")
    p.add_argument("--appliance", help="key for records whose envelope has no host")
    p.add_argument("-c", "--config", help="TOML config file")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("setup", help="create Kafka topics; install Elasticsearch templates, alias and lifecycle policy")
    p.add_argument("-c", "--config", help="TOML config file")
    p.add_argument("--partitions", type=int, default=4, help="partitions of new topics (default 4)")
    p.add_argument("--replication", type=int, default=1, help="replication factor of new topics (default 1)")
    p.add_argument("--skip-kafka", action="store_true", help="leave Kafka alone")
    p.add_argument("--skip-elasticsearch", action="store_true", help="leave Elasticsearch alone")
    from enricher.assets import kibana_import

    kibana_import.add_setup_arguments(p)
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("run", help="run the streaming service (Kafka → Elasticsearch and/or the sessions topic)")
    p.add_argument("-c", "--config", help="TOML config file (environment variables override it)")
    p.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS", help="write open sessions and exit after this long without input"
    )
    p.set_defaults(func=cmd_run)


def cmd_config_reference(a: argparse.Namespace) -> int:
    """Print docs/configuration.md (generated from the config models)."""
    from enricher.config import reference_markdown

    sys.stdout.write(reference_markdown())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `esa-enricher`."""
    parser = argparse.ArgumentParser(
        prog="esa-enricher",
        description="Stitch Cisco ESA mail_logs into one enriched document per message, with abort classification.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_replay(sub)
    _add_service_commands(sub)
    from enricher.assets import register as register_assets
    from enricher.edges.sources import syslog_cli

    register_assets(sub)
    syslog_cli.register(sub)
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    p.set_defaults(func=cmd_config_reference)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    # Sessions and documents are acyclic and allocated by the million: the cyclic collector's default
    # thresholds make it scan the whole heap over and over. Collect less often (run and replay go further
    # and pace it: enricher/accel/gcpace.py).
    gc.set_threshold(50_000, 20, 100)
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return int(a.func(a))
    except ConfigError as exc:
        sys.stderr.write(f"esa-enricher: configuration error: {exc}\n")
        return EXIT_CONFIG
    except InputError as exc:
        sys.stderr.write(f"esa-enricher: cannot read {exc}\n")
        return EXIT_INPUT
    except EnricherError as exc:
        sys.stderr.write(f"esa-enricher: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
