"""Document builder: which values are left out (None, "", [] and {}) and which are kept (0 and False); the ECS
fields that repeat ESA data."""

from __future__ import annotations

from typing import Any

import pytest

from enricher.core.documents import DocumentConfig, build_document
from enricher.core.ecs import ECS_VERSION
from enricher.core.sessions.session import CONNECTION, MESSAGE, Session


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
    assert list(doc) == ["@timestamp", "ecs", "event", "observer", "email", "network", "related", "esa"]
    assert list(doc["esa"])[:7] == ["session", "disposition", "abort", "connection", "icid", "mid", "envelope"]


def _reference_order(sa: list[int], la: list[str], sb: list[int], lb: list[str]) -> list[str]:
    return [line for _, line in sorted([*zip(sa, la, strict=True), *zip(sb, lb, strict=True)])]


def test_raw_lines_of_message_and_connection_in_arrival_order() -> None:
    """`raw_lines` merges a message's lines with its connection's like `sorted` of the (sequence, line)
    pairs, also when a run does not rise (the 32-bit sequence wrapped) or the two share a sequence."""
    import random
    from array import array

    from enricher.core.sessions.session import _in_order

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


# --- ECS copies of ESA data (enricher/core/ecs.py) ---------------------------------------------------------------
SHA_A = "ab" * 32
SHA_B = "CD" * 32


def _ecs_message(conn_data: dict[str, Any], msg_data: dict[str, Any]) -> dict[str, Any]:
    conn = Session(CONNECTION, "esa1", 7, 100.0)
    conn.data.update({"source_ip": "203.0.113.5", **conn_data})
    s = Session(MESSAGE, "esa1", 42, 101.0)
    s.conn = conn
    s.data.update(msg_data)
    return build_document(s, DocumentConfig(keep_raw=False))


def test_every_document_has_the_ecs_version_and_the_protocol() -> None:
    msg = _ecs_message({}, {})
    conn = build_document(Session(CONNECTION, "esa1", 8, 100.0), DocumentConfig(keep_raw=False))
    for doc in (msg, conn):
        assert doc["ecs"] == {"version": ECS_VERSION}
        assert doc["network"] == {"protocol": "smtp"}
        assert "ingested" not in doc["event"]  # set by the Elasticsearch sink when it writes, never here
    assert msg["ecs"] is not conn["ecs"] and msg["network"] is not conn["network"]  # a sink may add to one


@pytest.mark.parametrize(
    ("host", "verified", "domain"),
    [
        ("mx.example.org", "yes", "mx.example.org"),
        ("mx.example.org", "YES", "mx.example.org"),
        ("a.example.org", "yes", "a.example.org"),  # sorts before the appliance in `related.hosts`
        ("esa1", "yes", "esa1"),  # the appliance's own name: once in `related.hosts`
        ("paypal.com", "no", None),  # the owner of an address chooses its PTR name: not trusted
        ("paypal.com", None, None),  # no verification logged: not trusted either
        ("unknown", "yes", None),
    ],
)
def test_source_domain_only_from_verified_reverse_dns(host: str, verified: str | None, domain: str | None) -> None:
    conn_data = {"reverse_dns": host} if verified is None else {"reverse_dns": host, "verified": verified}
    doc = _ecs_message(conn_data, {})
    assert doc["source"].get("domain") == domain
    assert doc["related"]["hosts"] == sorted({"esa1", *([domain] if domain else [])})
    assert doc["esa"]["connection"]["reverse_dns"] == host  # the name itself stays under esa.*
    if verified is not None:
        assert doc["esa"]["connection"]["reverse_dns_verified"] is (verified.lower() == "yes")


def test_tls_of_the_inbound_connection() -> None:
    tls = {"status": "success", "protocol": "TLSv1.2", "cipher": "ECDHE-RSA-AES256-GCM-SHA384"}
    doc = _ecs_message({"tls": tls}, {})
    assert doc["tls"] == {
        "established": True,
        "version_protocol": "tls",
        "version": "1.2",
        "cipher": "ECDHE-RSA-AES256-GCM-SHA384",
    }
    assert doc["esa"]["connection"]["tls"] == tls
    failed = _ecs_message({"tls": {"status": "failed", "detail": "STARTTLS unexpected response"}}, {})
    assert failed["tls"] == {"established": False}
    assert _ecs_message({"tls": {"protocol": "TLSv1"}}, {})["tls"] == {"version_protocol": "tls", "version": "1.0"}
    assert _ecs_message({"tls": {"protocol": "SSLv3"}}, {})["tls"] == {"version_protocol": "ssl", "version": "3.0"}
    assert _ecs_message({"tls": {"protocol": "garbage"}}, {}).get("tls") is None


def test_delivery_tls_stays_under_the_delivery() -> None:
    deliveries = {9001: {"dcid": 9001, "tls": {"status": "success", "protocol": "TLSv1.3"}}}
    doc = _ecs_message({}, {"deliveries": deliveries})
    assert "tls" not in doc
    assert doc["esa"]["deliveries"][0]["tls"] == {"status": "success", "protocol": "TLSv1.3"}


def test_destination_is_the_last_delivery_attempt() -> None:
    deliveries = {
        9002: {"dcid": 9002, "destination_ip": "192.0.2.60", "port": "2525"},
        9001: {"dcid": 9001, "destination_ip": "192.0.2.50", "port": "25"},
    }
    doc = _ecs_message({}, {"deliveries": deliveries})
    assert doc["destination"] == {"ip": "192.0.2.60", "port": 2525}
    assert [d["dcid"] for d in doc["esa"]["deliveries"]] == [9001, 9002]
    assert doc["related"]["ip"] == ["192.0.2.50", "192.0.2.60", "203.0.113.5"]
    odd = _ecs_message({}, {"deliveries": {1: {"dcid": 1, "destination_ip": "192.0.2.7", "port": "99999"}}})
    assert odd["destination"] == {"ip": "192.0.2.7"}  # not a port: left to esa.deliveries


@pytest.mark.parametrize(
    ("policies", "hat", "expected"),
    [
        ([{"direction": "outbound", "policy": "DEFAULT"}], "ACCEPT", "outbound"),  # the policy table wins
        ([{"direction": "inbound", "policy": "DEFAULT"}], None, "inbound"),
        (None, "RELAY", "outbound"),
        (None, "ACCEPT", "inbound"),
        (None, "REJECT", None),
        (None, None, None),
    ],
)
def test_email_direction(policies: list[dict[str, str]] | None, hat: str | None, expected: str | None) -> None:
    conn_data = {"hat": {"action": hat, "sender_group": "SG"}} if hat else {}
    doc = _ecs_message(conn_data, {"policies": policies} if policies else {})
    assert doc["email"].get("direction") == expected


def test_smtp_auth_user() -> None:
    auth = {"result": "failed", "user": "jdoe", "mechanism": "LOGIN", "profile": "corp"}
    doc = _ecs_message({"smtp_auth": auth}, {})
    assert doc["user"] == {"name": "jdoe"} and doc["related"]["user"] == ["jdoe"]
    conn = Session(CONNECTION, "esa1", 9, 100.0)
    conn.data["smtp_auth"] = auth
    assert build_document(conn, DocumentConfig(keep_raw=False))["user"] == {"name": "jdoe"}
    assert "user" not in _ecs_message({}, {})


def test_attachment_hashes() -> None:
    doc = _ecs_message(
        {},
        {
            "attachments": ["a.docx", "b.pdf"],
            "files": [
                {"sha256": SHA_A, "filename": "a.docx"},
                {"sha256": SHA_A, "filename": "a.docx"},  # the same line twice
                {"sha256": SHA_B, "filename": "other.zip"},
                {"sha256": "abc123", "filename": "cut.exe"},  # a cut line: not a SHA-256
            ],
        },
    )
    assert doc["email"]["attachments"] == [
        {"file": {"name": "a.docx", "hash": {"sha256": SHA_A}}},
        {"file": {"name": "b.pdf"}},
        {"file": {"name": "other.zip", "hash": {"sha256": SHA_B.lower()}}},
    ]
    assert doc["related"]["hash"] == sorted([SHA_A, SHA_B.lower()])
    assert len(doc["esa"]["files"]) == 4  # esa.* keeps every line's data as it was


def test_attachment_hashes_from_amp_lines() -> None:
    sha_c = "0f" * 32
    doc = _ecs_message(
        {},
        {
            "attachments": ["a.docx"],
            "amp_files": [{"filename": "a.docx", "disposition": "CLEAN", "sha256": SHA_A}, {"filename": "x.exe"}],
            "amp_not_uploaded": [f"File SHA256[{sha_c}], File mime[text/plain], Reason: …", "File SHA256[REDACTED]"],
        },
    )
    assert doc["email"]["attachments"] == [
        {"file": {"name": "a.docx", "hash": {"sha256": SHA_A}}},
        {"file": {"hash": {"sha256": sha_c}}},  # not uploaded: the line names no file
    ]
    assert doc["related"]["hash"] == sorted([SHA_A, sha_c])
