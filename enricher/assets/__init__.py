"""Analyst assets built from `pipelines/`: the Kibana saved objects bundle and the Sigma rule conversions.

`register(subparsers)` adds `esa-enricher assets kibana|sigma [--check]`; `kibana_import.add_setup_arguments` /
`kibana_import.import_bundle` give `esa-enricher setup --kibana URL`.
"""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_assets(a: argparse.Namespace) -> int:
    if a.asset == "kibana":
        from enricher.assets import kibana

        return kibana.main(["--check"] if a.check else [])
    from enricher.assets import sigma  # needs the `sigma` extra (pySigma and its backends)

    return sigma.main(["--check"] if a.check else [])


def register(subparsers: Any) -> None:
    """Add the `assets` command: rebuild (or `--check`) the Kibana bundle or the Sigma conversions."""
    p = subparsers.add_parser(
        "assets",
        help="rebuild the Kibana saved objects bundle or the Sigma rule conversions",
        description="Rebuild pipelines/kibana/esa-enricher.ndjson (kibana) or pipelines/sigma/out/ (sigma, needs "
        "the sigma extra). With --check, exit 1 when the committed files differ from a fresh build.",
    )
    p.add_argument("asset", choices=("kibana", "sigma"))
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    p.set_defaults(func=_cmd_assets)
