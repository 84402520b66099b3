"""Docs that are generated or that promise a contract stay true to the code."""

from __future__ import annotations

import re

from enricher.config import reference_markdown
from enricher.telemetry import Metrics
from tests.conftest import ROOT


def test_configuration_reference_is_generated_from_the_models() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference_markdown(), "run: esa-enricher config-reference > docs/configuration.md"


def test_every_metric_is_in_the_telemetry_contract() -> None:
    doc = (ROOT / "docs" / "telemetry.md").read_text()
    names = {m.name for m in Metrics().registry.collect()}
    documented = set(re.findall(r"`(esa_[a-z_]+)`", doc))
    for name in names:
        assert name in documented or f"{name}_total" in documented, f"{name} missing from docs/telemetry.md"
