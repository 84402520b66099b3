"""Every input line is accounted for: the summary's `line_outcomes` (error documents, lines in sessions, and
each reason a line is in no document) add up to `lines`, and the physical lines read are those records plus
blank lines and continuations of wrapped records. Checked on every golden input, the demo and every sample.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLES, replay_in_process

GOLDEN = ROOT / "tests" / "golden"
INPUTS = [
    *[(p / "input.log", p / "args") for p in sorted(GOLDEN.iterdir()) if (p / "input.log").exists()],
    (ROOT / "samples" / "demo-mail_logs.log", None),
    *[(p, None) for p in sorted(SAMPLES.glob("*")) if p.suffix in (".log", ".s")],
]


def replay_summary(path: Path, args: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The summary and documents of `esa-enricher replay PATH ARGS`, in process."""
    pipeline, docs = replay_in_process(path, args)
    return pipeline.summary(), docs


@pytest.mark.parametrize(("path", "args_file"), INPUTS, ids=lambda p: p.parent.name if p and p.name == "input.log" else getattr(p, "name", ""))
def test_every_line_is_accounted_for(path: Path, args_file: Path | None) -> None:
    args = shlex.split(args_file.read_text()) if args_file is not None and args_file.exists() else []
    if path.parent == SAMPLES:
        args = ["--appliance", "sample"]
    summary, docs = replay_summary(path, args)
    outcomes = summary["line_outcomes"]
    assert sum(outcomes.values()) == summary["lines"], outcomes
    assert all(n >= 0 for n in outcomes.values())
    assert outcomes["error_document"] == sum(1 for d in docs if d["event"]["kind"] == "pipeline_error")
    # After the end of input every delivery-connection line is known to be in messages' documents or not.
    assert summary["dcid_lines_in_messages"] + summary["dcid_lines_unmatched"] == outcomes["delivery_connection"]
    read = summary["input_lines"]
    physical = sum(1 for _ in path.open("rb"))
    assert read["read"] == physical == summary["lines"] + read["blank"] + read["joined"]
    if outcomes["session"]:
        assert summary["sessions"] > 0


def test_lines_in_no_document_are_counted_by_reason() -> None:
    """Delivery-connection, ICID 0 and uncorrelated lines make no document of their own: each has its count."""
    from enricher.core.parsing.parser import Parser
    from enricher.core.parsing.timestamps import TimeResolver
    from enricher.core.pipeline import Pipeline
    from enricher.core.sessions.stitcher import Stitcher

    lines = [
        "Thu Nov 27 10:00:00 2026 Info: New SMTP DCID 7 interface 192.0.2.10 address 203.0.113.5 port 25",
        "Thu Nov 27 10:00:00 2026 Info: DCID 7 TLS success protocol TLSv1.2 cipher AES",
        "Thu Nov 27 10:00:00 2026 Info: DCID 7 close",
        "Thu Nov 27 10:00:00 2026 Info: ICID 0 lost",
        "Thu Nov 27 10:00:00 2026 Info: ICID 0 TCPREFUSE SG BLOCKED match 10.0.0.1 SBRS -5.0",
        "Thu Nov 27 10:00:00 2026 Info: Logfile rolled over",
        "Thu Nov 27 10:00:00 2026 Info: MID 5 some wording nobody knows",
        "Thu Nov 27 10:00:00 2026 Info: no header here at all",
    ]
    p = Pipeline(Parser(TimeResolver(reference_time=1795780800.0)), Stitcher())
    docs = [*p.process_lines(lines), *p.flush()]
    s = p.summary()
    assert s["line_outcomes"] == {
        "error_document": 1,
        "session": 2,  # the ICID 0 TCPREFUSE document and the MID 5 session
        "system": 1,
        "uncorrelated": 0,
        "icid_zero": 1,
        "delivery_connection": 3,
        "duplicates": 0,
    }
    assert sum(s["line_outcomes"].values()) == s["lines"] == len(lines)
    assert len(docs) == 3
