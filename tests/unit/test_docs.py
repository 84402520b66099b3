"""Docs that are generated or that promise a contract stay true to the code."""

from __future__ import annotations

import re

from enricher.config import reference_markdown
from enricher.telemetry import Metrics
from tests.conftest import ROOT
from tests.goldens import all_expected_documents


def test_configuration_reference_is_generated_from_the_models() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == reference_markdown(), "run: esa-enricher config-reference > docs/configuration.md"


def test_every_metric_is_in_the_telemetry_contract() -> None:
    doc = (ROOT / "docs" / "telemetry.md").read_text()
    names = {m.name for m in Metrics().registry.collect()}
    documented = set(re.findall(r"`(esa_[a-z_]+)`", doc))
    for name in names:
        assert name in documented or f"{name}_total" in documented, f"{name} missing from docs/telemetry.md"


def _taxonomy_slugs() -> set[str]:
    """The slugs of docs/abort-taxonomy.md: the second backticked word of each table row in `reason` columns."""
    doc = (ROOT / "docs" / "abort-taxonomy.md").read_text()
    slugs: set[str] = set()
    lines = doc.splitlines()
    for line, after in zip(lines, [*lines[1:], ""], strict=True):
        if line.startswith("|") and not line.startswith("|---") and not after.startswith("|---"):  # not a header
            cells = [c.strip() for c in line.strip("|").split("|")]
            slugs.update(m for c in cells[1:] for m in re.findall(r"^`([a-z][a-z0-9_]+)`$", c))
    return slugs - {"transport", "application", "timeout", "policy", "resource", "tls", "delivery", "internal", "unknown"}


def test_every_emitted_slug_is_in_the_taxonomy() -> None:
    """Every abort_reason the goldens and the bench corpus show is documented (the contract is complete)."""

    documented = _taxonomy_slugs()
    emitted: set[str] = set()
    for doc in all_expected_documents():
        if doc.get("abort_reason"):
            emitted.add(doc["abort_reason"])
        for r in ((doc.get("esa") or {}).get("envelope") or {}).get("rejected_recipients", ()):
            emitted.add(r["reason"])
    assert emitted, "no golden document carries an abort_reason"
    assert emitted <= documented, f"not in docs/abort-taxonomy.md: {sorted(emitted - documented)}"


def test_every_documented_slug_is_written_by_the_code() -> None:
    """No slug in docs/abort-taxonomy.md that the code cannot emit (a stale contract is as bad as a missing one)."""
    source = "\n".join(p.read_text() for p in (ROOT / "enricher").rglob("*.py"))
    literals = set(re.findall(r"[\"']([a-z][a-z0-9_]+)[\"']", source))
    missing = sorted(s for s in _taxonomy_slugs() if s not in literals)
    assert not missing, f"documented but never written by enricher/: {missing}"


def test_every_ecs_field_of_the_field_list_is_in_the_ecs_doc() -> None:
    """docs/ecs.md names every ECS field of the field list (and so every ECS field a document can carry)."""
    from enricher.core import fields

    doc = (ROOT / "docs" / "ecs.md").read_text()
    named = set(re.findall(r"`([@a-z_][a-z0-9_.]*)`", doc))
    ecs = {f.name for f in fields.leaves() if f.origin == "ecs"}
    assert "source.ip" in ecs and "abort_reason" not in ecs and "esa.mid" not in ecs
    assert ecs - named == set()
