"""The stamp of a record without one (`Parser._inferred`): its appliance's clock, the newest stamp read (not
the last), and for a copy of such a record within the lateness, its original's stamp. In both parsers."""

from __future__ import annotations

import pytest

from enricher.accel import native
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver

T = 1408014270.0  # Thu Aug 14 11:04:30 2014 UTC
BOUNCE = "Double bounce: the notification for MID 1404 could not be delivered"
MODES = [False, True] if native.module() is not None else [False]


def line(second: int, body: str) -> str:
    """A native log line stamped 11:04:<second>."""
    return f"Thu Aug 14 11:04:{second:02d} 2014 Info: {body}"


def stamps(lines: list[str], want_native: bool, lateness: float = 5.0) -> list[float | None]:
    """Each record's event time, through one parser."""
    parser = Parser(TimeResolver(), native=want_native, lateness=lateness)
    return [ev.ts for ev in parser.parse_lines(lines)]


@pytest.mark.parametrize("want_native", MODES)
def test_a_copy_of_an_older_line_does_not_date_the_next_unstamped_record(want_native: bool) -> None:
    got = stamps([line(35, "Start MID 1404 ICID 5"), line(37, "ICID 5 close"), line(35, "Start MID 1404 ICID 5"), BOUNCE], want_native)
    assert got == [T + 5, T + 7, T + 5, T + 7]


@pytest.mark.parametrize("want_native", MODES)
def test_a_copy_of_an_unstamped_record_keeps_its_stamp_within_the_lateness(want_native: bool) -> None:
    lines = [line(37, "ICID 5 close"), BOUNCE, line(38, "ICID 6 close"), BOUNCE, line(43, "ICID 7 close"), BOUNCE]
    # The third is 6 s after the first was dated: beyond the 5 s lateness, a record of its own.
    assert stamps(lines, want_native) == [T + 7, T + 7, T + 8, T + 7, T + 13, T + 13]


@pytest.mark.parametrize("want_native", MODES)
def test_file_headers_do_not_move_the_clock(want_native: bool) -> None:
    # Stamped in local time (UTC+1) before their own offset applies: an hour ahead of the lines after them.
    lines = [line(30, "Begin Logfile"), line(30, "Version: 8.5.6-074 SN: X"), line(30, "Time offset from UTC: 3600 seconds")]
    got = stamps([*lines, line(31, "ICID 5 close"), BOUNCE], want_native)
    assert got[3:] == [T + 1 - 3600, T + 1 - 3600]


def test_the_memory_of_unstamped_records_survives_a_restart() -> None:
    first = Parser(TimeResolver(), native=False)
    list(first.parse_lines([line(37, "ICID 5 close"), BOUNCE]))
    restored = Parser(TimeResolver(), native=False)
    restored.load_state(first.state())
    assert [ev.ts for ev in restored.parse_lines([line(39, "ICID 6 close"), BOUNCE])] == [T + 9, T + 7]


def test_the_memory_of_unstamped_records_is_bounded() -> None:
    parser = Parser(TimeResolver(), native=False)
    list(parser.parse_lines([line(37, "ICID 5 close"), *(f"{BOUNCE} #{i}" for i in range(5000))]))
    assert 0 < len(parser._unstamped["esa"]) <= 1024
