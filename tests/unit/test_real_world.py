"""Real-world lines outside the samples (tests/data/real-world, provenance in SOURCES.md there), through `replay`.

Issue 9's bar: at most 2 % of the records unparsed, no record glued onto another (a page's line wraps are kept
in these files), and every record in the summary's counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enricher.cli import main
from enricher.core.parsing.envelope import EnvelopeParser, is_bare_body
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver
from tests.conftest import ROOT

REAL_WORLD = ROOT / "tests" / "data" / "real-world"
FILES = sorted(REAL_WORLD.glob("*.log"))


def _replay(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[dict], dict]:
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(path), "-o", str(out), "--no-progress", "--year", "2020"]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    return [json.loads(line) for line in out.read_text().splitlines()], summary


def test_real_world_files_from_several_publishers() -> None:
    assert len(FILES) >= 5
    listed = (REAL_WORLD / "SOURCES.md").read_text(encoding="utf-8")
    assert all(f"`{p.name}`" in listed for p in FILES), "every file has its provenance row"


def test_at_most_two_percent_unparsed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = unparsed = 0
    for path in FILES:
        _, summary = _replay(path, tmp_path, capsys)
        lines += summary["lines"]
        unparsed += summary["unparsed"]
    assert lines >= 60
    assert unparsed / lines <= 0.02, f"{unparsed}/{lines} unparsed"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem[:50])
def test_no_record_glued_onto_another(path: Path) -> None:
    """Every physical line that starts a record (a header, or a bare ESA body) starts one of the parser's."""
    physical = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    probe = EnvelopeParser(TimeResolver())
    starts = [line for line in physical if probe.parse(line, "esa") is not None or is_bare_body(line.lstrip())]
    records = [ev.raw for ev in Parser(TimeResolver(reference_time=1.6e9)).parse_lines(physical)]
    pending = iter(starts)
    want = next(pending, None)
    for raw in records:
        if want is not None and raw.startswith(want):
            want = next(pending, None)
    assert want is None, f"record start {want!r} was glued onto the record before it"
    assert len(records) <= len(physical)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem[:50])
def test_every_record_is_in_the_summary(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A record is in a document (its raw lines, or an error document) or in one of the summary's counts."""
    docs, summary = _replay(path, tmp_path, capsys)
    records = [ev.raw for ev in Parser(TimeResolver(reference_time=1.6e9)).parse_lines(path.read_text().splitlines())]
    assert summary["lines"] == len(records)
    in_docs = set()
    for d in docs:
        in_docs.update((d.get("esa") or {}).get("raw") or ())
        original = (d.get("event") or {}).get("original")
        if original:
            in_docs.add(original)
    outside = [r for r in records if r not in in_docs]
    counted = summary["system_lines"] + summary["dcid_lines_in_messages"] + summary["dcid_lines_unmatched"]
    assert len(outside) == counted, outside
