#!/usr/bin/env python3
"""Deterministic synthetic Cisco ESA ``mail_logs`` corpus for benchmarks and tests.

    python bench/gen_corpus.py --lines 1000000 --appliances 4 --seed 42 \
        --out bench/.data/corpus.log [--format syslog|native]

Standard library only.  The same arguments always give byte-identical output (one
``random.Random(seed)``, no clock, no hash ordering).

What it writes
--------------
* ``--format syslog`` (default): one file, all appliances interleaved in event-time order,
  RFC 3164 envelope with PRI and host::

      <22>Nov 27 12:00:00 esa1.example.net mail_logs: Info: New SMTP ICID ...

* ``--format native``: one file per appliance (``corpus.esa1.log`` ...), the appliance's own
  log-file format, starting with ``Begin Logfile`` / ``Version`` / ``Time offset from UTC``::

      Fri Nov 27 12:00:00 2026 Info: New SMTP ICID ...

* ``<out stem>.meta.json``: what was generated (sessions by expected outcome, line counts,
  peak concurrency, ...), so benchmarks and tests can check results.

Model
-----
Each appliance (``esa1..esaN.example.net``) has its own ICID / MID / DCID counters and a Poisson
stream of inbound SMTP connections.  A connection is one of: HAT REJECT, TCPREFUSE, Delayed HAT
REJECT, lost before MAIL FROM, plain quit, or an accepted / relayed connection carrying 1..n
messages.  The last message of an accepted connection may be aborted while receiving
(connection_lost, inbound_timeout, sender_quit, or an unexplained abort).  Received messages are
scanned (CASE / Sophos / AMP / graymail / outbreak lines) and then dropped by policy (CASE, AMP)
or delivered over pooled outbound connections (DCIDs, up to 50 messages each), with hard bounces,
soft bounces (``Delayed`` + ``pending till`` + a later retry) and off-box quarantine; some
messages spawn a BCC child message (``ICID 0``).  IDs are allocated in event-time order, like
the appliance does.  All events of all appliances are merged by event time; every appliance has
a small fixed clock skew, so its lines are monotonic but the merged file is only roughly so.
Every session started in the corpus also ends in it (``Message finished``, ``ICID close``,
``DCID close``); the remaining line budget is filled with appliance lines carrying no ID.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import sys
import time

# --------------------------------------------------------------------------------------------
# Tunables (probabilities are per connection, or per message where noted)
# --------------------------------------------------------------------------------------------
CONN_RATE = 25.0  # new inbound connections per second per appliance
INBOUND_TIMEOUT = 300.0  # listener timeout for unsuccessful inbound connections (seconds)
DCID_IDLE = 4.0  # an idle outbound connection closes after this many seconds
DCID_MAX_MSGS = 50

CONN_KINDS = (  # (kind, cumulative probability)
    ("hat_reject", 0.17),
    ("hat_tcprefuse", 0.19),
    ("hat_delayed_reject", 0.205),
    ("connection_lost_before_mail_from", 0.23),
    ("quit_without_message", 0.26),
    ("relay", 0.36),
    ("inbound", 1.0),
)
# What happens to the last message of an accepted connection (per connection).
ABORT_KINDS = (
    ("connection_lost", 0.045),
    ("inbound_timeout", 0.080),
    ("sender_quit", 0.125),
    ("receiving_aborted_unexplained", 0.128),
)
# Per received inbound message.
INBOUND_OUTCOMES = (
    ("antispam_drop", 0.05),
    ("amp_drop", 0.057),
    ("hard_bounce", 0.067),
    ("soft_bounce_then_delivered", 0.082),
    ("quarantined_offbox", 0.102),
    ("delivered", 1.0),
)
OUTBOUND_OUTCOMES = (
    ("hard_bounce", 0.04),
    ("soft_bounce_then_delivered", 0.09),
    ("delivered", 1.0),
)
BCC_CHILD_P = 0.08  # share of delivered inbound messages that spawn a BCC child (ICID 0)
NOISE_SHARE = 0.003  # share of the line budget kept for lines that carry no ID

# Outcome -> (abort_layer, abort_reason) as in docs/abort-taxonomy.md; None = normal.
TAXONOMY = {
    "delivered": None,
    "quarantined_offbox": None,
    "soft_bounce_then_delivered": None,
    "connection_lost": ("transport", "connection_lost"),
    "inbound_timeout": ("timeout", "inbound_timeout"),
    "sender_quit": ("application", "sender_quit"),
    "receiving_aborted_unexplained": ("unknown", "receiving_aborted_unexplained"),
    "antispam_drop": ("policy", "antispam_drop"),
    "amp_drop": ("policy", "amp_drop"),
    "hard_bounce": ("delivery", "hard_bounce"),
    "hat_reject": ("policy", "hat_reject"),
    "hat_tcprefuse": ("policy", "hat_tcprefuse"),
    "hat_delayed_reject": ("policy", "hat_delayed_reject"),
    "connection_lost_before_mail_from": ("transport", "connection_lost_before_mail_from"),
    "quit_without_message": ("application", "quit_without_message"),
}
RECEIVING_ABORTED = ("connection_lost", "inbound_timeout", "sender_quit", "receiving_aborted_unexplained")

# --------------------------------------------------------------------------------------------
# Vocabulary (no braces anywhere: the line templates are str.format templates)
# --------------------------------------------------------------------------------------------
EXT_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.jp",
    "zoho.com",
    "mktomail.com",
    "salesforce.com",
    "amazonses.com",
    "sendgrid.net",
    "mailchimp.com",
    "hotmail.com",
    "example.org",
    "example.com",
    "partner-corp.com",
    "supplier.example",
    "newsletters.example",
    "bank.example",
    "ups.com",
    "fedex.com",
    "github.com",
    "atlassian.net",
    "docusign.net",
    "linkedin.com",
    "freee.co.jp",
    "rakuten.co.jp",
    "nikkei.com",
    "mufg.jp",
    "solidsignal.com",
    "fjvco.com",
    "directenergy.com",
)
SPAM_DOMAINS = ("leadsmaster.info", "cheap-meds.example", "promo-blast.biz", "xn--80ak6aa92e.com", "mailer.ru")
LOCAL_PARTS = (
    "info",
    "noreply",
    "no-reply",
    "newsletter",
    "support",
    "sales",
    "billing",
    "alerts",
    "hr",
    "john.smith",
    "tanaka",
    "sato.k",
    "m.suzuki",
    "jane.doe",
    "ops",
    "marketing",
    "bounce",
    "notifications",
    "do-not-reply",
    "accounts",
    "security",
    "admin",
    "team",
    "hello",
)
OUR_USERS = tuple(f"user{k}" for k in range(1, 4000))
SUBJECTS = (
    "Invoice 4711 for November",
    "Re: Meeting tomorrow",
    "Your order has shipped",
    "Webinar: Working Together 101: Preventing Departmental Silos",
    "Weekly status report",
    "FW: Contract draft v3",
    "Password expiry notice",
    "Package delivery notification",
    "Get the NEW HD-BLADE antennas from $19.99 only at SolidSignal.com",
    "Quarterly results",
    "Re: Re: quick question",
    "[JIRA] (OPS-1234) Disk usage above 90%",
    "Your statement is ready",
    "Welcome to the team!",
    "Reminder: timesheet due Friday",
    "Security alert for your account",
    "Envision your dream home - Now make it a reality",
    "That report...",
    "Hello",
    "Shipping confirmation #88231",
    "Lunch?",
    "Updated: All hands agenda",
    "Re: PO 55012",
)
ATTACHMENTS = (
    "invoice.pdf",
    "image001.jpg",
    "image002.png",
    "report.xlsx",
    "agenda.docx",
    "scan_0001.pdf",
    "meeting.ics",
)
CIPHERS = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-SHA")
TLS_SUITES = (
    ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"),
    ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"),
    ("TLSv1.3", "TLS_AES_256_GCM_SHA384"),
)
COUNTRIES = (
    "United States",
    "Japan",
    "Germany",
    "Ireland",
    "Netherlands",
    "Singapore",
    "Brazil",
    "Russian Federation",
    "China",
)
RDNS_PREFIX = ("mail", "smtp", "mx", "out", "mta", "o1", "sender4-of-o59", "mail-lb", "relay")
BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

INFO, WARNING = 0, 1
LEVELS = ("Info", "Warning")
PRI = (22, 20)  # facility mail(2): info=6, warning=4
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
RID_LISTS = ["[]"] + ["[" + ", ".join(str(k) for k in range(n)) + "]" for n in range(1, 64)]


class Ref:
    """An ID holder; ``id`` is filled in when IDs are allocated in event-time order."""

    __slots__ = ("id", "app", "t0", "t1", "kind", "outcome", "extra")

    def __init__(self, app=0, t0=0.0, kind="", id_=0):
        self.id = id_
        self.app = app
        self.t0 = t0
        self.t1 = t0
        self.kind = kind
        self.outcome = ""
        self.extra = None


NONE = Ref(id_=0)


class Delivery:
    __slots__ = ("id", "app", "dest", "ts", "te")

    def __init__(self, app, dest, ts, te):
        self.id = 0  # the DCID, set by assign_dcids()
        self.app, self.dest, self.ts, self.te = app, dest, ts, te


def ctime(d: dt.datetime) -> str:
    """AsyncOS native timestamp (ctime style, space-padded day)."""
    return f"{WDAYS[d.weekday()]} {MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S} {d.year}"


class Corpus:
    def __init__(self, seed: int, appliances: int, conn_rate: float):
        self.r = random.Random(seed)
        self.seed = seed
        self.napp = appliances
        self.conn_rate = conn_rate
        self.events: list[tuple] = []
        self.seq = 0
        self.conns: list[Ref] = []
        self.msgs: list[Ref] = []
        self.deliveries: list[Delivery] = []
        r = self.r
        self.hosts = [f"esa{k + 1}.example.net" for k in range(appliances)]
        self.skew = [round(r.uniform(-2.5, 2.5), 3) for _ in range(appliances)]
        self.if_ip = [f"192.0.2.{10 + k}" for k in range(appliances)]
        self.icid_next = [r.randrange(1_000_000, 90_000_000) for _ in range(appliances)]
        self.mid_base = [r.randrange(100_000, 60_000_000) for _ in range(appliances)]
        self.dcid_base = [r.randrange(10_000, 9_000_000) for _ in range(appliances)]
        self.serial = [
            "".join(r.choice("0123456789ABCDEF") for _ in range(20))
            + "-"
            + "".join(r.choice("0123456789ABCDEF") for _ in range(12))
            for _ in range(appliances)
        ]
        self.internal_mx = [(f"10.20.{k}.25", f"10.20.{k}.26") for k in range(appliances)]
        self.ext_mx = [
            f"{r.randint(11, 220)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}" for _ in range(240)
        ]
        self.relay_hosts = [f"10.1.{r.randint(0, 9)}.{r.randint(2, 250)}" for _ in range(30)]

    # ---------------------------------------------------------------- helpers
    def ev(self, t, app, tpl, m=NONE, i=NONE, d=NONE, p=NONE, lvl=INFO):
        self.events.append((t, self.seq, app, lvl, tpl, m, i, d, p))
        self.seq += 1

    def ip(self):
        r = self.r
        return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def ext_addr(self, spam=False):
        r = self.r
        dom = r.choice(SPAM_DOMAINS) if spam else r.choice(EXT_DOMAINS)
        return f"{r.choice(LOCAL_PARTS)}@{dom}"

    def our_addr(self):
        return f"{self.r.choice(OUR_USERS)}@mycompany.example"

    def token(self, n):
        r = self.r
        return "".join(r.choice(BASE36) for _ in range(n))

    def rdns(self, ip):
        r = self.r
        x = r.random()
        if x < 0.25:
            return "unknown", "no"
        if x < 0.45:
            return f"{ip.replace('.', '-')}.dyn.example-isp.net", "no"
        return f"{r.choice(RDNS_PREFIX)}{r.randint(1, 99)}.{r.choice(EXT_DOMAINS)}", "yes"

    def pick(self, table):
        x = self.r.random()
        for name, cum in table:
            if x < cum:
                return name
        return table[-1][0]

    def new_conn_lines(self, app, t, c, ip):
        host, verified = self.rdns(ip)
        self.ev(
            t,
            app,
            f"New SMTP ICID {{i}} interface Data 1 ({self.if_ip[app]}) address {ip} reverse dns host {host} verified {verified}",
            i=c,
        )

    # ---------------------------------------------------------------- connections
    def connection(self, app, t0):
        r = self.r
        c = Ref(app, t0, "icid", self.icid_next[app])
        self.icid_next[app] += 1
        self.conns.append(c)
        kind = self.pick(CONN_KINDS)
        ip = self.ip()
        if kind == "relay":
            ip = r.choice(self.relay_hosts)
            self.ev(
                t0,
                app,
                f"New SMTP ICID {{i}} interface Data 1 ({self.if_ip[app]}) address {ip} reverse dns host app{r.randint(1, 30)}.mycompany.example verified yes",
                i=c,
            )
        else:
            self.new_conn_lines(app, t0, c, ip)
        t = t0 + r.uniform(0.0, 0.02)
        if kind == "hat_reject":
            sbrs = round(r.uniform(-10.0, -3.0), 1)
            self.ev(t, app, f"ICID {{i}} REJECT SG BLOCKLIST match sbrs[-10.0:-3.0] SBRS {sbrs}", i=c)
            c.outcome = kind
            c.t1 = t + r.uniform(0.0, 0.3)
            self.ev(c.t1, app, "ICID {i} close", i=c)
            return
        if kind == "hat_tcprefuse":
            sbrs = round(r.uniform(-10.0, -7.0), 1)
            self.ev(t, app, f"ICID {{i}} TCPREFUSE SG BLOCKLIST match sbrs[-10.0:-7.0] SBRS {sbrs}", i=c)
            c.outcome = kind
            c.t1 = t + r.uniform(0.0, 0.05)
            self.ev(c.t1, app, "ICID {i} close", i=c)
            return
        if kind == "hat_delayed_reject":
            # real shape (zoho sample): Delayed HAT REJECT, then often lost, then close
            self.ev(t, app, f"ICID {{i}} Delayed HAT REJECT continuing session for recipient logging ({ip})", i=c)
            c.outcome = kind
            c.t1 = t + r.uniform(0.5, 20.0)
            if r.random() < 0.5:
                self.ev(c.t1, app, "ICID {i} lost", i=c)
            self.ev(c.t1, app, "ICID {i} close", i=c)
            return
        abort = shape = None
        if kind in ("relay", "inbound"):
            x = r.random()
            abort = next((name for name, cum in ABORT_KINDS if x < cum), None)
            if abort == "sender_quit":
                x = r.random()
                shape = "callback" if x < 0.6 else "harvest" if x < 0.85 else "other"
        if kind == "relay":
            self.ev(t, app, f"ICID {{i}} RELAY SG RELAY_SG match {ip} SBRS not enabled", i=c)
        else:
            # directory harvesting comes from poorly reputed senders
            sbrs = round(r.uniform(-2.9, -1.1) if shape == "harvest" else r.uniform(-2.9, 10.0), 1)
            sg, rng = (
                ("ACCEPTLIST", "sbrs[4.0:10.0]")
                if sbrs >= 4.0
                else ("UNKNOWNLIST", "sbrs[-1.0:10.0]")
                if sbrs >= -1.0
                else ("SUSPECTLIST", "sbrs[-3.0:-1.0]")
            )
            self.ev(t, app, f"ICID {{i}} ACCEPT SG {sg} match {rng} SBRS {sbrs} country {r.choice(COUNTRIES)}", i=c)
        if r.random() < 0.7:
            t += r.uniform(0.02, 0.3)
            proto, ciph = r.choice(TLS_SUITES)
            self.ev(t, app, f"ICID {{i}} TLS success protocol {proto} cipher {ciph}", i=c)
        if kind == "connection_lost_before_mail_from":
            c.outcome = kind
            c.t1 = t + r.uniform(0.5, 60.0)
            self.ev(c.t1, app, "ICID {i} lost", i=c)
            self.ev(c.t1, app, "ICID {i} close", i=c)
            return
        if kind == "quit_without_message":
            c.outcome = kind
            c.t1 = t + r.uniform(0.05, 5.0)
            self.ev(c.t1, app, "ICID {i} close", i=c)
            return
        # accepted / relayed connection with messages
        c.outcome = "messages"
        if kind == "relay":
            nmsg = 1 + min(int(r.expovariate(1 / 3.0)), 40)
        else:
            nmsg = 1 if r.random() < 0.85 else r.randint(2, 6)
        if abort == "inbound_timeout":
            nmsg = 1  # the listener timeout is measured from the start of the connection
        t_prev = t
        t += r.uniform(0.05, 1.0)
        if abort == "inbound_timeout":
            # keep Start MID in the same second as New SMTP ICID where possible, so that both
            # distances (from the connection and from the message start) read 300 s
            sk = self.skew[app]
            t = max(t_prev, min(t, math.floor(t0 + sk) + 0.999 - sk))
        for j in range(nmsg):
            last = j == nmsg - 1
            if last and abort:
                t = self.aborted_message(app, c, t, abort, shape)
                break
            t = self.received_message(app, c, t, outbound=(kind == "relay"))
            if not last:
                t += r.uniform(0.01, 0.5)
        else:
            t += r.uniform(0.01, 3.0)
            self.ev(t, app, "ICID {i} close", i=c)
        c.t1 = t

    def start_message(self, app, c, t, sender, outbound):
        m = Ref(app, t, "mid")
        self.msgs.append(m)
        self.ev(t, app, "Start MID {m} ICID {i}", m=m, i=c)
        self.ev(t, app, f"MID {{m}} ICID {{i}} From: <{sender}>", m=m, i=c)
        return m

    def received_message(self, app, c, t, outbound):
        """Message received completely (ready); schedules its processing.  Returns t of ready."""
        r = self.r
        sender = self.our_addr() if outbound else self.ext_addr()
        m = self.start_message(app, c, t, sender, outbound)
        nrcpt = 1 if r.random() < 0.85 else r.randint(2, 5)
        rcpts = []
        for k in range(nrcpt):
            t += r.uniform(0.005, 0.2)
            rc = self.ext_addr() if outbound else self.our_addr()
            rcpts.append(rc)
            self.ev(t, app, f"MID {{m}} ICID {{i}} RID {k} To: <{rc}>", m=m, i=c)
        t += r.uniform(0.05, 1.5)
        dom = sender.split("@", 1)[1]
        self.ev(t, app, f"MID {{m}} Message-ID '<{self.token(12)}.{r.randint(1000, 99999)}@{dom}>'", m=m)
        self.ev(t, app, f"MID {{m}} Subject '{r.choice(SUBJECTS)}'", m=m)
        size = int(r.lognormvariate(9.5, 1.2)) + 600
        t += min(size / 2_000_000.0, 5.0) + r.uniform(0.0, 0.1)
        self.ev(t, app, f"MID {{m}} ready {size} bytes from <{sender}>", m=m)
        table = "outbound" if outbound else "inbound"
        self.ev(t, app, f"MID {{m}} matched all recipients for per-recipient policy DEFAULT in the {table} table", m=m)
        self.process(app, m, t, sender, rcpts, size, outbound)
        return t

    def aborted_message(self, app, c, t, abort, shape):
        """Receive-side abort of the last message of connection c.  Returns the close time."""
        r = self.r
        if abort == "sender_quit":
            if shape == "callback":
                sender, nrcpt, nrej = "", 1, 0
            elif shape == "harvest":
                sender = self.ext_addr(spam=True)
                nrcpt = r.randint(5, 40)
                nrej = max(1, int(nrcpt * r.uniform(0.6, 1.0)))
            else:
                sender, nrcpt, nrej = self.ext_addr(), r.randint(1, 2), 0
        else:
            sender, nrcpt, nrej = self.ext_addr(), (1 if r.random() < 0.85 else r.randint(2, 4)), 0
        m = self.start_message(app, c, t, sender, False)
        m.outcome = abort
        m.extra = shape
        rid = 0
        rejected = set(r.sample(range(nrcpt), nrej)) if nrej else ()
        for k in range(nrcpt):
            t += r.uniform(0.005, 0.4 if abort != "inbound_timeout" else 0.05)
            if k in rejected:
                self.ev(t, app, f"MID {{m}} ICID {{i}} To: <{self.our_addr()}> Rejected by RAT", m=m, i=c)
            else:
                self.ev(t, app, f"MID {{m}} ICID {{i}} RID {rid} To: <{self.our_addr()}>", m=m, i=c)
                rid += 1
        if abort == "sender_quit":
            t += r.uniform(0.05, 3.0)
            self.ev(t, app, "Message aborted MID {m} Receiving aborted by sender", m=m)
            self.ev(t, app, "Message finished MID {m} aborted", m=m)
            self.ev(t, app, "ICID {i} close", i=c)
        elif abort == "inbound_timeout":
            t = m.t0 + INBOUND_TIMEOUT  # exactly 300 s of event time after Start MID
            self.ev(t, app, "Message aborted MID {m} Receiving aborted", m=m)
            self.ev(t, app, "Message finished MID {m} aborted", m=m)
            self.ev(t, app, "ICID {i} close", i=c)
        elif abort == "receiving_aborted_unexplained":
            t += r.uniform(20.0, 150.0)
            self.ev(t, app, "Message aborted MID {m} Receiving aborted", m=m)
            self.ev(t, app, "Message finished MID {m} aborted", m=m)
            self.ev(t, app, "ICID {i} close", i=c)
        else:  # connection_lost
            if r.random() < 0.3:  # lost during DATA: headers seen, no 'ready'
                t += r.uniform(0.05, 2.0)
                self.ev(t, app, f"MID {{m}} Message-ID '<{self.token(14)}@{sender.split('@', 1)[1]}>'", m=m)
                self.ev(t, app, f"MID {{m}} Subject '{r.choice(SUBJECTS)}'", m=m)
            t += r.uniform(1.0, 120.0)
            t = math.floor(t) + min(t - math.floor(t), 0.99)
            if r.random() < 0.3:  # 'lost' after the abort line, same second
                m.extra = "lost_after_abort"
                self.ev(t, app, "Message aborted MID {m} Receiving aborted", m=m)
                if r.random() < 0.5:
                    self.ev(t, app, "ICID {i} lost", i=c)
                    self.ev(t, app, "Message finished MID {m} aborted", m=m)
                else:
                    self.ev(t, app, "Message finished MID {m} aborted", m=m)
                    self.ev(t, app, "ICID {i} lost", i=c)
            else:
                m.extra = "lost_before_abort"
                self.ev(t, app, "ICID {i} lost", i=c)
                self.ev(t, app, "Message aborted MID {m} Receiving aborted", m=m)
                self.ev(t, app, "Message finished MID {m} aborted", m=m)
            self.ev(t, app, "ICID {i} close", i=c)
        m.t1 = t
        return t

    # ---------------------------------------------------------------- processing / delivery
    def process(self, app, m, t, sender, rcpts, size, outbound):
        r = self.r
        t += min(r.lognormvariate(0.4, 1.0), 60.0)  # work queue wait
        step = lambda: r.uniform(0.001, 0.25)  # noqa: E731
        if outbound:
            outcome = self.pick(OUTBOUND_OUTCOMES)
            self.ev(t, app, "MID {m} interim AV verdict using Sophos CLEAN", m=m)
            self.ev(t, app, "MID {m} antivirus negative ", m=m)
            t += step()
            self.ev(t, app, "MID {m} queued for delivery", m=m)
            dests = [r.choice(self.ext_mx)]
        else:
            outcome = self.pick(INBOUND_OUTCOMES)
            if r.random() < 0.3:
                self.ev(t, app, f"MID {{m}} SPF: mailfrom identity {sender} Pass (v=spf1)", m=m)
                self.ev(
                    t,
                    app,
                    f"MID {{m}} DKIM: pass signature verified (d={sender.split('@', 1)[1]} s=s{r.randint(1, 9)} i=@{sender.split('@', 1)[1]})",
                    m=m,
                )
                t += step()
            spam = (
                "positive"
                if outcome == "antispam_drop"
                else ("suspect" if outcome == "quarantined_offbox" else "negative")
            )
            self.ev(t, app, f"MID {{m}} interim verdict using engine: CASE spam {spam}", m=m)
            self.ev(t, app, f"MID {{m}} using engine: CASE spam {spam}", m=m)
            if outcome == "antispam_drop":
                t += step()
                self.ev(t, app, "Message aborted MID {m} Dropped by CASE", m=m)
                self.finish(app, m, t, outcome)
                return
            if outcome == "quarantined_offbox":
                self.ev(t, app, "ISQ: Tagging MID {m} for quarantine", m=m)
            t += step()
            self.ev(t, app, "MID {m} interim AV verdict using Sophos CLEAN", m=m)
            self.ev(t, app, "MID {m} antivirus negative ", m=m)
            t += step()
            if outcome == "amp_drop":
                self.ev(t, app, f"MID {{m}} attachment '{r.choice(ATTACHMENTS)}'", m=m)
                self.ev(t, app, "MID {m} AMP file reputation verdict : MALWARE", m=m)
                self.ev(t, app, "Message aborted MID {m} Dropped by amp", m=m)
                self.finish(app, m, t, outcome)
                return
            if r.random() < 0.35:
                self.ev(t, app, f"MID {{m}} attachment '{r.choice(ATTACHMENTS)}'", m=m)
                self.ev(t, app, "MID {m} AMP file reputation verdict : CLEAN", m=m)
            else:
                self.ev(t, app, "MID {m} AMP file reputation verdict : SKIPPED (no attachment in message)", m=m)
            self.ev(
                t,
                app,
                f"MID {{m}} using engine: GRAYMAIL {r.choice(('negative', 'negative', 'negative', 'marketing_mail'))}",
                m=m,
            )
            t += step()
            self.ev(t, app, "MID {m} Outbreak Filters: verdict negative", m=m)
            self.ev(t, app, "MID {m} queued for delivery", m=m)
            if outcome == "delivered" and r.random() < BCC_CHILD_P:
                self.bcc_child(app, m, t + r.uniform(0.0, 0.05), sender)
            dests = list(self.internal_mx[app])
        dest = r.choice(dests)
        t += r.uniform(0.01, 1.5)
        nr = len(rcpts)
        if outcome == "quarantined_offbox":
            t = self.deliver(app, m, t, "quarantine", nr, "ok", size, quarantine=True)
        elif outcome == "hard_bounce":
            t = self.deliver(app, m, t, dest, nr, "bounce", size)
        elif outcome == "soft_bounce_then_delivered":
            retry = r.uniform(60.0, 600.0)
            t = self.deliver(app, m, t, dest, nr, "delay", size, retry)
            t = self.deliver(app, m, t + retry, dest, nr, "ok", size)
        else:
            t = self.deliver(app, m, t, dest, nr, "ok", size)
        self.finish(app, m, t, outcome)

    def deliver(self, app, m, t, dest, nrcpt, result, size, retry=0.0, quarantine=False):
        r = self.r
        te = t + r.uniform(0.02, 0.6) + size / 5_000_000.0
        d = Delivery(app, dest, t, te)
        self.deliveries.append(d)
        rid_list = RID_LISTS[nrcpt]
        if quarantine:
            self.ev(
                t,
                app,
                f"Delivery start DCID {{d}} MID {{m}} to RID {rid_list} to offbox IronPort Spam Quarantine",
                m=m,
                d=d,
            )
            self.ev(te, app, f"Message done DCID {{d}} MID {{m}} to RID {rid_list} (external quarantine) ", m=m, d=d)
            self.ev(
                te,
                app,
                f"MID {{m}} RID {rid_list} Response 'ok:  Message {r.randint(10_000_000, 99_999_999)} accepted'",
                m=m,
            )
            return te
        self.ev(t, app, f"Delivery start DCID {{d}} MID {{m}} to RID {rid_list}", m=m, d=d)
        if result == "ok":
            self.ev(te, app, f"Message done DCID {{d}} MID {{m}} to RID {rid_list} ", m=m, d=d)
            self.ev(te, app, f"MID {{m}} RID {rid_list} Response '2.0.0 Ok: queued as {self.token(16)}'", m=m)
        elif result == "bounce":
            for k in range(nrcpt):
                self.ev(
                    te,
                    app,
                    f"Bounced: DCID {{d}} MID {{m}} to RID {k} - 5.1.0 - Unknown address error ('550', ['<{self.our_addr()}>... User unknown']) []",
                    m=m,
                    d=d,
                )
        else:  # delay, retried `retry` seconds later
            for k in range(nrcpt):
                self.ev(
                    te,
                    app,
                    f"Delayed: DCID {{d}} MID {{m}} to RID {k} - 4.1.0 - Unknown address error ('451', ['4.7.1 Try again later']) []",
                    m=m,
                    d=d,
                )
            till = self.start_dt + dt.timedelta(seconds=math.floor(t + retry + self.skew[app]))
            self.ev(te, app, f"Message {{m}} to RID {rid_list} pending till {ctime(till)}", m=m)
        return te

    def finish(self, app, m, t, outcome):
        self.ev(t, app, "Message finished MID {m} done", m=m)
        m.outcome = outcome
        m.t1 = t

    def bcc_child(self, app, parent, t, sender):
        r = self.r
        m = Ref(app, t, "mid")
        self.msgs.append(m)
        self.ev(t, app, "Start MID {m} ICID 0", m=m)
        self.ev(t, app, "MID {m} was generated based on MID {p} by bcc filter 'FireEye_BCC'", m=m, p=parent)
        self.ev(t, app, "MID {m} ICID 0 From: <noreply@cisco.com>", m=m)
        self.ev(t, app, "MID {m} ICID 0 RID 0 To: <fireeyeblackhole@mycompany.example>", m=m)
        self.ev(t, app, f"MID {{m}} DKIM: cannot sign - no profile matches {sender}", m=m)
        size = int(r.lognormvariate(9.5, 1.2)) + 600
        self.ev(t, app, f"MID {{m}} ready {size} bytes from <noreply@cisco.com>", m=m)
        self.ev(t, app, "MID {m} queued for delivery", m=m)
        t += r.uniform(0.01, 1.0)
        t = self.deliver(app, m, t, r.choice(self.ext_mx[:8]), 1, "ok", size)
        self.finish(app, m, t, "delivered")
        m.extra = "bcc_child"

    # ---------------------------------------------------------------- passes
    def assign_dcids(self):
        """Pool deliveries into outbound connections in start-time order; returns DCID events."""
        r = random.Random(self.seed * 7919 + 1)
        evs = []
        seq = 10**12
        pools: dict = {}
        nxt = list(self.dcid_base)
        ndc = 0
        order = sorted(range(len(self.deliveries)), key=lambda k: self.deliveries[k].ts)

        def close(dc, at):
            nonlocal seq
            evs.append((at, seq, dc.app, INFO, "DCID {d} close", NONE, NONE, dc, NONE))
            seq += 1

        for k in order:
            dv = self.deliveries[k]
            key = (dv.app, dv.dest)
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = []
            chosen = None
            keep = []
            for dc in pool:
                if dv.ts - dc.t1 > DCID_IDLE or dc.outcome >= DCID_MAX_MSGS:
                    close(dc, dc.t1 + (DCID_IDLE if dc.outcome < DCID_MAX_MSGS else 0.01))
                    continue
                keep.append(dc)
                if chosen is None and dc.t1 <= dv.ts:
                    chosen = dc
            pool[:] = keep
            if chosen is None:
                chosen = Ref(dv.app, dv.ts, "dcid", nxt[dv.app])
                chosen.outcome = 0
                nxt[dv.app] += 1
                ndc += 1
                pool.append(chosen)
                dest = self.internal_mx[dv.app][0] if dv.dest == "quarantine" else dv.dest
                evs.append(
                    (
                        dv.ts - 0.01,
                        seq,
                        dv.app,
                        INFO,
                        f"New SMTP DCID {{d}} interface {self.if_ip[dv.app]} address {dest} port 25",
                        NONE,
                        NONE,
                        chosen,
                        NONE,
                    )
                )
                seq += 1
                if r.random() < 0.6:
                    evs.append(
                        (
                            dv.ts - 0.005,
                            seq,
                            dv.app,
                            INFO,
                            f"DCID {{d}} TLS success protocol TLSv1.2 cipher {r.choice(CIPHERS)}",
                            NONE,
                            NONE,
                            chosen,
                            NONE,
                        )
                    )
                    seq += 1
            chosen.outcome += 1
            chosen.t1 = dv.te
            dv.id = chosen.id
        for pool in pools.values():
            for dc in pool:
                close(dc, dc.t1 + (DCID_IDLE if dc.outcome < DCID_MAX_MSGS else 0.01))
        return evs, ndc

    def assign_mids(self):
        per_app: list[list[Ref]] = [[] for _ in range(self.napp)]
        for m in self.msgs:  # already in creation order: a stable tie-break
            per_app[m.app].append(m)
        for a, lst in enumerate(per_app):
            lst.sort(key=lambda m: m.t0)
            base = self.mid_base[a]
            for k, m in enumerate(lst):
                m.id = base + k

    # ---------------------------------------------------------------- driver
    def generate(self, lines: int, fmt: str, start: dt.datetime):
        r = self.r
        self.start_dt = start
        header = 3 * self.napp if fmt == "native" else 0
        budget = lines - header - int(lines * NOISE_SHARE)
        nxt = [r.expovariate(self.conn_rate) for _ in range(self.napp)]
        marks = []  # state before each connection, to drop trailing ones on overshoot
        dc_ratio = 0.05  # DCID-only lines per session line; measured after the first round
        while True:  # grow until the (measured) total reaches the budget
            while len(self.events) * (1.0 + dc_ratio) < budget:
                a = min(range(self.napp), key=nxt.__getitem__)
                marks.append((len(self.events), len(self.conns), len(self.msgs), len(self.deliveries), self.seq, a))
                self.connection(a, nxt[a])
                nxt[a] += r.expovariate(self.conn_rate)
            dcev, ndc = self.assign_dcids()
            dc_ratio = len(dcev) / max(1, len(self.events))
            total = len(self.events) + len(dcev) + header
            if total >= budget - 200:
                break
        while total > lines and marks:  # overshoot: drop trailing connections, then re-pool
            over = total - lines
            while over > 0 and marks:
                ne, nc, nm, nd, sq, a = marks.pop()
                over -= len(self.events) - ne
                self.icid_next[a] -= 1
                del self.events[ne:], self.conns[nc:], self.msgs[nm:], self.deliveries[nd:]
                self.seq = sq
            dcev, ndc = self.assign_dcids()
            total = len(self.events) + len(dcev) + header
        self.assign_mids()
        span = max(e[0] for e in self.events) if self.events else 1.0
        nnoise = lines - total
        noise = self.noise_events(nnoise, span)
        events = self.events + dcev + noise
        events.sort(key=lambda e: (e[0], e[1]))
        return events, ndc, len(noise), span

    def noise_events(self, n, span):
        r = self.r
        evs = []
        templates = (
            (
                INFO,
                lambda: f"SenderBase upload: {r.randint(100, 2000)} hosts totaling {r.randint(20000, 400000)} bytes",
            ),
            (
                INFO,
                lambda: (
                    f"CASE cache status: hits = {r.randint(1000, 9000)}, misses = {r.randint(100000, 900000)}, expires = 0, adds = {r.randint(100000, 900000)}, seconds saved = {r.randint(100, 9999)}.{r.randint(10, 99)}, total seconds = {r.randint(100000, 2000000)}.{r.randint(10, 99)}"
                ),
            ),
            (
                INFO,
                lambda: (
                    "Internal SMTP system successfully sent a message to alerts@mycompany.example with subject 'AutoSupport from Cisco IronPort C600, esa.example.net'."
                ),
            ),
            (
                INFO,
                lambda: "URL_REP_CLIENT: Configuration changed. Triggering restart of URL Reputation client service.",
            ),
            (
                WARNING,
                lambda: (
                    "URL category definitions have changed. Please check and update your filters to use the new definitions"
                ),
            ),
            (INFO, lambda: "graymail [CONFIG] Starting graymail configuration handler"),
        )
        for k in range(n):
            lvl, f = r.choice(templates)
            # negative sequence numbers: at equal times, noise sorts before session lines
            evs.append((r.uniform(0.0, span), -1 - k, r.randrange(self.napp), lvl, f(), NONE, NONE, NONE, NONE))
        return evs

    # ---------------------------------------------------------------- output
    def write(self, events, out: str, fmt: str):
        start = self.start_dt
        hosts = self.hosts
        skew = self.skew
        cache: dict = {}
        if fmt == "syslog":
            files = [out]
            fhs = [open(out, "w", encoding="utf-8", newline="\n")]  # noqa: SIM115 - closed below
            route = [0] * self.napp
        else:
            stem = out[:-4] if out.endswith(".log") else out
            files = [f"{stem}.esa{a + 1}.log" for a in range(self.napp)]
            fhs = [open(f, "w", encoding="utf-8", newline="\n") for f in files]  # noqa: SIM115
            route = list(range(self.napp))
            first = [None] * self.napp
            for e in events:  # the header carries the time of the appliance's first line
                if first[e[2]] is None:
                    first[e[2]] = e[0]
                    if all(x is not None for x in first):
                        break
            for a in range(self.napp):
                d0 = start + dt.timedelta(seconds=math.floor((first[a] or 0.0) + skew[a]))
                stamp = ctime(d0)
                fhs[a].write(
                    f"{stamp} Info: Begin Logfile\n{stamp} Info: Version: 15.0.1-030 SN: {self.serial[a]}\n"
                    f"{stamp} Info: Time offset from UTC: 0 seconds\n"
                )
        bufs = [[] for _ in fhs]
        lines_by_host = [0] * self.napp
        for t, _seq, app, lvl, tpl, m, i, d, p in events:
            sec = int(t + skew[app] + 1_000_000) - 1_000_000  # floor, also for t < 0
            key = (sec << 8) | (app << 1) | lvl
            prefix = cache.get(key)
            if prefix is None:
                when = start + dt.timedelta(seconds=sec)
                if fmt == "syslog":
                    prefix = f"<{PRI[lvl]}>{MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S} {hosts[app]} mail_logs: {LEVELS[lvl]}: "
                else:
                    prefix = f"{ctime(when)} {LEVELS[lvl]}: "
                cache[key] = prefix
            body = (
                tpl.format(m=m.id, i=i.id, d=d.id, p=p.id) if m is not NONE or i is not NONE or d is not NONE else tpl
            )
            b = bufs[route[app]]
            b.append(prefix + body + "\n")
            lines_by_host[app] += 1
            if len(b) >= 65536:
                fhs[route[app]].write("".join(b))
                b.clear()
        for fh, b in zip(fhs, bufs, strict=True):
            fh.write("".join(b))
            fh.close()
        return files, lines_by_host


def peak_open(intervals):
    """Maximum number of [t0, t1] intervals open at once."""
    pts = []
    for t0, t1 in intervals:
        pts.append((t0, 1))
        pts.append((t1, -1))
    pts.sort(key=lambda x: (x[0], -x[1]))
    cur = best = 0
    for _, dlt in pts:
        cur += dlt
        best = max(best, cur)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="total lines to write (exact)")
    ap.add_argument("--appliances", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="bench/.data/corpus.log")
    ap.add_argument(
        "--format",
        choices=("syslog", "native"),
        default="syslog",
        help="syslog: one RFC 3164 file, all appliances interleaved; native: one AsyncOS log file per appliance",
    )
    ap.add_argument(
        "--start", default="2026-11-27T12:00:00", help="event time of the first line (appliance local time)"
    )
    ap.add_argument(
        "--conn-rate", type=float, default=CONN_RATE, help="new inbound connections per second per appliance"
    )
    ap.add_argument("--meta", default=None, help="sidecar path (default: <out without .log>.meta.json)")
    args = ap.parse_args(argv)
    if args.appliances < 1 or args.appliances > 64:
        ap.error("--appliances must be 1..64")
    if args.lines < 1000:
        ap.error("--lines must be >= 1000")

    wall0 = time.perf_counter()
    start = dt.datetime.fromisoformat(args.start)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cp = Corpus(args.seed, args.appliances, args.conn_rate)
    events, ndc, nnoise, span = cp.generate(args.lines, args.format, start)
    files, lines_by_host = cp.write(events, args.out, args.format)

    # ------------------------------------------------------------ sidecar
    msg_out: dict = {}
    conn_out: dict = {}
    for m in cp.msgs:
        msg_out[m.outcome] = msg_out.get(m.outcome, 0) + 1
    conn_with_msgs = 0
    for c in cp.conns:
        if c.outcome == "messages":
            conn_with_msgs += 1
        else:
            conn_out[c.outcome] = conn_out.get(c.outcome, 0) + 1
    conn_only = sum(conn_out.values())
    abort_reason: dict = {}
    for name, n in list(msg_out.items()) + list(conn_out.items()):
        tx = TAXONOMY.get(name)
        if tx:
            abort_reason[tx[1]] = abort_reason.get(tx[1], 0) + n
    lines_mid = lines_icid = lines_dcid = 0
    for e in events:
        if e[5] is not NONE:
            lines_mid += 1
        elif e[6] is not NONE:
            lines_icid += 1
        elif e[7] is not NONE:
            lines_dcid += 1
    extra = {}
    for m in cp.msgs:
        if m.extra:
            k = f"{m.outcome}:{m.extra}" if m.outcome in RECEIVING_ABORTED else m.extra
            extra[k] = extra.get(k, 0) + 1
    header = 3 * args.appliances if args.format == "native" else 0
    meta = {
        "generator": "bench/gen_corpus.py",
        "schema": 1,
        "seed": args.seed,
        "format": args.format,
        "files": [os.path.basename(f) for f in files],
        "start": args.start,
        "event_time_span_s": round(span, 3),
        "conn_rate_per_appliance": args.conn_rate,
        "inbound_timeout_s": INBOUND_TIMEOUT,
        "hosts": cp.hosts,
        "clock_skew_s": dict(zip(cp.hosts, cp.skew, strict=True)),
        "lines": len(events) + header,
        "lines_by_host": {h: n + (3 if header else 0) for h, n in zip(cp.hosts, lines_by_host, strict=True)},
        "lines_with_mid": lines_mid,
        "lines_with_icid_only": lines_icid,
        "lines_with_dcid_only": lines_dcid,
        "lines_without_id": nnoise + header,
        # one document per message plus one per connection that carried no message
        "sessions": len(cp.msgs) + conn_only,
        "message_sessions": len(cp.msgs),
        "connection_only_sessions": conn_only,
        "connections": len(cp.conns),
        "connections_with_messages": conn_with_msgs,
        "dcids": ndc,
        "deliveries": len(cp.deliveries),
        "message_outcomes": dict(sorted(msg_out.items())),
        "connection_only_outcomes": dict(sorted(conn_out.items())),
        "receiving_aborted": {k: msg_out.get(k, 0) for k in RECEIVING_ABORTED},
        "abort_reason": dict(sorted(abort_reason.items())),
        "details": dict(sorted(extra.items())),
        "bcc_children_icid0": extra.get("bcc_child", 0),
        # contexts the reference syslog-ng config (bench/syslog-ng/grouping.conf) emits:
        # one per host+MID, one per host+ICID, one per host+DCID
        "syslog_ng_expected": {
            "mid": len(cp.msgs),
            "icid": len(cp.conns),
            "dcid": ndc,
            "total": len(cp.msgs) + len(cp.conns) + ndc,
        },
        "peak_open_messages_by_host": {
            h: peak_open((m.t0, m.t1) for m in cp.msgs if m.app == a) for a, h in enumerate(cp.hosts)
        },
        "peak_open_connections_by_host": {
            h: peak_open((c.t0, c.t1) for c in cp.conns if c.app == a) for a, h in enumerate(cp.hosts)
        },
    }
    meta_path = args.meta or ((args.out[:-4] if args.out.endswith(".log") else args.out) + ".meta.json")
    with open(meta_path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    wall = time.perf_counter() - wall0
    print(
        f"gen_corpus: {meta['lines']} lines, {meta['sessions']} sessions "
        f"({meta['message_sessions']} messages, {conn_only} connection-only), {ndc} DCIDs, "
        f"{span:.0f} s of event time -> {', '.join(files)} + {meta_path} in {wall:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
