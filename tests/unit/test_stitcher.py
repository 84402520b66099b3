"""Stitcher behaviour: grace, late lost lines, expiry and revival, eviction, counter reuse, appliances."""

from __future__ import annotations

from pathlib import Path

import pytest

from enricher.core.documents import DocumentConfig, build_document
from enricher.core.event import Event
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.shapes import SYSTEM_KINDS
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.session import (
    COMPLETE,
    EVICTED,
    EXPIRED,
    PARTIAL,
    Session,
    body_sum,
    key_from_v3,
    line_key,
)
from enricher.core.sessions.state import decode_state, encode_state
from enricher.core.sessions.stitcher import StitchConfig, Stitcher


def _lines(*bodies: tuple[str, str], host: str = "esa1") -> list[str]:
    return [f"<22>Nov 27 {t} 2026 {host} mail_logs: Info: {b}" for t, b in bodies]


def run(lines: list[str], **cfg) -> tuple[Stitcher, list]:
    st = Stitcher(StitchConfig(**cfg))
    return st, st.feed_all(Parser().parse_lines(lines))


def restarted(lines: list[str], cut: int) -> tuple[list, list, Pipeline]:
    """The documents of `lines` read at once, and read by a pipeline checkpointed after `cut` lines (through
    the durable encoding) and a new one restored from it that reads the rest; and the first pipeline."""

    def pipe() -> Pipeline:
        return Pipeline(Parser(), Stitcher())

    whole = pipe()
    want = [*whole.process_lines(lines), *whole.flush()]
    first = pipe()
    got = list(first.process_lines(lines[:cut]))
    second = pipe()
    second.restore(decode_state(encode_state(first.snapshot())))
    return want, [*got, *second.process_lines(lines[cut:]), *second.flush()], first


def test_late_icid_lost_within_grace_is_connection_lost() -> None:
    lines = _lines(
        (
            "12:00:00",
            "New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host unknown verified no",
        ),
        ("12:00:01", "Start MID 10 ICID 1"),
        ("12:00:05", "Message aborted MID 10 Receiving aborted"),
        ("12:00:05", "Message finished MID 10 aborted"),
        ("12:00:06", "ICID 1 lost"),
        ("12:00:06", "ICID 1 close"),
        ("12:01:00", "ICID 99 close"),
    )
    st, done = run(lines)
    msg = [s for s in done if s.kind == "message"][0]
    assert msg.state == COMPLETE
    doc = build_document(msg, DocumentConfig())
    assert (doc["abort_reason"], doc["abort_layer"]) == ("connection_lost", "transport")
    assert doc["esa"]["abort"]["evidence"]["icid_lost_offset_seconds"] == 1.0


def test_lost_arriving_after_grace_is_not_joined() -> None:
    lines = _lines(
        ("12:00:01", "Start MID 10 ICID 1"),
        ("12:00:05", "Message aborted MID 10 Receiving aborted"),
        ("12:00:05", "Message finished MID 10 aborted"),
        ("12:00:30", "ICID 1 lost"),
    )
    _, done = run(lines, grace_seconds=5)
    doc = build_document([s for s in done if s.kind == "message"][0], DocumentConfig())
    assert doc["abort_reason"] == "receiving_aborted_unexplained"


def test_idle_expiry_then_revival_keeps_the_id() -> None:
    lines = _lines(
        ("12:00:00", "Start MID 10 ICID 0"),
        ("12:00:01", "MID 10 ICID 0 From: <a@example.com>"),
        ("13:30:00", "ICID 5 close"),  # moves event time 90 minutes on
        ("13:31:00", "MID 10 queued for delivery"),
        ("13:31:01", "Message finished MID 10 done"),
        ("13:32:00", "ICID 6 close"),
    )
    st = Stitcher(StitchConfig(idle_timeout_seconds=3600))
    docs = []  # built as sessions close, as the pipeline does
    for ev in Parser().parse_lines(lines):
        docs += [build_document(s, DocumentConfig()) for s in st.feed(ev) if s.kind == "message"]
    docs += [build_document(s, DocumentConfig()) for s in st.flush() if s.kind == "message"]
    assert [d["esa"]["session"]["state"] for d in docs] == [EXPIRED, COMPLETE]
    assert docs[0]["event"]["id"] == docs[1]["event"]["id"]
    assert "envelope" in docs[1]["esa"] and docs[1]["esa"]["envelope"]["from"] == "a@example.com"
    assert docs[1]["esa"]["session"]["writes"] == 2
    assert st.stats.revived == 1


def test_cap_evicts_oldest_and_counts_it() -> None:
    lines = _lines(*[(f"12:00:{i:02d}", f"Start MID {i} ICID 0") for i in range(10)])
    st, done = run(lines, max_open_sessions=3)
    evicted = [s for s in done if s.state == EVICTED]
    assert [s.ident for s in evicted] == [0, 1, 2, 3, 4, 5, 6]
    assert st.stats.closed[EVICTED] == 7
    assert sorted(s.ident for s in done if s.state == PARTIAL) == [7, 8, 9]


def test_same_ids_on_two_appliances_are_two_sessions() -> None:
    lines = _lines(("12:00:00", "Start MID 10 ICID 1"), host="esa1") + _lines(
        ("12:00:00", "Start MID 10 ICID 1"), host="esa2"
    )
    _, done = run(lines)
    assert sorted(s.appliance for s in done if s.kind == "message") == ["esa1", "esa2"]


def test_icid_counter_reuse_closes_the_old_connection() -> None:
    new = "New SMTP ICID 7 interface Data 1 (192.0.2.1) address {ip} reverse dns host unknown verified no"
    lines = _lines(("12:00:00", new.format(ip="198.51.100.1")), ("12:00:01", new.format(ip="198.51.100.2")))
    _, done = run(lines)
    conns = [s for s in done if s.kind == "connection"]
    assert [c.data["source_ip"] for c in conns] == ["198.51.100.1", "198.51.100.2"]


def test_connection_with_messages_is_not_a_document_of_its_own() -> None:
    lines = _lines(
        (
            "12:00:00",
            "New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host unknown verified no",
        ),
        ("12:00:01", "Start MID 10 ICID 1"),
        ("12:00:02", "ICID 1 close"),
        ("12:00:03", "Message finished MID 10 done"),
        ("12:01:00", "ICID 99 close"),
    )
    from enricher.core.pipeline import Pipeline

    pipe = Pipeline(Parser(), Stitcher())
    docs = [*pipe.process_lines(lines), *pipe.flush()]
    assert [d["event"]["id"].split(":")[1] for d in docs] == ["m10", "c99"]
    assert docs[1]["abort_reason"] == "connection_end_unexplained"  # only its close was seen


def test_dhap_line_joins_the_connection_by_ip() -> None:
    lines = (
        _lines(
            (
                "12:00:00",
                "New SMTP ICID 1 interface Data 1 (192.0.2.1) address 203.0.113.9 reverse dns host unknown verified no",
            ),
        )
        + [
            "<22>Nov 27 12:00:02 2026 esa1 mail_logs: Warning: LDAP: Dropping connection due to potential Directory "
            "Harvest Attack from host=('203.0.113.9', 'unknown'), dhap_limit=5, sender_group=UNKNOWNLIST",
        ]
        + _lines(("12:00:02", "ICID 1 close"))
    )
    _, done = run(lines)
    doc = build_document(done[0], DocumentConfig())
    assert (doc["abort_reason"], doc["abort_layer"]) == ("dhap_drop_connection", "policy")


def test_tick_closes_sessions_of_a_quiet_appliance() -> None:
    st = Stitcher(StitchConfig(grace_seconds=5, quiet_seconds=60))
    p = Parser()
    for line in _lines(("12:00:00", "Start MID 1 ICID 0"), ("12:00:01", "Message finished MID 1 done")):
        assert st.feed(p.parse_record(line), now=1000.0) == []
    assert st.tick(now=1030.0) == []  # not quiet yet
    closed = st.tick(now=1070.0)
    assert [(s.ident, s.state) for s in closed] == [(1, COMPLETE)]


def test_no_raw_keeps_no_lines() -> None:
    lines = _lines(("12:00:00", "Start MID 1 ICID 0"), ("12:00:01", "Message finished MID 1 done"))
    _, done = run(lines, keep_raw=False)
    assert done[0].raw == "" and done[0].lines() == []
    doc = build_document(done[0], DocumentConfig(keep_raw=False))
    assert "raw" not in doc["esa"]


def test_snapshot_restore_mid_stream_gives_identical_documents() -> None:
    """Cut the demo stream anywhere, snapshot, restore into a new stitcher, go on: same documents."""
    import orjson

    from tests.conftest import ROOT

    lines = (ROOT / "samples" / "demo-mail_logs.log").read_text().splitlines()
    events = list(Parser().parse_lines(lines))

    def docs_of(sessions: list) -> list[bytes]:
        return [orjson.dumps(build_document(s, DocumentConfig()), option=orjson.OPT_SORT_KEYS) for s in sessions]

    ref = Stitcher()
    expected: list[bytes] = []
    for ev in events:
        expected += docs_of(ref.feed(ev))
    expected += docs_of(ref.flush())

    for cut in range(0, len(events), 7):
        a = Stitcher()
        got: list[bytes] = []
        for ev in events[:cut]:
            got += docs_of(a.feed(ev))
        snap = orjson.loads(orjson.dumps(a.snapshot()))
        b = Stitcher()
        b.restore(snap)
        for ev in events[cut:]:
            got += docs_of(b.feed(ev))
        got += docs_of(b.flush())
        assert got == expected, f"cut at {cut}"


def test_closed_sessions_are_not_kept_alive_by_the_expiry_index() -> None:
    """Regression: stale expiry entries held every closed session (434 MiB peak on the 1M bench corpus)."""
    lines = []
    for i in range(12_000):
        sec = i // 20  # 20 messages a second: ten minutes, well inside the idle timeout
        t = f"12:{sec // 60:02d}:{sec % 60:02d}"
        lines += _lines((t, f"Start MID {i} ICID 0"), (t, f"Message finished MID {i} done"))
    st = Stitcher(StitchConfig(grace_seconds=0))
    for ev in Parser().parse_lines(lines):
        st.feed(ev)
    assert st.open_sessions() <= 20  # the last second waits for the clock to move
    entries = sum(len(idx) for idx in st._expiry.values())
    assert entries <= 4096 + 20, entries  # compacted: bounded by the live sessions, not the closed ones


def test_a_line_that_both_closes_and_revives_a_session_writes_it_once() -> None:
    """Regression: a quarantine deletion 40 min after `Message finished` closed the session (clock advance)
    and revived it in the same call; the first document was built after the revival and showed its state."""
    lines = _lines(
        ("14:01:01", "Start MID 9772 ICID 0"),
        ("14:01:02", 'MID 9772 quarantined to "Policy" (content filter:attachment_check)'),
        ("14:01:03", "Message finished MID 9772 done"),
        ("14:40:00", 'MID 9772 deleted from quarantine "Policy" (manual)'),
    )
    from enricher.core.pipeline import Pipeline

    pipe = Pipeline(Parser(), Stitcher())
    docs = [*pipe.process_lines(lines), *pipe.flush()]
    assert [(d["abort_reason"], d["esa"]["session"]["state"]) for d in docs] == [("quarantine_deleted", "complete")]


def test_a_message_document_shows_its_connection_as_it_was_when_the_message_closed() -> None:
    """A message's document is built before the line whose clock closed it is applied: that line (here the
    next message's `Start MID` on the same connection, at the end of the grace period) is not in it, and the
    same line arriving late, after a later line closed the message, gives the same document."""
    head = _lines(
        ("15:00:00", "New SMTP ICID 6001 interface Data 1 (192.0.2.10) address 198.51.100.121"),
        ("15:00:01", "Start MID 8001 ICID 6001"),
        ("15:00:02", "Message finished MID 8001 done"),
    )
    start, ready = _lines(("15:00:07", "Start MID 8002 ICID 6001"), ("15:00:08", "MID 8002 ready 100 bytes from <a@b>"))

    def first(lines: list[str]) -> dict:
        pipe = Pipeline(Parser(), Stitcher())
        return next(d for d in [*pipe.process_lines(lines), *pipe.flush()] if d["event"]["id"].startswith("esa1:m8001"))

    in_order = first([*head, start, ready])
    assert in_order["esa"]["connection"]["message_count"] == 1
    assert start not in in_order["esa"]["raw"]
    assert first([*head, ready, start]) == in_order


# -- duplicates and late lines ------------------------------------------------------------------------------
GOLDEN = Path(__file__).parent.parent / "golden"


def _relayed(ev: Event) -> Event:
    """The same record as a second relay would deliver it: another syslog header, same stamp and body."""
    raw = ev.raw
    if ev.level:
        i = raw.find(ev.level)
        raw = f"<13>1 relay2 {ev.appliance} {raw[i:]}" if i > 0 else raw
    return Event(ev.kind, ev.appliance, ev.ts, ev.level, raw, ev.mid, ev.icid, ev.dcid, ev.data, ev.tag, ev.ts_inferred)


def _docs(events: list[Event], **cfg) -> tuple[list[dict], dict]:
    pipe = Pipeline(Parser(), Stitcher(StitchConfig(**cfg)))
    docs = [d for ev in events for d in pipe.process_event(ev)]
    docs += list(pipe.flush())
    return docs, pipe.summary()


def _case_events(case: Path) -> list[Event]:
    return list(Parser(default_appliance="esa5.example.com").parse_lines(case.joinpath("input.log").open()))


@pytest.mark.parametrize("case", sorted(p for p in GOLDEN.iterdir() if (p / "input.log").exists()), ids=lambda p: p.name)
def test_duplicated_records_change_no_document(case: Path) -> None:
    events = _case_events(case)
    keep = {"closed_retention_seconds": 30 * 86400.0}  # some cases span hours: keep every session written
    plain, summary = _docs(events, **keep)
    # Every record twice: at once, half of them through another relay, and all of them again at the end, after
    # their sessions were written (a file read twice). Records that cannot be typed are error documents of
    # their own, by text: outside the scope of sessions.
    doubled: list[Event] = []
    for i, ev in enumerate(events):
        doubled.append(ev)
        if ev.kind != "unparsed":
            doubled.append(_relayed(ev) if i % 2 else ev)
    doubled += [ev for ev in events if ev.kind != "unparsed" and ev.kind not in SYSTEM_KINDS]
    again, dup_summary = _docs(doubled, **keep)
    assert again == plain
    joined = sum(d["esa"]["session"]["lines"] for d in plain if d["event"]["kind"] == "event")
    assert dup_summary["duplicates"] >= min(joined, 1)
    assert dup_summary["lines"] == len(doubled)
    assert dup_summary["sessions"] == summary["sessions"]
    assert dup_summary["system_lines"] == summary["system_lines"] * 2  # not session lines: counted as read


def test_a_duplicate_changes_no_count_of_the_session() -> None:
    lines = _lines(
        ("12:00:00", "Start MID 10 ICID 0"),
        ("12:00:00", "MID 10 ICID 0 RID 0 To: <a@example.com>"),
        ("12:00:00", "MID 10 ICID 0 RID 0 To: <a@example.com>"),
        ("12:00:01", "Message finished MID 10 done"),
    )
    st, done = run(lines)
    (msg,) = [s for s in done if s.kind == "message"]
    assert msg.nlines == 3 and len(msg.lines()) == 3 and len(msg.hashes) == 3 * 4
    assert msg.data["rcpts"] == [[0, "a@example.com"]] or len(msg.data["rcpts"]) == 1
    assert st.stats.duplicates == 1


def test_same_body_in_another_second_is_not_a_duplicate() -> None:
    lines = _lines(
        ("12:00:00", "Start MID 10 ICID 0"),
        ("12:00:00", "MID 10 ICID 0 RID 0 To: <a@example.com>"),
        ("12:00:01", "MID 10 ICID 0 RID 0 To: <a@example.com>"),
    )
    st, done = run(lines)
    assert st.stats.duplicates == 0 and done[0].nlines == 3


def test_a_key_collision_is_confirmed_on_the_raw_line() -> None:
    s = Session("message", "esa1", 10, 0.0)
    line = "<22>Nov 27 12:00:00 esa1 mail_logs: Info: MID 10 Subject 'x'"
    s.hashes = bytearray(line_key(line, "Info", 0.0))
    s.add_line(1, "<22>Nov 27 12:00:00 esa1 mail_logs: Info: MID 10 Subject 'y'")  # same key, other text
    assert not s.repeats(line_key(line, "Info", 0.0), line, "Info")
    s.raw = line
    assert s.repeats(line_key(line, "Info", 0.0), line.replace("<22>", "<13>"), "Info")


def test_line_key_is_stable_and_ignores_the_relay_header() -> None:
    a = "<22>Nov 27 12:00:00 esa1 mail_logs: Info: Start MID 10 ICID 0"
    b = "<13>1 2026-11-27T12:00:00Z esa1 mail_logs - - - Info: Start MID 10 ICID 0"
    assert line_key(a, "Info", 1795780800.0) == line_key(b, "Info", 1795780800.4)
    assert line_key(a, "Info", 1795780800.0) != line_key(a, "Info", 1795780801.0)
    # Part of the durable state: the same bytes in every process (no randomised hash()).
    assert line_key(a, "Info", 1795780800.0).hex() == "39b2fc55"
    # Version 3 snapshots held `second << 32 | Adler-32` (8 bytes): converted to the same key on restore.
    assert key_from_v3(bytes.fromhex("f906ed64c070096b")) == line_key(a, "Info", 1795780800.0)


def test_snapshot_keeps_the_duplicate_memory() -> None:
    lines = _lines(
        ("12:00:00", "Start MID 10 ICID 0"),
        ("12:00:00", "MID 10 ICID 0 RID 0 To: <a@example.com>"),
    )
    st, _ = run(lines[:2])
    st = Stitcher()
    for ev in Parser().parse_lines(lines):
        st.feed(ev)
    restored = Stitcher()
    restored.restore(decode_state(encode_state(st.snapshot())))
    for ev in Parser().parse_lines(lines[1:]):
        restored.feed(ev)
    assert restored.stats.duplicates == 1
    (msg,) = [s for s in restored.flush() if s.kind == "message"]
    assert msg.nlines == 2


_ABORTED_THEN_LATE_LOST = _lines(
    ("12:00:00", "New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host unknown verified no"),
    ("12:00:01", "Start MID 10 ICID 1"),
    ("12:00:01", "MID 10 ICID 1 From: <a@example.com>"),
    ("12:00:05", "Message aborted MID 10 Receiving aborted"),
    ("12:00:05", "Message finished MID 10 aborted"),
    ("12:00:05", "ICID 1 close"),
    ("12:00:30", "Start MID 11 ICID 0"),  # event time moves on: MID 10 and ICID 1 are written
    ("12:00:05", "ICID 1 lost"),  # the relay delivered this one late
    ("12:01:00", "Start MID 12 ICID 0"),
)


def _message_docs(events_or_lines: list, **cfg) -> list[dict]:
    events = list(Parser().parse_lines(events_or_lines)) if isinstance(events_or_lines[0], str) else events_or_lines
    docs, _ = _docs(events, **cfg)
    return [d for d in docs if d["event"]["id"].startswith("esa1:m10:") or d["event"]["id"].startswith("esa1:c1:")]


def test_late_line_within_retention_merges_under_the_same_id_and_reclassifies() -> None:
    docs = _message_docs(_ABORTED_THEN_LATE_LOST)
    first, *rest = [d for d in docs if d["email"]["local_id"] == "10"] if docs else []
    assert first["abort_reason"] == "receiving_aborted_unexplained"
    (merged,) = rest
    assert merged["event"]["id"] == first["event"]["id"]
    assert (merged["abort_reason"], merged["abort_layer"]) == ("connection_lost", "transport")
    assert merged["esa"]["session"]["writes"] == 2
    assert set(first["esa"]["raw"]) < set(merged["esa"]["raw"]) and any("ICID 1 lost" in x for x in merged["esa"]["raw"])


def test_late_line_beyond_retention_is_a_late_document_of_its_own() -> None:
    # MID 10 is written at 12:00:30 (the clock its appliance showed then) and kept for 10 s from there.
    lines = [*_ABORTED_THEN_LATE_LOST[:7], *_lines(("12:00:45", "Start MID 13 ICID 0"), ("12:00:05", "MID 10 Subject 'late'"))]
    docs = _message_docs(lines, closed_retention_seconds=10)
    ids = [d["event"]["id"] for d in docs if d["email"]["local_id"] == "10"]
    assert ids == ["esa1:m10:1795780801", "esa1:m10:1795780805:late"]
    assert docs[-1]["esa"]["session"]["state"] == "late" and docs[-1]["email"]["subject"] == "late"


def test_duplicate_of_a_written_session_writes_nothing() -> None:
    lines = [*_ABORTED_THEN_LATE_LOST[:7], *_ABORTED_THEN_LATE_LOST[1:5]]
    st = Stitcher()
    done = st.feed_all(Parser().parse_lines(lines))
    assert [s.ident for s in done if s.kind == "message"] == [10, 11]
    assert st.stats.duplicates == 4


def test_snapshot_keeps_written_sessions_and_forgotten_keys() -> None:
    events = list(Parser().parse_lines(_ABORTED_THEN_LATE_LOST))
    whole = _message_docs(events)
    for cut in range(1, len(events)):
        a = Pipeline(Parser(), Stitcher())
        docs = [d for ev in events[:cut] for d in a.process_event(ev)]
        b = Pipeline(Parser(), Stitcher())
        b.stitcher.restore(decode_state(encode_state(a.stitcher.snapshot())))
        docs += [d for ev in events[cut:] for d in b.process_event(ev)] + list(b.flush())
        assert [d for d in docs if d["event"]["id"].startswith(("esa1:m10:", "esa1:c1:"))] == whole, cut
    st = Stitcher(StitchConfig(closed_retention_seconds=1))
    # MID 10 is written again at 12:01:00 (the late `ICID 1 lost` revived it) and forgotten at 12:02:00.
    for ev in [*events, *Parser().parse_lines(_lines(("12:02:00", "Start MID 14 ICID 0")))]:
        st.feed(ev)
    restored = Stitcher(StitchConfig(closed_retention_seconds=1))
    restored.restore(decode_state(encode_state(st.snapshot())))
    assert restored._digests == st._digests and ("m", "esa1", 10) in restored._digests


def _snapshot_after_three_lines() -> tuple[list[Event], dict]:
    """The events of `_ABORTED_THEN_LATE_LOST` and the snapshot (encoded and decoded) after its first three."""
    events = list(Parser().parse_lines(_ABORTED_THEN_LATE_LOST))
    st = Stitcher()
    for ev in events[:3]:
        st.feed(ev)
    return events, decode_state(encode_state(st.snapshot()))


def test_a_version_2_snapshot_still_restores_without_duplicate_memory() -> None:
    events, snap = _snapshot_after_three_lines()
    snap.update(version=2, standalone=[-1, []])
    del snap["closed"], snap["digests"]
    for group in ("sessions", "dormant", "detached"):
        for data in snap[group]:
            del data["hashes"], data["late"]
    restored = Stitcher()
    restored.restore(snap)
    restored.feed(events[2])  # seen before the upgrade: no memory of it, applied again
    done = [s for ev in events[3:] for s in restored.feed(ev)] + restored.flush()
    msg = [s for s in done if s.ident == 10][-1]  # written, then again with the late ICID lost
    assert restored.stats.duplicates == 0 and msg.nlines == 5


def test_a_version_3_snapshot_restores_with_its_duplicate_memory() -> None:
    """Version 3 held 8-byte line keys (`second << 32 | Adler-32`): restored as today's 4-byte keys."""
    events, snap = _snapshot_after_three_lines()
    snap["version"] = 3
    for data in snap["sessions"]:
        lines = data["raw"].split("\n") if data["raw"] else []
        sums = [body_sum(line, "Info") for line in lines]
        secs = [int(ev.ts) for ev in events[:3] if ev.raw in lines]
        data["hashes"] = b"".join((t << 32 | h).to_bytes(8, "little") for t, h in zip(secs, sums, strict=True)).hex()
    restored = Stitcher()
    restored.restore(snap)
    restored.feed(events[2])  # seen before the upgrade: recognised as a repeat
    assert restored.stats.duplicates == 1


def test_new_icid_line_arriving_after_its_close_joins_its_connection() -> None:
    """A `New SMTP ICID` line that arrives after the lines written in the same second (its close included)
    is that connection's missing first line, not a reused ICID: the Delayed HAT REJECT stays on the document."""
    new = "New SMTP ICID 5 interface Data 1 (192.0.2.10) address 203.0.113.8 reverse dns host unknown verified no"
    lines = _lines(
        ("12:00:00", "ICID 5 Delayed HAT REJECT continuing session for recipient logging (203.0.113.8)"),
        ("12:00:00", "ICID 5 lost"),
        ("12:00:00", "ICID 5 close"),
        ("12:00:00", new),
        ("12:01:00", "ICID 99 close"),
    )
    _, done = run(lines)
    conns = [s for s in done if s.kind == "connection" and s.ident == 5]
    assert len(conns) == 1
    doc = build_document(conns[0], DocumentConfig())
    assert doc["abort_reason"] == "hat_delayed_reject"
    assert doc["source"]["ip"] == "203.0.113.8"


def test_a_checkpoint_keeps_what_the_parser_learnt_from_a_native_file_header() -> None:
    """A restarted `run` restores the header's `Time offset from UTC` (and the year reached) with the state:
    the lines after the checkpoint are stamped as before, not 5 hours off (another id, a split session)."""
    lines = [
        "Tue Dec  1 09:00:00 2026 Info: Begin Logfile",
        "Tue Dec  1 09:00:00 2026 Info: Time offset from UTC: -18000 seconds",
        "Tue Dec  1 09:00:01 2026 Info: Start MID 7 ICID 0",
        "Tue Dec  1 09:00:02 2026 Info: Message finished MID 7 done",
    ]

    want, got, first = restarted(lines, 3)
    assert [d["event"]["id"] for d in got] == [d["event"]["id"] for d in want] == ["esa:m7:1796133601"]
    assert got == want
    old = first.stitcher.snapshot()  # a checkpoint written before the parser's state was part of it
    Pipeline(Parser(), Stitcher()).restore(old)


def test_an_earlier_line_arriving_late_moves_the_start_and_the_id_of_an_unwritten_session() -> None:
    """The message's `Start MID` line 2 s late (relays reorder): the session starts at its stamp, under the id
    the in-order stream gives it, and its connection too."""
    new = "New SMTP ICID 7 interface Data 1 (192.0.2.10) address 203.0.113.8 reverse dns host unknown verified no"
    in_order = [
        ("12:00:00", new),
        ("12:00:01", "Start MID 70 ICID 7"),
        ("12:00:03", "MID 70 ICID 7 From: <a@example.org>"),
        ("12:00:04", "Message finished MID 70 done"),
        ("12:00:04", "ICID 7 close"),
    ]
    late = [in_order[2], in_order[1], in_order[0], *in_order[3:]]

    def docs(bodies: list[tuple[str, str]]) -> list[dict]:
        _, done = run(_lines(*bodies, ("12:01:00", "ICID 99 close")))
        return [build_document(s, DocumentConfig()) for s in done if s.kind == "message"]

    want, got = docs(in_order), docs(late)
    assert [d["event"]["id"] for d in got] == [d["event"]["id"] for d in want] == ["esa1:m70:1795780801"]
    assert got[0]["event"]["start"] == want[0]["event"]["start"] == "2026-11-27T12:00:00.000Z"


def test_the_antivirus_engine_survives_its_interim_line_arriving_after_the_final_verdict() -> None:
    lines = [
        ("12:00:00", "Start MID 80 ICID 0"),
        ("12:00:01", "MID 80 antivirus negative"),
        ("12:00:01", "MID 80 interim AV verdict using Sophos CLEAN"),
        ("12:00:01", "Message finished MID 80 done"),
        ("12:01:00", "ICID 99 close"),
    ]
    _, done = run(_lines(*lines))
    doc = build_document(done[0], DocumentConfig())
    assert doc["esa"]["verdicts"]["antivirus"] == {"verdict": "negative", "interim": False, "engine": "Sophos"}


def test_a_restored_message_keeps_its_own_connection_when_the_icid_was_reused() -> None:
    """ICID 5 reused (a new `New SMTP ICID 5`) while a message of the first connection is still open: after a
    checkpoint and restore the message is still linked to the connection that carried it, not the new one."""
    def new(ip: str) -> str:
        return f"New SMTP ICID 5 interface Data 1 (192.0.2.10) address {ip} reverse dns host unknown verified no"

    lines = _lines(
        ("12:00:00", new("198.51.100.1")),
        ("12:00:01", "Start MID 50 ICID 5"),
        ("12:00:02", new("203.0.113.2")),
        ("12:00:03", "MID 50 ICID 5 From: <a@example.org>"),
        ("12:00:04", "Message finished MID 50 done"),
        ("12:01:00", "ICID 99 close"),
    )

    want, got, _ = restarted(lines, 3)
    msg = [d for d in got if d["event"]["id"].startswith("esa1:m50:")]
    assert msg[0]["source"]["ip"] == "198.51.100.1"
    assert got == want


def test_message_with_connection_is_queued_once_at_its_write_time() -> None:
    # One grace-queue entry per message, due when it is written (its cut plus a grace period): a second entry
    # at the cut, or a re-queue per pass in `_advance`, costs replay CPU (docs/decisions/late-lines.md).
    head = _lines(
        ("12:00:00", "New SMTP ICID 1 interface Data 1 (192.0.2.1) address 198.51.100.1 reverse dns host x verified no"),  # noqa: E501
        ("12:00:01", "Start MID 10 ICID 1"),
        ("12:00:05", "Message finished MID 10 done"),
    )
    st = Stitcher(StitchConfig(grace_seconds=10))

    def feed(lines: list[str]) -> list[Session]:
        return [s for ev in Parser().parse_lines(lines) for s in st.feed(ev)]

    done = feed(head)
    assert not [s for s in done if s.kind == "message"]
    queued = [(due, k) for due, keys in st._grace["esa1"].items() for k in keys if k[0] == "m"]
    fin = [s for s in st._open.values() if s.kind == "message"][0].finished_ts
    assert queued == [(fin + 20, ("m", "esa1", 10))]
    before = feed(_lines(("12:00:24", "ICID 99 close")))
    assert not [s for s in before if s.kind == "message"]
    assert [k for keys in st._grace["esa1"].values() for k in keys if k[0] == "m"] == [("m", "esa1", 10)]
    at = feed(_lines(("12:00:25", "ICID 98 close")))
    assert [s.ident for s in at if s.kind == "message"] == [10]
