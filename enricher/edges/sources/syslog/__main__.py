"""`python -m enricher.edges.sources.syslog send|listen …` (the lab's replayer and collector): the CLI's entry point."""

from enricher.cli.listen import main

raise SystemExit(main())
