"""Property tests: the parser, stitcher and document builder never raise, whatever comes in."""

from __future__ import annotations

import random

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enricher.core.documents import DocumentConfig, build_document
from enricher.core.parsing.parser import Parser
from enricher.core.sessions.stitcher import StitchConfig, Stitcher
from tests.conftest import ROOT, SAMPLES

CORPUS = [
    line.rstrip("\n")
    for p in sorted([*SAMPLES.glob("*.log"), *SAMPLES.glob("*.s"), ROOT / "samples" / "demo-mail_logs.log"])
    for line in p.open(encoding="utf-8", errors="replace")
    if line.strip()
]


def _run(lines: list[str], cap: int = 50) -> None:
    st_ = Stitcher(StitchConfig(max_open_sessions=cap, grace_seconds=1, idle_timeout_seconds=600))
    parser = Parser(max_record_chars=4096)
    cfg = DocumentConfig()
    for ev in parser.parse_lines(lines):
        for s in st_.feed(ev):
            orjson.dumps(build_document(s, cfg, st_.appliances.get(s.appliance)))
    for s in st_.flush():
        orjson.dumps(build_document(s, cfg))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(), max_size=20))
def test_arbitrary_text(lines: list[str]) -> None:
    _run(lines)


@settings(max_examples=200)
@given(st.lists(st.binary(), max_size=20))
def test_arbitrary_bytes_decoded_leniently(chunks: list[bytes]) -> None:
    _run([c.decode("utf-8", errors="replace") for c in chunks])


_PREFIXES = st.sampled_from(
    [
        "",
        "<22>",
        "<22>Nov 27 12:00:00 esa1 mail_logs: Info: ",
        "Fri Nov 27 12:00:00 2026 Info: ",
        "MID 1 ",
        "ICID 2 ",
        "<22>1 2026-11-27T12:00:00Z esa1 mail_logs - - - Info: ",
    ]
)


@settings(max_examples=300)
@given(st.lists(st.tuples(_PREFIXES, st.sampled_from(CORPUS), st.integers(0, 400), st.text(max_size=8)), max_size=30))
def test_mutated_real_lines(items: list[tuple[str, str, int, str]]) -> None:
    lines = []
    for prefix, line, cut, junk in items:
        lines.append(prefix + line[:cut] + junk + line[cut:])
    _run(lines)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_shuffled_real_lines(seed: int) -> None:
    lines = list(CORPUS)
    random.Random(seed).shuffle(lines)
    _run(lines[:600], cap=20)


def test_one_megabyte_lines() -> None:
    big = "x" * (1 << 20)
    _run(
        [big, "<22>Nov 27 12:00:00 esa1 mail_logs: Info: MID 1 Subject '" + big + "'", "MID 1 " + big, big + "\n" + big]
    )


def test_invalid_utf8_bytes_in_a_real_line() -> None:
    raw = b"<22>Nov 27 12:00:00 esa1 mail_logs: Info: MID 1 Subject '\xc3\x28\xa0\xa1'"
    _run([raw.decode("utf-8", errors="replace")])
