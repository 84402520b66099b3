"""Allow `python -m enricher ...`."""

from enricher.cli import console

raise SystemExit(console())
