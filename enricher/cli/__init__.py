"""Command line: `esa-enricher COMMAND`, one module per command (replay, produce, setup, run, listen, assets,
config-reference); `main` is the console script's entry point. Every command's settings are the configuration
model's (enricher/config/): `-c FILE` < environment < flags (enricher/cli/options.py)."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence

from enricher import __version__
from enricher.cli import assets, listen, produce, reference, replay, run, setup
from enricher.cli.options import EXIT_CONFIG, EXIT_INPUT, EXIT_OK, EXIT_USAGE, run_command
from enricher.cli.wiring import build_pipeline

__all__ = ["EXIT_CONFIG", "EXIT_INPUT", "EXIT_OK", "EXIT_USAGE", "build_parser", "build_pipeline", "console", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `esa-enricher`."""
    parser = argparse.ArgumentParser(
        prog="esa-enricher",
        description="Stitch Cisco ESA mail_logs into one enriched document per message, with abort classification.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (replay, produce, setup, run, assets, listen):
        command.register(sub)
    reference.register(sub, parser)  # it lists the flags of every command: handed the whole parser
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (`argv`, else the process's arguments) and return its exit status."""
    # Sessions and documents are acyclic and allocated by the million: the cyclic collector's default
    # thresholds make it scan the whole heap over and over. Collect less often (run and replay go further
    # and pace it: enricher/accel/gcpace.py).
    gc.set_threshold(50_000, 20, 100)
    return run_command(build_parser(), argv)


def console() -> int:
    """The console script (`esa-enricher`, `python -m enricher`): `main`, then nothing left for the exit's heap walk.

    The interpreter runs one full cyclic collection as it exits, over every object still alive: at the end of a
    replay that is every written session kept for late lines, walked and freed one by one only for the process
    to end (7 % of a 400k-line replay's CPU, paired runs). Frozen objects are left out of that collection and
    their memory goes back with the process. Files and streams are closed by the commands themselves; atexit
    handlers and finalizers of objects freed by reference counting still run. Only for a process that ends
    here: code that calls `main` in-process (tests) keeps collecting as usual.
    """
    status = main()
    gc.freeze()
    return status
