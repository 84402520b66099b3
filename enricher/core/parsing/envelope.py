"""Envelopes: split a log record into appliance, event time, level, tag and body.

Accepted (shared/docs/log-formats.md):
  1. native file lines      `Thu Aug 14 11:04:31 2014 Info: body`
  2. RFC 3164 syslog        `[<PRI>]Mmm dd hh:mm:ss [YYYY] [host] tag[: ]Info: body` (PRI, host, year optional)
  3. RFC 5424 syslog        `<PRI>1 2026-11-27T12:00:00+09:00 host tag - - - Info: body`
  4. a native line inside a syslog header, and a forwarder prefix ending in `: ` before any of these.
Records without any header are either bare ESA bodies (copied from a page or a tool without stamps) or
continuations of the previous record; `is_bare_body` tells them apart.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from enricher.core.parsing.timestamps import MONTHS, TimeResolver, parse_iso

# The level words, one definition for every pattern here and for the native core (`rule_tables`).
LEVEL_NAMES = ("Info", "Warning", "Critical", "Debug", "Trace")
LEVELS = frozenset(LEVEL_NAMES)
_LEVEL_WORD = "(" + "|".join(LEVEL_NAMES) + ")"
# The body of a native log file's header that must be applied before the next line's stamp is read.
OFFSET_HEADER = "Time offset"

_PRI = re.compile(r"<(\d{1,3})>")
_NATIVE = re.compile(r"[A-Z][a-z]{2} ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d) (\d{4}) ?(.*)", re.S)
_BSD = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d:\d\d:\d\d)(?: (\d{4}))? (.*)", re.S)
_HOST_TAG = re.compile(r"([^\s:]+) ([^\s:\[\]]+)(?:\[[^\]]*\])?:(?: (.*))?$", re.S)
_TAG = re.compile(r"([^\s:\[\]]+)(?:\[[^\]]*\])?:(?: (.*))?$", re.S)
_ORIGINAL_ADDRESS = re.compile(r"(\S+) Original Address=(\S+) (.*)", re.S)
_LEVEL = re.compile(_LEVEL_WORD + r":(?: +(.*))?$", re.S)
# The two shapes nearly all traffic has. The native core matches them by hand (not with a regex) and is
# handed these patterns, with `{levels}` unfilled, to check that they are still the ones it implements.
FAST_BSD_SHAPE = (
    r"(?:<\d{1,3}>)?([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?!\d{4} )([^\s:]+) ([^\s:\[\]]+)(?:\[\d+\])?: "
    r"{levels}:(?: +|$)(.*)"
)
FAST_NATIVE_SHAPE = r"([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d \d{4}) {levels}:(?: +|$)(.*)"
_FAST_BSD = re.compile(FAST_BSD_SHAPE.replace("{levels}", _LEVEL_WORD), re.S)
_FAST_NATIVE = re.compile(FAST_NATIVE_SHAPE.replace("{levels}", _LEVEL_WORD), re.S)
_LEVEL_ANYWHERE = re.compile(r"(?:^|: )" + _LEVEL_WORD + r":(?: +(.*))?$", re.S)
_RFC5424 = re.compile(r"1 (\S+) (\S+) (\S+) \S+ \S+ (-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (.*))?$", re.S)
# Bodies that start an ESA record on their own even without a header (bare copies of log lines).
_BARE_BODY = re.compile(
    r"(?:MID \d|ICID \d|DCID \d|RCID \d|Start MID |Message (?:finished|aborted|done|\d)|New SMTP |"
    r"(?:RPC )?Delivery start |Bounced: |Delayed: |File (?:not )?upload|File reputation|File [Aa]nalysis|"
    r"Response received for file|Retrospective verdict|SMTP Auth|LDAP: |EUQ: |ISQ: |Internal SMTP|"
    r"Connection Error|Possible Delivery|Begin Logfile|Version: |Time offset from UTC)"
)


class Envelope(NamedTuple):
    """What the envelope says about one record."""

    appliance: str | None
    ts: float | None
    level: str | None
    tag: str | None
    body: str


def _level_split(text: str) -> tuple[str | None, str]:
    m = _LEVEL.match(text)
    if m:
        return m.group(1), (m.group(2) or "").strip()
    return None, text.strip()


class EnvelopeParser:
    """Parses envelopes; keeps the per-appliance time state (zones, year inference)."""

    def __init__(self, times: TimeResolver) -> None:
        self.times = times

    def parse(self, line: str, default_appliance: str) -> Envelope | None:
        """Parse one record; None when it has no header (see `is_bare_body`)."""
        # Fast paths for the two shapes that make up nearly all traffic; anything unusual falls through.
        m = _FAST_BSD.match(line)
        if m is not None:
            stamp, host, tag, level, body = m.groups()
            if not (body[3:4] == " " and body[4:7] in MONTHS):
                return Envelope(host, self.times.bsd_stamp(host, stamp), level, tag, body.strip())
        else:
            m = _FAST_NATIVE.match(line)
            if m is not None:
                stamp, level, body = m.groups()
                return Envelope(None, self.times.native_stamp(default_appliance, stamp), level, None, body.strip())
        env = self._parse_at(line, default_appliance)
        if env is not None:
            return env
        # A forwarder may put its own prefix (`relay app: `) before a full header: look for one.
        start = 0
        for _ in range(3):
            i = line.find(": ", start)
            if i < 0:
                break
            env = self._parse_at(line[i + 2 :], default_appliance)
            if env is not None:
                return env
            start = i + 2
        # A relay that dropped the stamp but kept `prefix: Level: body`: a record with no event time.
        m = _LEVEL_ANYWHERE.search(line)
        if m is not None:
            return Envelope(None, None, m.group(1), None, (m.group(2) or "").strip())
        return None

    def _parse_at(self, line: str, default_appliance: str) -> Envelope | None:
        rest = line
        if rest.startswith("<"):
            m = _PRI.match(rest)
            if m:
                rest = rest[m.end() :]
        if rest.startswith("1 "):
            return self._rfc5424(rest, default_appliance)
        if len(rest) > 8 and rest[3] == " " and rest[4:7] in MONTHS:
            m = _NATIVE.match(rest)
            if m:
                mon, day, hms, year, text = m.groups()
                ts = self.times.full(default_appliance, mon, int(day), hms, int(year))
                level, body = _level_split(text)
                if level is None:
                    return None
                return Envelope(None, ts, level, None, body)
        m = _BSD.match(rest)
        if m is None:
            return None
        mon, day, hms, year, after = m.groups()
        if mon not in MONTHS:
            return None
        return self._bsd_after_stamp(mon, int(day), hms, year, after, default_appliance)

    def _bsd_after_stamp(
        self, mon: str, day: int, hms: str, year: str | None, after: str, default_appliance: str
    ) -> Envelope | None:
        host: str | None = None
        tag: str | None = None
        msg: str
        oa = _ORIGINAL_ADDRESS.match(after)
        if oa:
            # A relay that stores the sender's address and then the original header (`Original Address=`).
            inner = self._parse_at(oa.group(3), oa.group(2))
            if inner is not None:
                return inner._replace(appliance=inner.appliance or oa.group(2))
        ht = _HOST_TAG.match(after)
        if ht:
            host, tag, msg = ht.group(1), ht.group(2), ht.group(3) or ""
            if tag in LEVELS:  # `host Info: body`: no tag
                msg = f"{tag}: {msg}"
                tag = None
        else:
            t = _TAG.match(after)
            if t is None:
                return None
            tag, msg = t.group(1), t.group(2) or ""
            if tag in LEVELS:
                msg = f"{tag}: {msg}"
                tag = None
        appliance = host or default_appliance
        # A native line wrapped by a forwarder keeps its own, complete stamp: prefer it.
        if len(msg) > 8 and msg[3] == " " and msg[4:7] in MONTHS:
            nm = _NATIVE.match(msg)
            if nm:
                nmon, nday, nhms, nyear, text = nm.groups()
                level, body = _level_split(text)
                if level is not None:
                    ts = self.times.full(appliance, nmon, int(nday), nhms, int(nyear))
                    return Envelope(host, ts, level, tag, body)
        level, body = _level_split(msg)
        if level is None and msg:
            # A collector's own header around a complete one (`collector rsyslogd: Nov 27 … esa4 mail_logs: Info: …`).
            inner = self._parse_at(msg, default_appliance)
            if inner is not None and inner.level is not None:
                return inner
        if year is not None:
            ts = self.times.full(appliance, mon, day, hms, int(year))
        else:
            ts = self.times.yearless(appliance, mon, day, hms)
        return Envelope(host, ts, level, tag, body)

    def _rfc5424(self, rest: str, default_appliance: str) -> Envelope | None:
        m = _RFC5424.match(rest)
        if m is None:
            return None
        stamp, host, app, _sd, msg = m.groups()
        msg = (msg or "").lstrip("\ufeff")
        ts = parse_iso(stamp) if stamp != "-" else None
        h = None if host == "-" else host
        level, body = _level_split(msg)
        return Envelope(h, ts, level, None if app == "-" else app, body)


def is_bare_body(line: str) -> bool:
    """True when a header-less record starts like an ESA body (a record of its own, not a continuation)."""
    return _BARE_BODY.match(line) is not None
