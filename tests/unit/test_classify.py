"""Classification in one place (`enricher/core/classify/`): stable rule slugs, the recipient refusals, and the
decision whether a connection that carried messages gets a document of its own (a pure function)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from enricher.core.classify import recipients
from enricher.core.classify.rules import RULE_SLUGS, connection_document_verdict
from enricher.core.classify.verdict import ClassifyConfig, Verdict, first_verdict
from enricher.core.parsing.parser import Parser
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.session import CONNECTION, MESSAGE, Session
from enricher.core.sessions.stitcher import Stitcher

CFG = ClassifyConfig()


def test_rule_slugs_are_stable() -> None:
    """`esa.abort.evidence.rule` is a contract (docs/abort-taxonomy.md): these strings never change with a refactor
    (they equal the rule function names they replaced, so documents written before read the same)."""
    assert RULE_SLUGS == (
        "receiving_aborted",
        "policy_abort",
        "connection_inherited",
        "finished_aborted",
        "quarantine",
        "delivery",
        "recipients_rejected",
        "ending_not_logged",
        "connection_policy",
        "connection_failed",
        "connection_tls",
        "connection_end",
    )


def test_the_evidence_names_the_slug_of_the_table_not_the_function() -> None:
    def some_private_name(s: Session, cfg: ClassifyConfig) -> Verdict | None:
        return Verdict("x", "unknown", "aborted")

    v = first_verdict((("never", lambda s, c: None), ("the_slug", some_private_name)), Session(MESSAGE, "a", 1, 0.0), CFG)
    assert v is not None and v.evidence == {"rule": "the_slug"}


@pytest.mark.parametrize(
    ("by", "reason"),
    [
        ("LDAPACCEPT", "rcpt_rejected_ldap"),
        ("RAT", "rcpt_rejected_rat"),
        ("Receiving Control", "rcpt_rate_limited"),
        ("Invalid recipient address", "rcpt_rejected_other"),
        ("", "rcpt_rejected_other"),
    ],
)
def test_recipient_refusal_reason(by: str, reason: str) -> None:
    assert recipients.refusal_reason(by) == reason


def _failed_connection_with(mid: int, ready: bool) -> tuple[Session, Session]:
    c = Session(CONNECTION, "esa1", 3, 100.0)
    c.data.update({"start_ts": 100.0, "receiving_failed": "Too Many Messages", "in_flight_mid": mid})
    c.mids = [mid]
    c.closed_ts = 102.0
    m = Session(MESSAGE, "esa1", mid, 101.0)
    m.conn = c
    if ready:
        m.data["ready_ts"] = 102.0
    return c, m


def test_a_connection_document_is_a_function_of_the_connection_and_its_messages() -> None:
    c, m = _failed_connection_with(30, ready=False)
    at_hand = {30: m}.get
    assert connection_document_verdict(c, at_hand, CFG) is None  # the message in flight tells the failure
    m.data["ready_ts"] = 102.0  # received after all: the failure is the connection's own
    v = connection_document_verdict(c, at_hand, CFG)
    assert v is not None and (v.abort_reason, v.abort_layer) == ("too_many_messages", "resource")
    assert c.data["in_flight_mid"] == 30  # decided without changing either session
    assert connection_document_verdict(c, {}.get, CFG) is None  # not at hand: taken as not received


def test_a_message_received_after_the_failure_line_at_the_end_of_input() -> None:
    """Both sessions written by the end of input (none kept): the pipeline finds the message among those written
    with the connection, and the connection's failure is its own."""
    bodies = [
        ("12:00:00", "New SMTP ICID 3 interface Data 1 (192.0.2.1) address 198.51.100.3"),
        ("12:00:01", "Start MID 30 ICID 3"),
        ("12:00:02", "ICID 3 Receiving Failed: Too Many Messages"),
        ("12:00:02", "MID 30 ready 100 bytes from <a@example.com>"),
        ("12:00:02", "ICID 3 close"),
        ("12:00:03", "Message finished MID 30 done"),
    ]
    p = Pipeline(Parser(), Stitcher())
    for t, b in bodies:
        assert p.record_documents(f"<22>Nov 27 {t} 2026 esa1 mail_logs: Info: {b}") == []
    docs = {d["esa"]["session"]["kind"]: d for d in p.flush()}
    assert docs["connection"]["abort_reason"] == "too_many_messages"
    assert "abort_reason" not in docs["message"]


def test_recipient_refusals_import_nothing_of_the_sessions_package() -> None:
    """`sessions.merge` imports `classify.recipients`: the reverse at run time would be an import circle."""
    code = (
        "import sys, enricher.core.classify.recipients; "
        "print(sorted(m for m in sys.modules if m.startswith('enricher.core.sessions')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
