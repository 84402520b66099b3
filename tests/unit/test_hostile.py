"""Hostile input never stops the pipeline: numbers beyond the mapped `long`, impossible dates, control and
invalid bytes, huge lines. Each line is either typed with values that fit the mapping or kept whole as an
error document with a counted reason; `replay`, the NDJSON sink and the state checkpoint never raise.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from enricher.accel import native
from enricher.cli import main
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.shapes import LONG_MAX, type_body
from enricher.core.parsing.timestamps import TimeResolver
from enricher.core.sessions.state import decode_state, encode_state
from enricher.core.sessions.stitcher import Stitcher

HUGE_MID = "Thu Nov 27 10:00:00 2026 Info: Start MID 999999999999999999999 ICID 5\n"
MODES = ["0", "1"] if native.module() is not None else ["0"]


def replay_bytes(data: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[dict], dict]:
    """`esa-enricher replay` of raw bytes, in process: its documents and its summary."""
    src = tmp_path / "in.log"
    src.write_bytes(data)
    out = tmp_path / "out.ndjson"
    assert main(["replay", str(src), "-o", str(out), "--no-progress", *args]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    return [json.loads(line) for line in out.read_text().splitlines()], summary


@pytest.mark.parametrize("mode", MODES)
def test_huge_mid_is_an_error_document_not_a_crash(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESA_NATIVE", mode)
    data = (HUGE_MID + HUGE_MID.replace("Start MID", "Message finished MID").replace(" ICID 5", " done")).encode()
    docs, summary = replay_bytes(data, tmp_path, capsys)
    assert [d["error"]["code"] for d in docs] == ["number_out_of_range"] * 2
    assert docs[0]["event"]["original"] == HUGE_MID.rstrip("\n")
    assert summary["unparsed_by_reason"] == {"number_out_of_range": 2}
    assert summary["lines"] == 2


def test_every_integer_a_line_carries_is_checked() -> None:
    """Identifiers, RID lists, links to other MIDs and plain counts alike: one out of range, the line is unparsed."""
    big = str(LONG_MAX + 1)
    bodies = [
        f"Start MID {big} ICID 1",
        f"Start MID 1 ICID {big}",
        f"MID {big} ready 10 bytes from <a@b>",
        f"MID 1 ready {big} bytes from <a@b>",
        f"MID 1 ICID 2 RID {big} To: <a@b>",
        f"MID 1 was split creating MID {big}",
        f"Delivery start DCID 3 MID 1 to RID [0, {big}]",
        f"New SMTP DCID 3 interface 10.0.0.1 address 10.0.0.2 port {big}",
        f"ICID {big} close",
        f"DCID {big} close",
        f"Time offset from UTC: -{LONG_MAX + 2} seconds",
        f"CEF:0|Cisco|ESA|14.0|ESA_CONSOLIDATED_LOG_EVENT|x|1|ESAMID={big} ESAICID=2",
    ]
    for body in bodies:
        kind, mid, icid, dcid, data = type_body(body)
        assert (kind, mid, icid, dcid, data) == ("unparsed", None, None, None, {"reason": "number_out_of_range"}), body
    # The largest long is still a number; leading zeros do not make a small number large.
    assert type_body(f"Start MID {LONG_MAX} ICID 1")[1] == LONG_MAX
    assert type_body("Start MID 000000000000000000000000042 ICID 1")[1] == 42


@pytest.mark.skipif(native.module() is None, reason="native core not installed")
def test_both_parsers_agree_on_huge_numbers() -> None:
    lines = [
        "Thu Nov 27 10:00:00 2026 Info: Start MID 999999999999999999999 ICID 5",
        "Thu Nov 27 10:00:00 2026 Info: Start MID 9223372036854775807 ICID 5",
        "Thu Nov 27 10:00:00 2026 Info: Start MID 9223372036854775808 ICID 5",
        "Thu Nov 27 10:00:00 2026 Info: MID 7 ready 123456789012345678 bytes from <a@b>",
        "Nov 27 10:00:00 esa1 mail_logs: Info: MID 7 ready 1234567890123456789012 bytes from <a@b>",
        "Nov 27 10:00:00 esa1 mail_logs: Info: Delivery start DCID 3 MID 1 to RID [0, 99999999999999999999]",
    ]
    got = []
    for want in (False, True):
        parser = Parser(TimeResolver(reference_time=1795780800.0), native=want)
        got.append([(e.kind, e.mid, e.icid, e.dcid, e.data, e.ts) for e in parser.parse_lines(lines)])
    assert got[0] == got[1]


def test_stamps_outside_the_event_time_range_are_no_clock_reading() -> None:
    """A year the parser can read but no appliance writes (0001, 9999) is not an event time: the line keeps
    the last stamp of its appliance, so no duration or date in a document can leave its mapped range."""
    parser = Parser(TimeResolver(reference_time=1795780800.0), native=False)
    evs = list(
        parser.parse_lines(
            [
                "Thu Nov 27 10:00:00 2026 Info: Start MID 1 ICID 5",
                "Fri Nov 27 10:00:08 9999 Info: MID 1 Subject 'far future'",
                "Mon Jan 01 00:00:00 0001 Info: MID 1 Subject 'far past'",
            ]
        )
    )
    assert [e.ts for e in evs] == [evs[0].ts] * 3
    assert [e.ts_inferred for e in evs] == [False, True, True]


def test_control_characters_invalid_utf8_and_huge_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        b"Thu Nov 27 10:00:00 2026 Info: Start MID 1 ICID 5",
        b"Thu Nov 27 10:00:00 2026 Info: MID 1 Subject '\x00nul \x07bell \rcr \xed\xa0\x80 lone surrogate \xff\xfe'",
        b"Thu Nov 27 10:00:00 2026 Info: MID 1 ICID 5 From: <\x00@\xc3\x28>",
        b"Thu Nov 27 10:00:01 2026 Info: MID 1 Subject '" + b"x" * 300_000 + b"'",
        b"\x00\x00\x00",
        b"Thu Nov 27 10:00:01 2026 Info: ICID 5 ACCEPT SG X match 10.0.0.1 SBRS 1" + b"9" * 400,
        b"Thu Nov 27 10:00:02 2026 Info: Message finished MID 1 done",
    ]
    docs, summary = replay_bytes(b"\n".join(lines) + b"\n", tmp_path, capsys)
    read = summary["input_lines"]
    assert read["read"] == len(lines) == summary["lines"] + read["blank"] + read["joined"]
    assert sum(summary["line_outcomes"].values()) == summary["lines"]
    for d in docs:
        orjson.dumps(d)  # every document serialises
    conn = next(d for d in docs if d["event"]["kind"] == "event")["esa"]["connection"]
    assert "sbrs" not in conn and conn["sbrs_raw"].startswith("1999")  # beyond `float`: the text only


def test_checkpoint_of_hostile_state_round_trips() -> None:
    """The state checkpoint encodes whatever lines made it (this is what stopped `run` on every restart)."""
    parser = Parser(TimeResolver(reference_time=1795780800.0), native=False)
    st = Stitcher()
    for ev in parser.parse_lines(
        [
            "Thu Nov 27 10:00:00 2026 Info: Start MID 999999999999999999999 ICID 5",
            "Thu Nov 27 10:00:00 2026 Info: Start MID 1 ICID 5",
            "Thu Nov 27 10:00:00 2026 Info: MID 1 Subject '\x00\x1b[31m\ufffd'",
            "Thu Nov 27 10:00:00 2026 Info: MID 1 ready 99999999999999999999999 bytes from <a@b>",
        ]
    ):
        if ev.kind != "unparsed":
            st.feed(ev)
    snap = st.snapshot()
    back = Stitcher()
    back.restore(decode_state(encode_state(snap)))
    assert back.snapshot() == snap


@pytest.mark.skipif(native.module() is None, reason="native core not installed")
def test_both_parsers_agree_on_fuzzed_lines() -> None:
    """The native core declines what the Python parser must decide (19+ digit numbers among them)."""
    from tests.fuzzlib import load_fuzz

    fuzz = load_fuzz()
    raw = list(fuzz.Mutator(11, fuzz.real_lines(), fuzz.corpus_lines(5000, 11)).lines(30_000))
    lines = [b.decode("utf-8", "replace") for b in raw]
    got = []
    for want in (False, True):
        parser = Parser(TimeResolver(reference_time=1795780800.0), native=want)
        got.append([(e.kind, e.appliance, e.ts, e.raw, e.mid, e.icid, e.dcid, e.data) for e in parser.parse_lines(lines)])
    assert got[0] == got[1]
    assert any(e[7] == {"reason": "number_out_of_range"} for e in got[0])


def test_document_ids_fit_elasticsearch_even_for_absurd_host_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Elasticsearch refuses a whole bulk request holding an `_id` over 512 bytes; the id comes from the
    appliance name, which an envelope can make as long as a line."""
    from enricher.edges.sinks.elasticsearch import assets as es_assets

    host = "h" * 300 + "é" * 300
    data = (
        f"<22>Nov 27 10:00:00 {host} mail_logs: Info: Start MID 1 ICID 5\n"
        f"<22>Nov 27 10:00:00 {host} mail_logs: Info: something nobody logs\n"
        f"<22>Nov 27 10:00:00 {host[:-1]} mail_logs: Info: Start MID 1 ICID 5\n"
    ).encode()
    docs, _ = replay_bytes(data, tmp_path, capsys, "--reference-time", "2026-11-28T00:00:00Z")
    ids = [d["event"]["id"] for d in docs]
    assert len(ids) == 3 and len(set(ids)) == 3
    assert all(len(i.encode()) <= 512 for i in ids)
    assert {d["observer"]["hostname"] for d in docs} == {host, host[:-1]}  # the name itself is kept
    types = es_assets.leaf_types()
    assert es_assets.misfits({"event": {"id": "x" * 513}}, types) == [("_id", "x" * 513)]
