"""`esa-enricher config-reference`: print docs/configuration.md (generated from the config models)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from enricher.cli.options import EXIT_OK


def cmd_config_reference(a: argparse.Namespace) -> int:
    """Print docs/configuration.md."""
    from enricher.config import reference_markdown

    sys.stdout.write(reference_markdown())
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `config-reference` to the sub-commands."""
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    p.set_defaults(func=cmd_config_reference)
