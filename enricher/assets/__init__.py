"""Analyst assets built from `pipelines/` and the field list (`enricher/core/fields.py`): the mapping, the Kibana
saved objects bundle, the Sigma rule conversions, the Splunk add-on.

`register(subparsers)` adds `esa-enricher assets elasticsearch|kibana|sigma|splunk [--check]`;
`kibana_import.add_setup_arguments` / `kibana_import.import_bundle` give `esa-enricher setup --kibana URL`.
"""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_assets(a: argparse.Namespace) -> int:
    if a.asset == "elasticsearch":
        from enricher.assets import es_mapping

        return es_mapping.main(["--check"] if a.check else [])
    if a.asset == "kibana":
        from enricher.assets import kibana

        return kibana.main(["--check"] if a.check else [])
    if a.asset == "splunk":
        from enricher.assets import splunk  # needs the `sigma` extra (the correlation searches)

        return splunk.main((["--check"] if a.check else []) + (["--package", str(a.package)] if a.package else []))
    from enricher.assets import sigma  # needs the `sigma` extra (pySigma and its backends)

    return sigma.main(["--check"] if a.check else [])


def register(subparsers: Any) -> None:
    """Add the `assets` command: rebuild (or `--check`) the Kibana bundle or the Sigma conversions."""
    p = subparsers.add_parser(
        "assets",
        help="rebuild the mapping, the Kibana saved objects bundle, the Sigma rule conversions or the Splunk add-on",
        description="Rebuild pipelines/elasticsearch/esa-sessions-mappings.json and docs/fields.md from the field "
        "list (elasticsearch), pipelines/kibana/esa-enricher.ndjson (kibana), pipelines/sigma/out/ (sigma, needs "
        "the sigma extra) or pipelines/splunk/TA-esa-enricher (splunk, needs the sigma extra). With --check, exit 1 "
        "when the committed files differ from a fresh build.",
    )
    p.add_argument("asset", choices=("elasticsearch", "kibana", "sigma", "splunk"))
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    p.add_argument("--package", metavar="FILE", help="splunk: also write the add-on as the .tar.gz Splunk installs")
    p.set_defaults(func=_cmd_assets)
