"""`esa-enricher config-reference`: print docs/configuration.md (generated from the config models)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from enricher.cli.options import EXIT_OK, flags_by_key


def markdown() -> str:
    """docs/configuration.md: the models' reference, with the flags of every command that set each key."""
    from enricher.cli import build_parser
    from enricher.config import reference_markdown

    return reference_markdown(flags_by_key(build_parser()))


def cmd_config_reference(a: argparse.Namespace) -> int:
    """Print docs/configuration.md."""
    sys.stdout.write(markdown())
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `config-reference` to the sub-commands."""
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    p.set_defaults(func=cmd_config_reference)
