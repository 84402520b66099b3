"""Table-driven parser tests over the real public lines in tests/data/samples/esa/ (provenance in SOURCES.md there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from enricher.core.parsing.parser import Parser
from enricher.core.parsing.shapes import UNRECOGNIZED_KINDS
from tests.conftest import SAMPLES

SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*") if p.suffix in (".log", ".s"))
# Subscriptions other than mail_logs (anti-virus, AMP, bounce logs, consolidated CEF) are parsed too,
# but the acceptance bound (≤ 2 % unparsed) is stated for mail_logs.
NOT_MAIL_LOGS = ("antivirus", "-amp.", "bounce", "consolidated")


def _events(path: Path) -> list:
    with path.open(encoding="utf-8", errors="replace") as f:
        return list(Parser(default_appliance="sample").parse_lines(f))


def test_samples_are_present() -> None:
    assert len(SAMPLE_FILES) >= 25, f"samples not found under {SAMPLES}"


def test_mail_logs_samples_unparsed_at_most_two_percent() -> None:
    total = bad = 0
    for path in SAMPLE_FILES:
        if any(tag in path.name for tag in NOT_MAIL_LOGS):
            continue
        for ev in _events(path):
            total += 1
            bad += ev.kind in UNRECOGNIZED_KINDS
    assert total > 1300
    assert bad / total <= 0.02, f"{bad}/{total} unparsed"


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name[:60])
def test_every_sample_file_parses_without_error(path: Path) -> None:
    events = _events(path)
    assert events, "no records"
    for ev in events:
        assert ev.raw  # kept


# (sample file fragment, line fragment) → expected kind and fields (a subset of the event).
EXPECTED = [
    (
        "criblpacks",
        "REJECT SG BLACKLIST match sbrs[-10.0:-2.5] SBRS -9.5",
        "hat",
        {"action": "REJECT", "sender_group": "BLACKLIST", "match": "sbrs[-10.0:-2.5]", "sbrs": "-9.5"},
    ),
    ("criblpacks", "was split creating MID 24611528", "split", {"child": 24611528}),
    (
        "criblpacks",
        "was generated based on MID 24611421 by bcc filter",
        "generated",
        {"parent": 24611421, "by": "bcc filter 'FireEye_BCC'"},
    ),
    ("criblpacks", "Dropped by CASE", "message_aborted", {"reason": "Dropped by CASE"}),
    ("criblpacks", "(external quarantine)", "message_done", {"rids": [0]}),
    ("criblpacks", "Time offset from UTC", "log_time_offset", {"offset": -21600}),
    (
        "criblpacks",
        "Version: 7.6.3-019",
        "log_version",
        {"version": "7.6.3-019", "serial": "420D4FEA709365BFB3E3-0AF2EE5E700E"},
    ),
    ("118295", "Message aborted MID 1404 Receiving aborted", "message_aborted", {"reason": "Receiving aborted"}),
    ("118295", "ICID 10293 lost", "icid_lost", None),
    ("118500", "New smtp ICID 282204970", "new_icid", {"interface": "Management", "source_ip": "192.168.1.1"}),
    ("118500", "TLS failed", "icid_tls", {"status": "failed"}),
    (
        "118546",
        "Receiving Failed",
        "receiving_failed",
        {"reason": "Message >2X Max Size. Entering Denial-of-Service tarpit mode"},
    ),
    (
        "zoho",
        "Delayed HAT REJECT",
        "delayed_hat_reject",
        {"detail": "continuing session for recipient logging (10.8.236.135)"},
    ),
    (
        "zoho",
        "TLS success protocol TLSv1.2",
        "icid_tls",
        {"status": "success", "protocol": "TLSv1.2", "cipher": "ECDHE-RSA-AES256-GCM-SHA384"},
    ),
    ("zoho", "SBRS 3.4 country United States", "hat", {"sbrs": "3.4", "country": "United States"}),
    ("temple", "rewritten to MID 38637865 by LDAP rewrite", "rewritten", {"child": 38637865, "by": "LDAP rewrite"}),
    ("temple", "LDAP: Reroute query", "ldap_reroute", {"rid": 0, "address": "thomas.force@temple.edu"}),
    ("cyberops", "AMP file reputation verdict : MALWARE", "amp_verdict", {"verdict": "MALWARE"}),
    ("cyberops", "Dropped by amp", "message_aborted", {"reason": "Dropped by amp"}),
    (
        "returnpath",
        "RID  [0, 1, 2, 3, 4, 5] Response",
        "response",
        {"rids": [0, 1, 2, 3, 4, 5], "response": "'CRR09734 Message accepted for delivery'"},
    ),
    (
        "returnpath",
        "DKIM: pass signature verified",
        "dkim",
        {"result": "pass signature verified [TEST] (d=sbcglobal.net s=s1024 i=@sbcglobal.net)"},
    ),
    (
        "splunk-answers",
        "SMTP Auth: (ICID 1513562731) succeeded",
        "smtp_auth",
        {"result": "succeeded", "user": "xxx@yyy.it", "mechanism": "PLAIN", "profile": "SmtpAuth_CGP_LDAP"},
    ),
    (
        "user-guide-logging",
        "Bounced: DCID 3 MID 4 to RID 0 - 5.1.0",
        "bounced",
        {"rid": 0, "code": "5.1.0", "reason": "Unknown address error"},
    ),
    ("user-guide-logging", "Delayed: DCID 5 MID 4 to RID 0 - 4.1.0", "delayed", {"rid": 0, "code": "4.1.0"}),
    ("user-guide-logging", "pending till", "pending", {"rids": [0], "until": "Mon Mar 31 20:01:23 2003"}),
    (
        "user-guide-logging",
        "Dropped by filter 'drop_zip_c'",
        "message_aborted",
        {"reason": "Dropped by filter 'drop_zip_c'"},
    ),
    ("user-guide-logging", "EUQ: Quarantined MID", "euq_quarantined", None),
    ("user-guide-logging", "RPC Delivery start RCID", "delivery_start", {"ctype": "RCID"}),
    ("bounce-log", "Bounced: 45346670:0", "bounce_log", {"rid": 0, "code": "5.1.0", "reason": "Unknown address error"}),
    ("antivirus", "Virus 'CXmail/Phish-O'", "av_log", {"rid": 0}),
    ("amp-lines", "Disposition = LOWRISK", "amp_reputation", {"disposition": "LOWRISK", "malware": "None"}),
    (
        "consolidated",
        "ESAFinalActionDetails=Receiving aborted by sender",
        "consolidated_event",
        {"final_action_details": "Receiving aborted by sender"},
    ),
    ("issue-8569", "Message done DCID 26995470 MID 78069816", "message_done", {"rids": [0, 1, 2, 3]}),
    ("text-mail", "SPF: mailfrom identity", "spf", {"identity": "mailfrom"}),
]


@pytest.mark.parametrize("fragment,needle,kind,fields", EXPECTED, ids=[f"{k}:{n[:30]}" for _, n, k, _f in EXPECTED])
def test_sample_line_shapes(fragment: str, needle: str, kind: str, fields: dict | None) -> None:
    files = [p for p in SAMPLE_FILES if fragment in p.name]
    assert files, f"no sample file matches {fragment!r}"
    matches = [ev for p in files for ev in _events(p) if needle in ev.raw]
    assert matches, f"no line with {needle!r}"
    ev = matches[0]
    assert ev.kind == kind, ev.raw
    for k, v in (fields or {}).items():
        assert ev.get(k) == v, (k, ev.data, ev.raw)
