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
