"""Wording variants and the lines real deployments write (issue 9): each body's kind, identifiers and fields,
in the Python parser and in the native core (which must type them alike or decline them)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enricher.core.parsing.parser import Parser
from enricher.core.parsing.shapes import SYSTEM_KINDS, UNRECOGNIZED_KINDS, type_body
from enricher.core.parsing.timestamps import TimeResolver
from tests.conftest import ROOT
from tests.unit.test_native import AVAILABLE, both, needs_native

# body → (kind, mid, icid, dcid, a subset of the fields)
CASES: list[tuple[str, tuple[str, int | None, int | None, int | None, dict[str, Any]]]] = [
    (  # AsyncOS 11+ (Splunk's documentation): `From: <…> To: <…> RID r`, no `to`
        "Bounced: DCID 8413617 MID 19338947 From: <m@example.com> To: <z@example.net> RID 0 - 5.4.7 - "
        "Delivery expired (message too old) ('000', ['timeout'])",
        (
            "bounced",
            19338947,
            None,
            8413617,
            {"from": "m@example.com", "to": "z@example.net", "rid": 0, "code": "5.4.7"},
        ),
    ),
    (
        "Delayed: DCID 8414309 MID 19410908 From: <w@example.com> To: <m@example.net> RID 0 - 4.3.2 - "
        "Not accepting messages at this time ('421', ['4.3.2 try again later'])",
        (
            "delayed",
            19410908,
            None,
            8414309,
            {"rid": 0, "code": "4.3.2", "reason": "Not accepting messages at this time"},
        ),
    ),
    (  # the elastic sample: no space after `From:`
        "Bounced: DCID 2 MID 15232 From:<a@example.com> To:<b@example.com> RID 0 - 5.1.0 - Unknown address error ('550', [])",
        ("bounced", 15232, None, 2, {"from": "a@example.com", "rid": 0}),
    ),
    (  # one line for several recipients
        "Bounced: DCID 3 MID 4 to RID [0, 1] - 5.1.0 - Unknown address error ('550', ['Relaying denied']) []",
        ("bounced", 4, None, 3, {"rids": [0, 1], "code": "5.1.0"}),
    ),
    (  # AsyncOS 3.x
        "Delayed: DCID: 4370 Message 10800 to 0 - 4.4.0 - Other network problem ('000', ['[Errno 54] reset']) []",
        ("delayed", 10800, None, 4370, {"rid": 0, "code": "4.4.0"}),
    ),
    (
        "MID 14: Skip AMP Engine check",  # `Trace: MID 14: …`
        ("mid_note", 14, None, None, {"detail": "Skip AMP Engine check"}),
    ),
    (
        "MID: 12 Message filter Name: strip_macros",
        ("mid_note", 12, None, None, {"detail": "Message filter Name: strip_macros"}),
    ),
    ("MID 14 ICID 14 TLS read 126 bytes (0.0 seconds)", ("mid_note", 14, 14, None, {})),
    (
        "MID 15180223, message scanning error: Size Limit Exceeded",
        ("scan_problem", 15180223, None, None, {"problem": "Size Limit Exceeded"}),
    ),
    ("MID 4 ICID 4 From: x@example.com", ("mail_from", 4, 4, None, {"address": "x@example.com"})),
    ("MID 4 ICID 4 RID 0 To: y@example.com", ("rcpt_to", 4, 4, None, {"address": "y@example.com", "rid": 0})),
    ("MID 4 ready 280 bytes from x@example.com", ("ready", 4, None, None, {"size": 280, "address": "x@example.com"})),
    ("MID 6 ready 100 bytes", ("ready", 6, None, None, {"size": 100})),
    ("MID 7 ICID 9 Invalid recipient address: 'RCPT TO:<>'", ("rcpt_invalid", 7, 9, None, {"detail": "'RCPT TO:<>'"})),
    (
        "ICID 493771866 MID 340448731 Invalid recipient address:  'RCPT TO:<>'",
        ("rcpt_invalid", 340448731, 493771866, None, {}),
    ),
    (
        "LDAP: Drop query CorpLDAP.ldapaccept MID 349817 RID 1 address d@example.com",
        ("ldap_reject", 349817, None, None, {"query": "Drop", "rid": 1, "address": "d@example.com"}),
    ),
    (
        "LDAP: Bounce query CorpLDAP.ldapaccept MID 718417 RID 2 address e@example.com",
        ("ldap_reject", 718417, None, None, {"query": "Bounce"}),
    ),
    ("LDAP: unable to process, MID 4069647 requeued", ("mid_note", 4069647, None, None, {})),
    ("ISQ: Quarantined MID 55", ("euq_quarantined", 55, None, None, {})),
    ("ISQ: Released MID 55 by admin", ("mid_note", 55, None, None, {})),
]


@pytest.mark.parametrize(("body", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_body_is_typed(body: str, expected: tuple) -> None:
    kind, mid, icid, dcid, fields = expected
    got = type_body(body)
    assert got[:4] == (kind, mid, icid, dcid)
    assert fields.items() <= (got[4] or {}).items()


def _native_lines(bodies: list[str], level: str = "Info") -> list[str]:
    return [f"Wed Sep  6 13:13:16 2023 {level}: {b}" for b in bodies]


@needs_native
def test_native_core_types_them_alike_or_declines() -> None:
    lines = _native_lines([b for b, _ in CASES]) + _native_lines(["GRAYMAIL: No Actions Applied"], "Trace")
    py, nat = both(lines, appliance="esa")
    assert py == nat


def test_unidentified_debug_lines_are_system_lines_others_stay_unparsed() -> None:
    parser = Parser(TimeResolver(reference_time=1.7e9), native=False)
    events = list(
        parser.parse_lines(
            [
                "Wed Sep  6 13:13:16 2023 Trace: GRAYMAIL: No Actions Applied",
                "Wed Sep  6 13:13:16 2023 Debug: RPC client _message_loop sleeping when dequeuing a null entry",
                "Wed Sep  6 13:13:16 2023 Info: GRAYMAIL: No Actions Applied",  # not debug: an unknown shape
                "Wed Sep  6 13:13:16 2023 Trace: MID 14 something new",  # names a message: never a system line
            ]
        )
    )
    assert [e.kind for e in events] == ["system_debug", "system_debug", "unparsed", "mid_unrecognized"]
    assert "system_debug" in SYSTEM_KINDS


def test_a_typed_record_is_never_damaged_by_the_line_after_it() -> None:
    parser = Parser(TimeResolver(reference_time=1.4e9), native=False)
    events = list(
        parser.parse_lines(
            [
                "Thu Aug 14 11:04:37 2014 Info: ICID 10293 close",
                "Double bounce: the notification for MID 1404 could not be delivered",
                "Thu Aug 14 11:04:36 2014 Info: MID 1404 ready 100 bytes",
                "from <sender@example.com>",
                "Thu Aug 14 11:04:36 2014 Info: New SMTP ICID 10294 interface Management",
                "garbage that makes nothing typed",
            ]
        )
    )
    assert [e.kind for e in events] == ["icid_close", "unparsed", "ready", "unparsed", "unparsed"]
    assert events[0].raw == "Thu Aug 14 11:04:37 2014 Info: ICID 10293 close"
    assert events[1].data == {"reason": "no_header"}
    assert events[2].data == {"size": 100, "address": "sender@example.com"}  # the wrap joined: it types
    assert events[4].raw == "garbage that makes nothing typed"  # joining typed nothing: both stay as they were


_GOLDEN_RECORDS = [
    line
    for p in sorted((ROOT / "tests" / "golden").glob("*/input.log"))
    for line in p.read_text().splitlines()
    if line[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # native file lines: each starts a record
]


def _kind_alone(record: str) -> str:
    return next(iter(Parser(TimeResolver(reference_time=1.8e9), native=False).parse_lines([record]))).kind


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(_GOLDEN_RECORDS), st.sampled_from(["", "x", "Double bounce: x", ") y", "SBRS 1.0"])),
        max_size=30,
    )
)
def test_a_typed_record_keeps_its_kind_whatever_line_follows(items: list[tuple[str, str]]) -> None:
    """Records with any header-less line after them: each still starts a record of its own, a typed one keeps
    its kind, and a line joins the record before it only when the joined record types."""
    lines = [x for record, after in items for x in (record, after) if x]
    events = list(Parser(TimeResolver(reference_time=1.8e9), native=False).parse_lines(lines))
    records = [ev for ev in events if ev.raw[:3] in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")]
    assert len(records) == len(items)
    for ev, (record, _after) in zip(records, items, strict=True):
        assert ev.raw.startswith(record)
        alone = _kind_alone(record)
        if alone not in UNRECOGNIZED_KINDS:
            assert ev.kind == alone, (record, ev.raw)
        if ev.raw != record:
            assert ev.kind not in UNRECOGNIZED_KINDS
    if AVAILABLE:  # the native core's runs end at such lines: the joining is the same
        py, nat = both(lines, reference_time=1.8e9)
        assert py == nat
