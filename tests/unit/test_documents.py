"""Document builder: which values are left out (None, "", [] and {}) and which are kept (0 and False)."""

from __future__ import annotations

from enricher.documents import DocumentConfig, build_document
from enricher.sessions.session import CONNECTION, MESSAGE, Session


def _message() -> Session:
    conn = Session(CONNECTION, "esa1", 7, 100.0)
    conn.data.update(
        {"interface": "", "sbrs": "0", "tls": {"status": None}, "hat": {"sender_group": "", "action": "ACCEPT"}}
    )
    s = Session(MESSAGE, "esa1", 42, 101.0)
    s.conn = conn
    s.data.update(
        {
            "from": "",
            "rcpts": [[0, "a@example.com"], [None, ""]],
            "size": 0,
            "queued": False,
            "urls": [],
            "quarantine": {},
            "antispam": {"engine": "CASE", "verdict": "negative", "interim": False},
        }
    )
    s.state = "complete"
    return s


def test_empty_values_are_left_out_and_zero_and_false_kept() -> None:
    esa = build_document(_message(), DocumentConfig(keep_raw=False))["esa"]
    assert esa["envelope"] == {"null_sender": True, "recipients": [{"rid": 0, "address": "a@example.com"}, {}]}
    assert esa["size"] == 0
    assert esa["queued"] is False
    assert "urls" not in esa and "quarantine" not in esa and "raw" not in esa
    assert esa["verdicts"] == {"antispam": {"engine": "CASE", "verdict": "negative", "interim": False}}
    assert esa["connection"] == {"icid": 7, "hat_action": "ACCEPT", "sbrs": 0.0, "sbrs_raw": "0"}


def test_field_order_is_the_documented_order() -> None:
    # Sinks that do not sort keys (the Elasticsearch bulk body) keep this order.
    doc = build_document(_message(), DocumentConfig(keep_raw=False))
    assert list(doc) == ["@timestamp", "event", "observer", "email", "related", "esa"]
    assert list(doc["esa"])[:7] == ["session", "disposition", "abort", "connection", "icid", "mid", "envelope"]


def _reference_order(sa: list[int], la: list[str], sb: list[int], lb: list[str]) -> list[str]:
    return [line for _, line in sorted([*zip(sa, la, strict=True), *zip(sb, lb, strict=True)])]


def test_raw_lines_of_message_and_connection_in_arrival_order() -> None:
    """`raw_lines` merges a message's lines with its connection's like `sorted` of the (sequence, line)
    pairs, also when a run does not rise (the 32-bit sequence wrapped) or the two share a sequence."""
    import random
    from array import array

    from enricher.sessions.session import _in_order

    rnd = random.Random(7)
    for _ in range(3000):
        na, nb = rnd.randrange(0, 8), rnd.randrange(0, 8)
        pool = rnd.choice([range(0, 12), range(0, 4_000_000_000, 97_000_001), [0, 2**32 - 1, 5, 5, 7]])
        sa, sb = [rnd.choice(pool) for _ in range(na)], [rnd.choice(pool) for _ in range(nb)]
        if rnd.random() < 0.7:
            sa, sb = sorted(set(sa)), sorted(set(sb))  # the usual case: rising arrival numbers
        la = [rnd.choice("abc") + str(i) for i in range(len(sa))]
        lb = [rnd.choice("abc") + str(i) for i in range(len(sb))]
        got = _in_order(array("I", sa), la, array("I", sb), lb)
        assert got == _reference_order(sa, la, sb, lb), (sa, la, sb, lb)
    conn = Session(CONNECTION, "esa1", 7, 100.0)
    s = Session(MESSAGE, "esa1", 42, 101.0)
    s.conn = conn
    for seq, who in enumerate("ccmmcmc"):
        (conn if who == "c" else s).add_line(seq, f"{who}{seq}")
    assert s.raw_lines() == ["c0", "c1", "m2", "m3", "c4", "m5", "c6"]
    assert conn.raw_lines() == ["c0", "c1", "c4", "c6"]
