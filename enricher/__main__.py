"""Allow `python -m enricher ...`."""

from enricher.cli import main

raise SystemExit(main())
