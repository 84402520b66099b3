"""The listener's pure parts: RFC 6587 framing (octet counting, newline, mixed, partial reads, oversize),
UDP datagrams, the Kafka key of a record, and the sender's rewriting of native lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enricher.edges.sources.syslog_framing import (
    Frame,
    KeyExtractor,
    StreamFramer,
    datagram_frame,
    octet_frame,
    to_syslog,
)

L1 = b"<22>Nov 27 09:00:01 esa1.example.net mail_logs: Info: New SMTP ICID 5001 interface Data 1"
L2 = b"<22>1 2026-11-27T09:00:02+09:00 esa2 mail_logs - - - Info: Start MID 42 ICID 5001"
L3 = b"<166>Mar 17 18:24:37 mail_logs: Info: ICID 5001 close"


def frames(chunks: list[bytes], max_bytes: int = 65536) -> list[Frame]:
    f = StreamFramer(max_bytes)
    out: list[Frame] = []
    for c in chunks:
        out += f.feed(c)
    return out + f.close()


def data(fs: list[Frame]) -> list[bytes]:
    return [f.data for f in fs]


# -- newline framing ------------------------------------------------------------------------------------------
def test_newline_framing_with_lf_crlf_and_blank_lines() -> None:
    fs = frames([L1 + b"\n" + L2 + b"\r\n\n\r\n" + L3 + b"\n"])
    assert data(fs) == [L1, L2, L3]
    assert {f.framing for f in fs} == {"lf"}
    assert not any(f.truncated for f in fs)


def test_newline_framing_last_line_without_lf_counts_at_eof() -> None:
    f = StreamFramer()
    assert data(f.feed(L1 + b"\n" + L3)) == [L1]
    assert data(f.close()) == [L3]


def test_a_line_that_starts_with_digits_is_not_an_octet_count() -> None:
    rfc5424_without_pri = b"1 2026-11-27T09:00:02Z esa2 mail_logs - - - Info: x"
    fs = frames([b"12345\n", rfc5424_without_pri + b"\n", b"7 not a frame\n"])
    assert data(fs) == [b"12345", rfc5424_without_pri, b"7 not a frame"]
    assert {f.framing for f in fs} == {"lf"}


def test_nul_terminated_messages() -> None:
    assert data(frames([L1 + b"\x00\n" + L3 + b"\x00"])) == [L1, L3]


# -- octet counting -----------------------------------------------------------------------------------------------
def test_octet_counting() -> None:
    fs = frames([octet_frame(L1) + octet_frame(L2) + octet_frame(L3)])
    assert data(fs) == [L1, L2, L3]
    assert {f.framing for f in fs} == {"octet"}


def test_octet_frame_may_contain_newlines_and_trailing_lf() -> None:
    wrapped = L1 + b"\n continued on a second line"
    fs = frames([octet_frame(wrapped) + octet_frame(L2 + b"\n") + b"\n" + octet_frame(L3)])
    assert data(fs) == [wrapped, L2, L3]


def test_mixed_framings_on_one_connection() -> None:
    stream = octet_frame(L1) + L2 + b"\n" + octet_frame(L3) + L1 + b"\n"
    fs = frames([stream])
    assert data(fs) == [L1, L2, L3, L1]
    assert [f.framing for f in fs] == ["octet", "lf", "octet", "lf"]


@pytest.mark.parametrize("split", [1, 2, 3, 5, 17, 64])
def test_partial_reads_give_the_same_frames(split: int) -> None:
    stream = octet_frame(L1) + L2 + b"\r\n" + octet_frame(L3) + octet_frame(L2) + L1 + b"\n"
    chunks = [stream[i : i + split] for i in range(0, len(stream), split)]
    assert data(frames(chunks)) == [L1, L2, L3, L2, L1]


def test_octet_count_split_after_its_digits_waits_for_the_space_and_pri() -> None:
    f = StreamFramer()
    frame = octet_frame(L1)
    assert f.feed(frame[:2]) == []  # "10" of "107 <22>…": could be a line "10…" or a count
    assert f.feed(frame[2:4]) == []  # "7 ": still undecided until the "<"
    assert data(f.feed(frame[4:])) == [L1]


def test_cut_octet_frame_at_eof_is_counted_not_emitted() -> None:
    f = StreamFramer()
    assert data(f.feed(octet_frame(L1) + octet_frame(L2)[:30])) == [L1]
    assert f.close() == []
    assert f.incomplete == 1


# -- oversize: truncated, kept, bounded memory ----------------------------------------------------------------
def test_oversize_newline_message_is_truncated_and_the_rest_skipped() -> None:
    big = b"<22>Nov 27 09:00:01 esa1 mail_logs: Info: " + b"x" * 500
    f = StreamFramer(max_bytes=100)
    out = []
    for i in range(0, len(big), 40):  # arrives in pieces, no LF yet
        out += f.feed(big[i : i + 40])
        assert f.buffered <= 100 + 40
    out += f.feed(b"yyy\n" + L3 + b"\n")
    assert [(x.data, x.truncated) for x in out] == [(big[:100], True), (L3, False)]


def test_oversize_newline_message_in_one_read() -> None:
    big = b"<22>" + b"z" * 300
    fs = frames([big + b"\n" + L3 + b"\n"], max_bytes=64)
    assert [(x.data, x.truncated) for x in fs] == [(big[:64], True), (L3, False)]


def test_oversize_octet_frame_is_truncated_and_skipped_across_reads() -> None:
    big = b"<22>Nov 27 09:00:01 esa1 mail_logs: Info: " + b"q" * 1000
    stream = octet_frame(big) + octet_frame(L3)
    f = StreamFramer(max_bytes=128)
    out = []
    for i in range(0, len(stream), 50):
        out += f.feed(stream[i : i + 50])
        assert f.buffered <= 128 + 50 + 10
    out += f.close()
    assert [(x.data, x.truncated, x.framing) for x in out] == [(big[:128], True, "octet"), (L3, False, "octet")]


def test_exactly_max_bytes_is_not_truncated() -> None:
    msg = b"<22>" + b"a" * 96
    assert [(x.data, x.truncated) for x in frames([msg + b"\r\n", octet_frame(msg)], max_bytes=100)] == [
        (msg, False),
        (msg, False),
    ]


def test_absurd_octet_count_is_read_as_a_line() -> None:
    line = b"12345678901 <22> not a length"
    assert data(frames([line + b"\n"])) == [line]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["lf", "octet"]), st.binary(min_size=1, max_size=80).map(lambda b: b"<13>" + b.replace(b"\n", b" "))),
        max_size=12,
    ),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8),
)
def test_any_chunking_gives_the_frames_of_one_read(msgs: list[tuple[str, bytes]], cuts: list[int]) -> None:
    stream = b"".join(octet_frame(m) if kind == "octet" else m + b"\n" for kind, m in msgs)
    chunks, i, k = [], 0, 0
    while i < len(stream):
        n = cuts[k % len(cuts)]
        chunks.append(stream[i : i + n])
        i, k = i + n, k + 1
    whole = frames([stream], max_bytes=48)
    assert frames(chunks, max_bytes=48) == whole
    expected = [m.rstrip(b"\r\n\x00") for _, m in msgs]
    assert [f.data for f in whole] == [e[:48].rstrip(b"\r\n\x00") for e in expected if e]


# -- UDP -------------------------------------------------------------------------------------------------------
def test_datagrams() -> None:
    assert datagram_frame(L1 + b"\n") == Frame(L1, False, "datagram")
    assert datagram_frame(b"\n\x00") is None
    assert datagram_frame(b"<22>" + b"w" * 200, max_bytes=50) == Frame(b"<22>" + b"w" * 46, True, "datagram")


# -- keys ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("<94>Nov 24 14:22:57 esa1.example.net mail_logs: Info: MID 1 ICID 2 From: <a@b>", "esa1.example.net"),
        ("Nov 24 14:22:57 esa1.example.net mail_logs: Info: MID 1 ICID 2 From: <a@b>", "esa1.example.net"),
        ("<166>Mar 17 18:24:37 mail_logs: Info: New SMTP ICID 3 interface Data 1", "DEFAULT"),
        ("Aug  2 23:59:52 10.0.1.1 MAIL_SecurityAudit: Info: x", "10.0.1.1"),
        ("Oct 19 06:33:29 2011 mx07.example.net syslog_mail: Info: ICID 5 close", "mx07.example.net"),
        ("<22>1 2026-11-27T12:00:00+09:00 esa3 mail_logs - - - Info: ICID 7 close", "esa3"),
        ("<22>1 2026-11-27T12:00:00+09:00 - mail_logs - - - Info: ICID 7 close", "DEFAULT"),
        ("<111>Aug  7 11:57:16 relay ESA: Thu Aug 07 11:57:16 2020 Info: ICID 1 close", "relay"),
        ("Nov 27 12:00:01 collector rsyslogd: Nov 27 12:00:00 esa4 mail_logs: Info: ICID 9 close", "esa4"),
        ("Thu Aug 14 11:04:31 2014 Info: New SMTP ICID 10293 interface Management", "DEFAULT"),
        ("MID 1404 ICID 10293 From: <user@domain.com>", "DEFAULT"),
    ],
)
def test_key_is_the_appliance_host_of_the_envelope(line: str, key: str) -> None:
    keys = KeyExtractor("DEFAULT")
    assert keys.key(line) == key
    assert keys.key_of_bytes(line.encode()) == key


def test_key_defaults_per_sender_and_continuations_follow_their_record() -> None:
    keys = KeyExtractor("esa")
    assert keys.key("<166>Mar 17 18:24:37 mail_logs: Info: ICID 3 close", "esa9") == "esa9"
    # A wrapped line (no header, not an ESA body) continues the previous record of the connection.
    assert keys.key("(192.168.0.199) address 192.168.0.200 reverse dns host x", "esa9", previous="esa1") == "esa1"
    assert keys.key("SBRs not enabled", None, previous="esa1") == "esa1"
    # A bare ESA body is a record of its own: sender default, not the previous key.
    assert keys.key("ICID 10293 close", "esa9", previous="esa1") == "esa9"
    assert keys.key_of_bytes(b"<22>Nov 27 09:00:01 esa\xff1 mail_logs: Info: x") == "esa\ufffd1"


def test_key_matches_the_parser_used_by_the_consumer() -> None:
    from enricher.core.parsing.parser import Parser

    parser = Parser(default_appliance="DEFAULT")
    keys = KeyExtractor("DEFAULT")
    for line in [L1, L2, L3]:
        text = line.decode()
        assert keys.key(text) == parser.parse_record(text).appliance


# -- the sender's rewriting ----------------------------------------------------------------------------------
def test_native_lines_as_syslog() -> None:
    native = "Fri Nov  6 09:00:01 2026 Warning: MID 7 something"
    assert to_syslog(native, "esa1") == "<20>Nov  6 09:00:01 esa1 mail_logs: Warning: MID 7 something"
    assert to_syslog(native, "esa1", "rfc3164-native") == f"<20>Nov  6 09:00:01 esa1 mail_logs: {native}"
    assert to_syslog(native, "esa1", "rfc5424", utc_offset=32400) == (
        "<20>1 2026-11-06T09:00:01+09:00 esa1 mail_logs - - - Warning: MID 7 something"
    )
    assert to_syslog(native, "esa1", "rfc5424", utc_offset=-16200).startswith("<20>1 2026-11-06T09:00:01-04:30 ")
    assert to_syslog(native, "esa1", "rfc5424").startswith("<20>1 2026-11-06T09:00:01Z ")
    assert to_syslog(L1.decode(), "other") == L1.decode()  # already syslog: unchanged
    with pytest.raises(ValueError):
        to_syslog(native, "esa1", "bogus")


def test_rewritten_lines_parse_back_to_the_same_appliance_and_body() -> None:
    from enricher.core.parsing.parser import Parser

    native = "Thu Aug 14 11:05:36 2014 Info: Message aborted MID 1404 Receiving aborted"
    for style in ("rfc3164", "rfc3164-native", "rfc5424"):
        ev = Parser(default_appliance="DEFAULT").parse_record(to_syslog(native, "esa-x.example", style))
        assert ev.appliance == "esa-x.example", style
        assert ev.kind == Parser().parse_record(native).kind, style
