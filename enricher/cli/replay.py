"""`esa-enricher replay`: log files → session documents (NDJSON), a JSON summary on stderr."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from enricher.accel.gcpace import paced_collection
from enricher.cli.options import EXIT_OK, config_of, flag_overrides, pairs, setting, switch
from enricher.cli.wiring import build_pipeline
from enricher.edges.sinks.ndjson import NdjsonSink
from enricher.edges.sources.files import open_input, read_lines


def overrides(a: argparse.Namespace) -> dict[Any, Any]:
    """The dotted config overrides of `replay`'s flags (those given)."""
    out = flag_overrides(a)
    if a.year is not None:
        out["time.reference_time"] = f"{a.year}-12-31T23:59:59Z"
    out.update(pairs(a.tz, "time.timezones", "--tz", "HOST=ZONE"))
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
    cfg = config_of(a, overrides(a))
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


def register(sub: Any) -> None:
    """Add `replay` to the sub-commands."""
    p = sub.add_parser(
        "replay",
        help="turn log files into session documents (NDJSON)",
        description="Read ESA mail_logs files (plain or gzip; `-` for stdin), stitch and classify each message, "
        "and write one JSON document per session. A JSON summary line goes to stderr at the end. Settings: "
        "-c FILE < environment < flags (docs/configuration.md).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    p.add_argument("-o", "--output", help="write NDJSON here instead of stdout")
    p.add_argument("-c", "--config", help="TOML config file (see docs/configuration.md)")
    setting(p, "--appliance", "appliance", "appliance name for lines without a host")
    setting(p, "--timezone", "time.default_timezone", "zone of stamps without one: UTC, +09:00 or an IANA name")
    p.add_argument("--tz", action="append", metavar="HOST=ZONE", help="zone of one appliance (repeatable; time.timezones)")
    setting(p, "--reference-time", "time.reference_time", "ISO time that year-less syslog stamps are inferred against",
            default_note="now")  # fmt: skip
    p.add_argument("--year", type=int, help="infer year-less stamps as of the end of YEAR")
    setting(p, "--inbound-timeout", "classify.inbound_timeout_seconds", "listener timeout in seconds", type=float)
    setting(p, "--timeout-tolerance", "classify.inbound_timeout_tolerance_seconds", "tolerance around the timeout",
            type=float)  # fmt: skip
    setting(p, "--lost-window", "classify.lost_window_seconds", "seconds between ICID lost and the abort", type=float)
    setting(p, "--grace", "sessions.grace_seconds", "seconds to wait after Message finished", type=float)
    setting(p, "--idle-timeout", "sessions.idle_timeout_seconds", "seconds of inactivity before a session expires",
            type=float)  # fmt: skip
    setting(p, "--max-open-sessions", "sessions.max_open_sessions", "cap on open sessions", type=int)
    setting(p, "--closed-retention", "sessions.closed_retention_seconds",
            "seconds a written session is kept to merge late lines into", default_note="the idle timeout", type=float)  # fmt: skip
    switch(p, "--no-raw", "sessions.keep_raw", False, "leave raw lines out of the documents")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or table on stderr")
    p.set_defaults(func=cmd_replay)
