"""The converted Sigma rules on a real Elasticsearch ($ESA_ES_URL): exact alerts on a trigger corpus, none on a benign one.

The committed conversions are what runs: the base rules' Lucene queries (pySigma LuceneBackend) through
`query_string`, and the correlation part as the aggregation that `enricher.assets.sigma_es` builds from
`pipelines/sigma/out/elasticsearch-correlations.json`. The trigger corpus is ESA log lines generated below (real
mail_logs wording), replayed in-process, indexed with the project's mapping under a prefix of its own; every
rule has a case that must alert and a near miss that must not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from enricher.assets import sigma_es
from enricher.assets.sigma import OUT_DIR
from tests.integration.test_kibana_queries import (
    CORPUS,
    DEMO,
    cleanup,
    file_lines,
    index_docs,
    query_string,
    replay,
    search_ids,
)

pytestmark = pytest.mark.integration

SIG1, SIG2, SIG3 = "esa-sig1.example.com", "esa-sig2.example.com", "esa-sig3.example.com"
DAY = datetime(2026, 11, 28)


class Lines:
    """Syslog mail_logs lines of several appliances, with unique ICIDs/MIDs per appliance."""

    def __init__(self) -> None:
        self.lines: list[tuple[datetime, int, str]] = []
        self.next_id = 1000

    def add(self, host: str, t: datetime, text: str) -> None:
        self.lines.append((t, len(self.lines), f"<22>{t:%b %d %H:%M:%S} {host} mail_logs: Info: {text}"))

    def connect(
        self, host: str, t: datetime, ip: str, verdict: str = "ACCEPT SG UNKNOWNLIST match sbrs[-1.0:10.0] SBRS 0.5"
    ) -> int:
        self.next_id += 1
        icid = self.next_id
        self.add(
            host,
            t,
            f"New SMTP ICID {icid} interface Data 1 (192.0.2.10) address {ip} reverse dns host unknown verified no",
        )
        self.add(host, t, f"ICID {icid} {verdict} country Unknown")
        return icid

    def lost_before_mail_from(self, host: str, t: datetime, ip: str) -> None:
        icid = self.connect(host, t, ip)
        self.add(host, t + timedelta(seconds=3), f"ICID {icid} lost")
        self.add(host, t + timedelta(seconds=3), f"ICID {icid} close")

    def message(
        self, host: str, t: datetime, ip: str, sender: str, rcpts: list[str], rejected: list[str] = ()
    ) -> tuple[int, int]:
        icid = self.connect(host, t, ip)
        self.next_id += 1
        mid = self.next_id
        self.add(host, t + timedelta(seconds=1), f"Start MID {mid} ICID {icid}")
        self.add(host, t + timedelta(seconds=1), f"MID {mid} ICID {icid} From: <{sender}>")
        for rid, r in enumerate(rcpts):
            self.add(host, t + timedelta(seconds=1), f"MID {mid} ICID {icid} RID {rid} To: <{r}>")
        for r in rejected:
            self.add(host, t + timedelta(seconds=1), f"MID {mid} ICID {icid} To: <{r}> Rejected by RAT")
        return icid, mid

    def sender_quit(self, host: str, t: datetime, ip: str, rcpts: list[str], rejected: list[str] = ()) -> None:
        icid, mid = self.message(host, t, ip, "", rcpts, rejected)
        self.add(host, t + timedelta(seconds=2), f"Message aborted MID {mid} Receiving aborted by sender")
        self.add(host, t + timedelta(seconds=2), f"Message finished MID {mid} aborted")
        self.add(host, t + timedelta(seconds=2), f"ICID {icid} close")

    def lost_message(self, host: str, t: datetime, ip: str) -> None:
        icid, mid = self.message(host, t, ip, "news@example.org", ["a@corp.example"])
        self.add(host, t + timedelta(seconds=20), f"Message aborted MID {mid} Receiving aborted")
        self.add(host, t + timedelta(seconds=20), f"Message finished MID {mid} aborted")
        self.add(host, t + timedelta(seconds=20), f"ICID {icid} lost")
        self.add(host, t + timedelta(seconds=20), f"ICID {icid} close")

    def timeout(self, host: str, t: datetime, ip: str) -> None:
        icid, mid = self.message(host, t, ip, "slow@example.net", ["b@corp.example"])
        end = t + timedelta(seconds=301)  # 300 s from the connection start (the listener's default timeout)
        self.add(host, end, f"Message aborted MID {mid} Receiving aborted")
        self.add(host, end, f"Message finished MID {mid} aborted")
        self.add(host, end, f"ICID {icid} close")

    def reject(self, host: str, t: datetime, ip: str) -> None:
        icid = self.connect(host, t, ip, "REJECT SG BLOCKED_LIST match sbrs[-10.0:-3.0] SBRS -7.5")
        self.add(host, t, f"ICID {icid} close")

    def accepted(self, host: str, t: datetime, ip: str) -> None:
        icid, mid = self.message(host, t, ip, "hello@example.net", ["c@corp.example"])
        self.add(host, t + timedelta(seconds=2), f"MID {mid} ready 1024 bytes from <hello@example.net>")
        self.add(host, t + timedelta(seconds=2), f"ICID {icid} close")
        self.add(host, t + timedelta(seconds=2), f"MID {mid} queued for delivery")
        self.add(host, t + timedelta(seconds=3), f"Message finished MID {mid} done")

    def text(self) -> list[str]:
        return [line for _, _, line in sorted(self.lines)]


def trigger_lines() -> list[str]:
    """A corpus where each correlation rule fires exactly for the groups in EXPECTED_ALERTS."""
    c = Lines()
    at = DAY.replace(hour=11)
    for i in range(6):  # 6 losses from one IP in one 10-minute window: burst from one IP
        c.lost_before_mail_from(SIG1, at + timedelta(seconds=30 + 40 * i), "198.51.100.50")
    for i in range(4):  # near miss: 4 < 5
        c.lost_message(SIG1, at + timedelta(seconds=50 + 60 * i), "198.51.100.51")
    at = DAY.replace(hour=12)
    for i in range(10):  # 10 distinct IPs losing their connection on one appliance in 10 minutes
        c.lost_message(SIG2, at + timedelta(seconds=20 + 30 * i), f"198.51.100.{60 + i}")
    for i in range(9):  # near miss on another appliance: 9 distinct IPs
        c.lost_before_mail_from(SIG3, at + timedelta(seconds=20 + 30 * i), f"198.51.100.{100 + i}")
    for i in range(5):  # callback-style probing: 5 quits x 2 accepted recipients = 10 distinct
        c.sender_quit(
            SIG1,
            at + timedelta(minutes=5 * i),
            "203.0.113.70",
            [f"user{2 * i}@corp.example", f"user{2 * i + 1}@corp.example"],
        )
    for i in range(3):  # near miss: 9 distinct accepted recipients
        c.sender_quit(
            SIG1,
            at + timedelta(minutes=5 * i, seconds=7),
            "203.0.113.71",
            [f"u{3 * i + k}@corp.example" for k in range(3)],
        )
    for i in range(4):  # directory harvest: 4 quits x 3 rejected recipients = 12 distinct
        c.sender_quit(
            SIG1,
            at + timedelta(minutes=4 * i, seconds=11),
            "203.0.113.72",
            [],
            [f"guess{3 * i + k}@corp.example" for k in range(3)],
        )
    at = DAY.replace(hour=14)
    for i in range(10):  # 10 inbound timeouts on one appliance in 15 minutes
        c.timeout(SIG3, at + timedelta(seconds=10 + 30 * i), f"198.51.100.{80 + i}")
    for i in range(9):  # near miss on another appliance: 9 timeouts
        c.timeout(SIG2, at + timedelta(seconds=10 + 30 * i), f"198.51.100.{120 + i}")
    at = DAY.replace(hour=15)
    c.reject(SIG1, at + timedelta(minutes=5), "203.0.113.90")  # rejected, then a message accepted: alert
    c.accepted(SIG1, at + timedelta(minutes=20), "203.0.113.90")
    c.reject(SIG1, at + timedelta(minutes=10), "203.0.113.91")  # rejected only: no alert
    c.accepted(SIG1, at + timedelta(minutes=12), "198.51.100.200")  # accepted only: no alert
    c.reject(SIG1, at + timedelta(minutes=110), "203.0.113.92")  # 16:50 and 17:10: two fixed 1 h windows, no alert
    c.accepted(SIG1, at + timedelta(minutes=130), "203.0.113.92")
    return c.text()


EXPECTED_ALERTS = {
    "esa_connection_lost_burst_single_ip": [{"source.ip": "198.51.100.50"}],
    "esa_connection_lost_burst_many_ips": [{"observer.hostname": SIG2}],
    "esa_sender_quit_probing_accepted": [{"source.ip": "203.0.113.70"}],
    "esa_sender_quit_probing_rejected": [{"source.ip": "203.0.113.72"}],
    "esa_inbound_timeout_surge": [{"observer.hostname": SIG3}],
    "esa_hat_reject_then_accepted": [{"source.ip": "203.0.113.90"}],
}
BASE_ORACLE = {  # each base rule's meaning over the documents, independent of Elasticsearch
    "esa_transport_connection_lost": lambda d: (
        d.get("abort_reason") in ("connection_lost", "connection_lost_before_mail_from")
    ),
    "esa_sender_quit": lambda d: d.get("abort_reason") == "sender_quit",
    "esa_inbound_timeout": lambda d: d.get("abort_reason") == "inbound_timeout",
    "esa_hat_reject": lambda d: d.get("abort_reason") in ("hat_reject", "hat_delayed_reject", "hat_tcprefuse"),
    "esa_message_accepted": lambda d: (
        d["esa"]["session"]["kind"] == "message" and d["event"].get("outcome") == "success"
    ),
}


def specs() -> list[dict[str, Any]]:
    return json.loads((OUT_DIR / "elasticsearch-correlations.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def trigger_docs() -> list[dict[str, Any]]:
    return replay((trigger_lines(), "unused"))


@pytest.fixture(scope="module")
def corpora(es_client: Any, trigger_docs: list[dict[str, Any]]) -> Iterator[dict[str, str]]:
    run = uuid.uuid4().hex[:8]
    prefixes = {"trigger": f"esa-it-sigma-{run}-t", "benign": f"esa-it-sigma-{run}-b"}
    benign = replay((file_lines(DEMO), "esa-demo.example.com"), (file_lines(CORPUS), "unused"))
    try:
        index_docs(es_client, prefixes["trigger"], trigger_docs)
        index_docs(es_client, prefixes["benign"], benign)
        yield prefixes
    finally:
        for p in prefixes.values():
            cleanup(es_client, p)


def test_every_correlation_rule_has_an_expectation() -> None:
    assert {s["name"] for s in specs()} == set(EXPECTED_ALERTS)
    assert {n for s in specs() for n in s["queries"]} == set(BASE_ORACLE)


def test_base_queries_select_exactly_their_sessions(
    es_client: Any, corpora: dict[str, str], trigger_docs: list[dict[str, Any]]
) -> None:
    queries = {n: q for s in specs() for n, q in s["queries"].items()}
    for name, query in queries.items():
        expected = {d["event"]["id"] for d in trigger_docs if BASE_ORACLE[name](d)}
        assert expected, name
        assert search_ids(es_client, corpora["trigger"], query_string(query)) == expected, name


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_correlation_fires_exactly_on_the_trigger_corpus(es_client: Any, corpora: dict[str, str], name: str) -> None:
    spec = next(s for s in specs() if s["name"] == name)
    alerts = sigma_es.run(es_client, corpora["trigger"], spec)
    assert [a["group"] for a in alerts] == EXPECTED_ALERTS[name], alerts


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_correlation_is_silent_on_the_benign_corpus(es_client: Any, corpora: dict[str, str], name: str) -> None:
    spec = next(s for s in specs() if s["name"] == name)
    assert sigma_es.run(es_client, corpora["benign"], spec) == []
    base = {n: search_ids(es_client, corpora["benign"], query_string(q)) for n, q in spec["queries"].items()}
    assert all(base.values()), base  # the base rules do match sessions there: only the threshold keeps it silent


def test_a_time_range_limits_the_correlation(es_client: Any, corpora: dict[str, str]) -> None:
    spec = next(s for s in specs() if s["name"] == "esa_connection_lost_burst_single_ip")
    assert sigma_es.run(es_client, corpora["trigger"], spec, {"gte": "2026-11-28T11:10:00Z"}) == []
    hits = sigma_es.run(
        es_client, corpora["trigger"], spec, {"gte": "2026-11-28T11:00:00Z", "lt": "2026-11-28T11:10:00Z"}
    )
    assert hits == [{"group": {"source.ip": "198.51.100.50"}, "window_start": "2026-11-28T11:00:00.000Z", "value": 6}]
