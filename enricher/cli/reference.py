"""`esa-enricher config-reference`: print docs/configuration.md (generated from the config models)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from enricher.cli.options import EXIT_OK, flags_by_key


def markdown(parser: argparse.ArgumentParser) -> str:
    """docs/configuration.md: the models' reference, with the flags of `parser`'s commands that set each key."""
    from enricher.config import reference_markdown

    return reference_markdown(flags_by_key(parser))


def register(sub: Any, root: argparse.ArgumentParser) -> None:
    """Add `config-reference` to the sub-commands of `root` (whose flags it lists)."""
    p = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")

    def cmd_config_reference(a: argparse.Namespace) -> int:
        """Print docs/configuration.md."""
        sys.stdout.write(markdown(root))
        return EXIT_OK

    p.set_defaults(func=cmd_config_reference)
