"""The hot loops that inline a slower general path give what that path gives, event for event.

`Pipeline.process_lines` (replay) inlines `process_joined`, `Pipeline.event_documents` (Kafka)
`process_event`; this feeds the same events through each and compares the documents and the summary, on
every golden input (the shapes, endings and counters the product knows) and the demo sample, so a change
made to one path only fails here."""

from __future__ import annotations

import orjson
import pytest

from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.stitcher import StitchConfig, Stitcher
from tests.conftest import ROOT

INPUTS = [*sorted((ROOT / "tests" / "golden").glob("*/input.log")), ROOT / "samples" / "demo-mail_logs.log"]


def _pipeline(keep_raw: bool) -> Pipeline:
    return Pipeline(Parser(TimeResolver(reference_time=1795780800.0)), Stitcher(StitchConfig(keep_raw=keep_raw)))


def _run(lines: list[str], how: str, keep_raw: bool) -> tuple[list[bytes], dict]:
    p = _pipeline(keep_raw)
    docs: list[dict] = []
    if how == "process_lines":
        docs += p.process_lines(lines)
    else:
        # Its own parser (the summary counts its input lines); read as it goes for `process_joined`, which
        # needs the parser's marks of the batch being read.
        events = p.parser.parse_lines(lines)
        for ev in events if how == "process_joined" else list(events):
            docs += getattr(p, how)(ev)
    docs += p.flush()
    return [orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in docs], p.summary()


@pytest.mark.parametrize("keep_raw", [True, False], ids=["raw", "no-raw"])
def test_the_inlined_loops_give_what_process_event_gives(keep_raw: bool) -> None:
    lines = [line for path in INPUTS for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    reference = _run(lines, "process_event", keep_raw)
    assert len(reference[0]) > 100 and reference[1]["unparsed"]  # documents of every kind, error ones included
    assert _run(lines, "event_documents", keep_raw) == reference
    # A file's lines: a line joined onto a copy is split off again (golden glue-copy-before-continuation).
    joined = _run(lines, "process_joined", keep_raw)
    assert joined != reference and _run(lines, "process_lines", keep_raw) == joined
