"""The native typing core gives exactly the events of the Python parser (the reference), on real lines,
generated corpora and random input; and it really types the common lines (it is not declining everything).

The tests that need the core run only where it is installed; `ESA_NATIVE=1` (CI) makes its absence a failure.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enricher.accel import native
from enricher.core.event import Event
from enricher.core.parsing.parser import Parser
from enricher.core.sessions.session import body_sum
from enricher.errors import ConfigError
from tests.conftest import ROOT, SAMPLES

try:
    native.module(True)
    AVAILABLE = True
except RuntimeError:
    AVAILABLE = False

needs_native = pytest.mark.skipif(not AVAILABLE, reason="native core not installed (make install builds it with cargo)")

FIELDS = ("kind", "appliance", "ts", "level", "raw", "mid", "icid", "dcid", "data", "tag", "ts_inferred")
SAMPLE_LINES = [
    line.rstrip("\n")
    for p in sorted([*SAMPLES.glob("*.log"), *SAMPLES.glob("*.s"), ROOT / "samples" / "demo-mail_logs.log"])
    for line in p.open(encoding="utf-8", errors="replace")
]
GOLDEN_LINES = [line for p in sorted((ROOT / "tests" / "golden").glob("*/input.log")) for line in p.read_text().splitlines()]
REAL_WORLD_LINES = [
    line for p in sorted((ROOT / "tests" / "data" / "real-world").glob("*.log")) for line in p.read_text().splitlines()
]


def _fields(ev: Event) -> tuple:
    """The event's fields, and its body sum: the native core's when it typed the line (it must equal what the
    Python side computes from the raw line when the core declines)."""
    own = ev.body_sum if ev.body_sum is not None else body_sum(ev.raw, ev.level)
    return (*(getattr(ev, f) for f in FIELDS), own)


def both(lines: list[str], appliance: str | None = None, reference_time: float = 1795780800.0) -> tuple[list, list]:
    """Events of the Python parser and of the native one, as comparable tuples."""
    from enricher.core.parsing.timestamps import TimeResolver

    out = []
    for want in (False, True):
        parser = Parser(TimeResolver(reference_time=reference_time), max_record_chars=4096, native=want)
        out.append([_fields(ev) for ev in parser.parse_lines(lines, appliance)])
    return out[0], out[1]


def test_required_core_is_installed() -> None:
    """CI sets ESA_NATIVE=1: a build that failed must fail the run, not fall back silently."""
    if native.mode() == "required":
        assert AVAILABLE, "ESA_NATIVE=1 but esa_enricher_native is not importable"
    with pytest.raises(ConfigError, match="ESA_NATIVE"):
        os.environ["ESA_NATIVE_SAVED"] = os.environ.get("ESA_NATIVE", "")
        try:
            os.environ["ESA_NATIVE"] = "maybe"
            native.mode()
        finally:
            os.environ["ESA_NATIVE"] = os.environ.pop("ESA_NATIVE_SAVED")


def test_off_means_python_only() -> None:
    assert Parser(native=False)._typer is None


@needs_native
def test_same_events_on_samples_and_goldens() -> None:
    py, nat = both(SAMPLE_LINES + GOLDEN_LINES + REAL_WORLD_LINES, appliance="sample")
    assert len(py) > 1500
    assert py == nat


@needs_native
def test_same_events_on_a_generated_corpus_and_most_lines_typed_natively(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gen_corpus  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    out = tmp_path / "corpus.log"
    gen_corpus.main(["--lines", "30000", "--out", str(out), "--seed", "7"])
    lines = out.read_text().splitlines(keepends=True)
    py, nat = both(lines)
    assert len(py) >= 29000 and py == nat
    # The native core must carry the common traffic, or it is only an expensive detour.
    parser = Parser(native=True)
    typed, stop = parser._typer.run(parser, lines, 0, "esa")
    declined = 0
    i = stop
    while i < len(lines):
        declined += 1
        typed, i = parser._typer.run(parser, lines, i + 1, "esa")
    assert declined / len(lines) < 0.01, f"{declined} of {len(lines)} lines declined"
    # ... and it hands the body sum over with them (the stitcher computes it only for declined lines).
    summed = sum(ev.body_sum is not None for ev in Parser(native=True).parse_lines(lines[:3000]))
    assert summed > 0.99 * 3000


_PREFIXES = st.sampled_from(["", "<22>", "<22>Nov 27 11:59:58 esa1 mail_logs: ", "Thu Nov 27 11:59:58 2026 "])
_MUTATIONS = st.sampled_from(["", " ", "  ", ":", "[", "]", "(", "'", '"', "0", "99999999999999999999", "\t", "é", "\x1c", "\r"])
_REAL = [line for line in SAMPLE_LINES + GOLDEN_LINES if line.strip()]


@needs_native
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_PREFIXES, st.sampled_from(_REAL), st.integers(0, 300), _MUTATIONS, st.booleans()), max_size=25))
def test_same_events_on_mutated_real_lines(items: list[tuple[str, str, int, str, bool]]) -> None:
    lines = []
    for prefix, line, at, mutation, cut in items:
        text = prefix + line if prefix and not line.startswith(("<", "Thu", "Fri")) else line
        text = text[:at] + mutation + (text[at + 1 :] if cut else text[at:])
        lines.append(text)
    py, nat = both(lines)
    assert py == nat


@needs_native
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60), max_size=10))
def test_same_events_on_random_printable_lines(bodies: list[str]) -> None:
    # Random bodies behind a valid envelope reach the body rules, not only the envelope checks.
    lines = [f"<22>Nov 27 11:59:58 esa1 mail_logs: Info: {b}" for b in bodies]
    lines += [f"Thu Nov 27 11:59:58 2026 Info: MID {b}" for b in bodies]
    py, nat = both(lines)
    assert py == nat


@needs_native
def test_records_typed_one_at_a_time_match() -> None:
    """`parse_record` (the Kafka path) with and without the core."""
    rng = random.Random(3)
    records = rng.sample(_REAL, 400)
    py_parser, nat_parser = Parser(native=False), Parser(native=True)
    for r in records:
        assert _fields(py_parser.parse_record(r, "k")) == _fields(nat_parser.parse_record(r, "k")), r


@needs_native
def test_events_made_through_slots_equal_events_made_by_calling_the_class() -> None:
    m = native.module(True)

    class Other:  # not a plain slots class: the core must call it instead
        def __init__(self, *args: object) -> None:
            self.args = args

    fast = m.Typer(Event, native.rule_tables(), 4096)
    called = m.Typer(Other, native.rule_tables(), 4096)
    assert fast.fast_events and not called.fast_events
    parser = Parser(native=False)
    for line in _REAL[:300]:
        a, b = fast.one(parser, line, "x"), called.one(parser, line, "x")
        assert (a is None) == (b is None)
        if a is not None:
            assert _fields(a) == b.args


EDGE_BODIES = [
    "MID 12,",
    "MID 12, ",
    "MID 12, Message Scanning Problem: Size limit exceeded  ",
    "MID 12 ICID 5 From: <a@b>   ",
    "MID 12  ICID 5 To: <a@b> Rejected by Receiving Control",
    "ICID 5 close   ",
    "ICID 5 close\t",
    "ICID 5 CLOSE",
    "ICID 99999999999999999999 close",
    "MID 1234567890123456789 queued for delivery",
    "MID 123456789012345678 queued for delivery",
    "MID 00012 ready 0012 bytes from <>",
    "Message finished MID 7 done",
    "Message 7 to RID [0, 1 ,2] pending till Thu Nov 27 12:00:00 2026",
    "Start MID 7 ICID 8 ",
    "DCID 3 TLS success protocol TLSv1.3 cipher X for example.com",
    "MID 5 Subject 'it''s \"quoted\"'",
    "MID 5 Subject \"\"",
    "CEF:0|Cisco|C100V Email Security Virtual Appliance|14.0|ESA_CONSOLIDATED_LOG_EVENT|Consolidated Log Event|5|ESAMID=5",
    "Time offset from UTC: 3600 seconds",
    "",
]


@needs_native
@pytest.mark.parametrize("body", EDGE_BODIES)
def test_same_events_on_edge_bodies(body: str) -> None:
    lines = [
        f"<22>Nov 27 11:59:58 esa1 mail_logs: Info: {body}",
        f"Nov 27 11:59:58 esa1 mail_logs[123]: Warning:  {body}",
        f"Thu Nov 27 11:59:58 2026 Info: {body}",
        f"Thu Nov  7 11:59:58 2026 Info: {body}",
        f"Thu Nov 7 11:59:58 2026 Info: {body}",
    ]
    py, nat = both(lines)
    assert py == nat


@needs_native
@pytest.mark.parametrize("host", ["Info", "xInfo", "IInfoI", "IIInf", "Warn", "Warning1"])
def test_the_body_sum_starts_at_the_first_level_word_even_inside_the_host(host: str) -> None:
    lines = [f"Nov 27 11:59:58 {host} mail_logs: Info: Start MID 1 ICID 2", f"Nov 27 11:59:58 {host} t: Warning: MID 1 x"]
    nat = [ev for ev in Parser(native=True).parse_lines(lines) if ev.body_sum is not None]
    assert len(nat) == 2  # typed by the core, which computed the sum
    assert [ev.body_sum for ev in nat] == [body_sum(ev.raw, ev.level) for ev in nat]


@needs_native
def test_same_events_when_the_stamp_cache_is_cleared_all_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core remembers each appliance's last stamp within a call; a cleared resolver cache (here after
    every few stamps) and a New Year inside the input must not make it disagree with Python."""
    from enricher.core.parsing import timestamps

    monkeypatch.setattr(timestamps, "_CACHE_MAX", 3)
    new_year = (ROOT / "tests" / "golden" / "core-new-year-syslog" / "input.log").read_text().splitlines()
    py, nat = both(_REAL[:1500] + new_year + _REAL[:200], reference_time=1798675200.0)
    assert py == nat


@needs_native
def test_a_parser_made_in_one_thread_works_in_another() -> None:
    """kafka-python runs rebalance listeners on its own thread: a pipeline (and its parser) may be built
    there and used by the main loop."""
    import threading

    from enricher.core.parsing.timestamps import TimeResolver

    made: list[Parser] = []
    t = threading.Thread(
        target=lambda: made.append(Parser(TimeResolver(reference_time=1795780800.0), max_record_chars=4096, native=True))
    )
    t.start()
    t.join()
    lines = _REAL[:300]
    assert [_fields(ev) for ev in made[0].parse_lines(lines, "sample")] == both(lines, "sample")[0]


@needs_native
def test_parse_records_matches_parse_record_one_by_one() -> None:
    """The service types a whole poll at once; each record must come out as `parse_record` makes it."""
    from enricher.core.parsing.timestamps import TimeResolver

    rng = random.Random(11)
    texts = rng.sample(_REAL, 500) + ["", "x\ny", "Thu Nov 27 11:59:58 2026 Info: MID 5 queued for delivery", "é"]
    rng.shuffle(texts)
    keys = [rng.choice([None, "", "esa-key-1", "esa-key-2"]) for _ in texts]

    def parser(use_native: bool) -> Parser:
        return Parser(TimeResolver(reference_time=1795780800.0), native=use_native)

    one = parser(False)
    expected = [_fields(one.parse_record(t, k)) for t, k in zip(texts, keys, strict=True)]
    for use_native in (False, True):
        got = [_fields(ev) for ev in parser(use_native).parse_records(texts, keys)]
        assert got == expected, f"native={use_native}"
