"""Envelope variants of shared/docs/log-formats.md, table-driven."""

from __future__ import annotations

import calendar

import pytest

from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver, parse_zone

REF = calendar.timegm((2026, 11, 28, 0, 0, 0))
T_2026_11_27_12 = calendar.timegm((2026, 11, 27, 12, 0, 0))

CASES = [
    # (line, appliance, ts, level, tag, kind)
    ("Thu Nov 27 12:00:00 2026 Info: ICID 5 close", "esa", T_2026_11_27_12, "Info", None, "icid_close"),
    ("Thu Nov 27 12:00:00 Info: ICID 5 close", None, None, None, None, "unparsed"),
    ("Fri Nov 27 12:00:00 2026 Info: ICID 5 close", "esa", T_2026_11_27_12, "Info", None, "icid_close"),
    ("<166>Nov 27 12:00:00 mail_logs: Info: ICID 5 close", "esa", T_2026_11_27_12, "Info", "mail_logs", "icid_close"),
    (
        "<94>Nov 27 12:00:00 esa1.example.net mail_logs: Info: ICID 5 close",
        "esa1.example.net",
        T_2026_11_27_12,
        "Info",
        "mail_logs",
        "icid_close",
    ),
    (
        "Nov 27 12:00:00 10.0.1.1 MAIL_SecurityAudit: Info: ICID 5 close",
        "10.0.1.1",
        T_2026_11_27_12,
        "Info",
        "MAIL_SecurityAudit",
        "icid_close",
    ),
    (
        "Nov 27 12:00:00 2026 mx07.example.net syslog_mail: Info: ICID 5 close",
        "mx07.example.net",
        T_2026_11_27_12,
        "Info",
        "syslog_mail",
        "icid_close",
    ),
    (
        "<22>1 2026-11-27T21:00:00+09:00 esa3 mail_logs - - - Info: ICID 5 close",
        "esa3",
        T_2026_11_27_12,
        "Info",
        "mail_logs",
        "icid_close",
    ),
    (
        '<22>1 2026-11-27T12:00:00Z esa3 mail_logs - - [origin ip="192.0.2.1"] Info: ICID 5 close',
        "esa3",
        T_2026_11_27_12,
        "Info",
        "mail_logs",
        "icid_close",
    ),
    (
        "<111>Nov 27 12:00:05 relay ESA: Fri Nov 27 12:00:00 2026 Info: ICID 5 close",
        "relay",
        T_2026_11_27_12,
        "Info",
        "ESA",
        "icid_close",
    ),
    (
        "Nov 27 12:00:00 mailcleaner1.example.net Info: ICID 5 close",
        "mailcleaner1.example.net",
        T_2026_11_27_12,
        "Info",
        None,
        "icid_close",
    ),
    (
        "Nov 27 12:00:00 192.0.2.253 Original Address=192.0.2.10 Nov 27 12:00:00 Syslog-Test: Info: ICID 5 close",
        "192.0.2.10",
        T_2026_11_27_12,
        "Info",
        "Syslog-Test",
        "icid_close",
    ),
    (
        "Nov 27 12:00:00 splunk_mail_logs_indexer1: Warning: ICID 5 close",
        "esa",
        T_2026_11_27_12,
        "Warning",
        "splunk_mail_logs_indexer1",
        "icid_close",
    ),
    ("forwarder app: Fri Nov 27 12:00:00 2026 Info: ICID 5 close", "esa", T_2026_11_27_12, "Info", None, "icid_close"),
]


@pytest.mark.parametrize("line,appliance,ts,level,tag,kind", CASES)
def test_envelope_variants(
    line: str, appliance: str | None, ts: float | None, level: str | None, tag: str | None, kind: str
) -> None:
    ev = Parser(TimeResolver(reference_time=REF)).parse_record(line)
    assert ev.kind == kind
    if kind == "unparsed":
        assert ev.raw == line  # kept whole
        return
    assert (ev.appliance, ev.ts, ev.level, ev.tag, ev.icid) == (appliance, ts, level, tag, 5)


def test_per_host_zone_applies_to_yearless_stamps() -> None:
    times = TimeResolver(zones={"esa1": parse_zone("+09:00")}, reference_time=REF)
    ev = Parser(times).parse_record("<22>Nov 27 21:00:00 esa1 mail_logs: Info: ICID 5 close")
    assert ev.ts == T_2026_11_27_12


def test_native_header_offset_applies_to_following_lines() -> None:
    lines = [
        "Fri Nov 27 21:00:00 2026 Info: Time offset from UTC: 32400 seconds",
        "Fri Nov 27 21:00:00 2026 Info: ICID 5 close",
    ]
    events = list(Parser().parse_lines(lines))
    assert events[0].kind == "log_time_offset"
    assert events[1].ts == T_2026_11_27_12


def test_wrapped_lines_join_the_previous_record() -> None:
    lines = [
        "Thu Aug 14 11:04:31 2014 Info: New SMTP ICID 10293 interface Management",
        "(192.168.0.199) address 192.168.0.200 reverse dns host ns.example.com verified no",
        "Thu Aug 14 11:04:31 2014 Info: ICID 10293 RELAY SG RELAY_SG match 192.168.0.200",
        "SBRs not enabled",
    ]
    events = list(Parser().parse_lines(lines))
    assert [e.kind for e in events] == ["new_icid", "hat"]
    assert events[0].data == {
        "interface": "Management",
        "interface_ip": "192.168.0.199",
        "source_ip": "192.168.0.200",
        "reverse_dns": "ns.example.com",
        "verified": "no",
    }
    assert events[0].raw.endswith("verified no") and "\n" not in events[0].raw
    assert events[1].get("sbrs") == "not enabled"


def test_bare_bodies_are_records_not_continuations() -> None:
    lines = ["MID 68119155 queued for delivery", "Message finished MID 68119155 done"]
    events = list(Parser().parse_lines(lines))
    assert [e.kind for e in events] == ["queued", "message_finished"]
    assert all(e.ts is None and e.ts_inferred for e in events)


def test_headerless_garbage_is_kept_as_unparsed() -> None:
    ev = Parser().parse_record("this is not a log line")
    assert ev.kind == "unparsed" and ev.raw == "this is not a log line"
    assert ev.data == {"reason": "no_header"}


def test_overlong_record_is_truncated_and_flagged() -> None:
    line = "<22>Nov 27 12:00:00 esa1 mail_logs: Info: MID 1 Subject '" + "x" * 200_000 + "'"
    ev = Parser(max_record_chars=1000).parse_record(line)
    assert len(ev.raw) == 1000
    assert ev.get("truncated") is True


def test_parse_record_and_parse_lines_agree() -> None:
    """The record path (Kafka, syslog) and the line path (files) give the same events."""
    from tests.conftest import ROOT

    lines = [
        line
        for p in sorted((ROOT / "tests" / "golden").glob("*/input.log"))
        for line in p.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    probe = Parser(TimeResolver(reference_time=REF))
    lines = [line for line in lines if probe.envelopes.parse(line, "esa") is not None]  # no wrapped lines
    a = Parser(TimeResolver(reference_time=REF))
    b = Parser(TimeResolver(reference_time=REF))
    by_lines = [(e.kind, e.appliance, e.ts, e.mid, e.icid, e.dcid, e.data) for e in a.parse_lines(lines)]
    by_record = [(e.kind, e.appliance, e.ts, e.mid, e.icid, e.dcid, e.data) for e in map(b.parse_record, lines)]
    assert len(by_lines) == len(by_record) > 300
    assert by_lines == by_record
