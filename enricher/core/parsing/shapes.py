"""ESA body shapes: one regex per line shape, each naming an event kind.

Rules are grouped by the body's first word (and, for `MID n …` lines, by the word after the MID), so a
line is tried against a handful of patterns, not all of them. Named groups become event fields;
`mid`, `icid`, `dcid` become the event's join keys. Wording varies across AsyncOS versions: patterns match
the stable part and keep the variable text (agent, reason, response) whole.
"""

from __future__ import annotations

import re
from typing import Any

_INT_FIELDS = frozenset(("size", "limit", "rid", "child", "parent", "port", "offset", "risk", "dhap_limit"))
_QUOTED = frozenset(("q1", "q2", "q3"))  # alternative quotings of one value

# Every number a line carries lands in a `long` field (the index mapping) and in the JSON of documents and
# checkpoints. ESA never writes one beyond it: a line that does is corrupt or hostile, and is not typed at
# all (an error document with its raw line, counted) rather than typed with a value nothing can store.
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
OUT_OF_RANGE = "number_out_of_range"


def _out_of_range() -> Typed:
    return "unparsed", None, None, None, {"reason": OUT_OF_RANGE}


def _rids(value: str) -> list[int] | None:
    """The RIDs of `[0, 1]`; None when one is out of range."""
    rids = [int(x) for x in value.replace(" ", "").split(",") if x]
    return rids if not rids or max(rids) <= LONG_MAX else None


def _extractor(kind: str, rx: re.Pattern[str]) -> Any:
    """Generate straight-line code for one pattern: no loop or lookups per line (the hot path)."""
    # Every int() is followed by the range check (see LONG_MAX); `_rids` checks its own list.
    gi = rx.groupindex
    oor = "return _out_of_range()"
    body = ["def extract(m, mid):", "    g = m.groups()"]
    if "mid" in gi:
        body += [f"    v = g[{gi['mid'] - 1}]", "    if v is not None:", "        mid = int(v)"]
        body += [f"        if mid > {LONG_MAX}: {oor}"]
    for name in ("icid", "dcid"):
        if name in gi:
            body += [
                f"    {name} = int(g[{gi[name] - 1}]) if g[{gi[name] - 1}] is not None else None",
                f"    if {name} is not None and {name} > {LONG_MAX}: {oor}",
            ]
        else:
            body.append(f"    {name} = None")
    body.append("    d = {}")
    for name, idx in sorted(gi.items(), key=lambda kv: kv[1]):
        if name in ("mid", "icid", "dcid"):
            continue
        out = "value" if name in _QUOTED else name
        body += [f"    v = g[{idx - 1}]", f"    if v is not None and {out!r} not in d:"]
        if name in _INT_FIELDS:
            body += ["        v = int(v)", f"        if v > {LONG_MAX} or v < {LONG_MIN}: {oor}"]
        elif name == "rids":
            body += ["        v = _rids(v)", f"        if v is None: {oor}"]
        body.append(f"        d[{out!r}] = v")
    body.append(f"    return {kind!r}, mid, icid, dcid, d or None")
    ns: dict[str, Any] = {"_rids": _rids, "_out_of_range": _out_of_range}
    exec("\n".join(body), ns)  # noqa: S102 - generated from our own patterns, no input involved
    return ns["extract"]


class Rule:
    """One line shape: its event kind and pattern, compiled (with its extractor) when first tried.

    The native core types almost every line from the pattern text (`rule_tables`), so a start-up that
    compiled all ~120 patterns paid for what the Python parser rarely needs (a third of `replay`'s import
    time); each is compiled the first time the Python parser tries it."""

    __slots__ = ("kind", "pattern", "flags", "compiled")

    def __init__(self, kind: str, pattern: str, flags: int = 0) -> None:
        self.kind = kind
        self.pattern = pattern
        self.flags = flags | re.S | re.U  # what `re.compile` reports for a str pattern compiled with these
        # (pattern, extractor) once compiled; `compile()` makes it.
        self.compiled: tuple[re.Pattern[str], Any] | None = None

    def compile(self) -> tuple[re.Pattern[str], Any]:
        """The compiled pattern and its extractor (made once)."""
        if self.compiled is None:
            rx = re.compile(self.pattern, self.flags)
            self.compiled = rx, _extractor(self.kind, rx)
        return self.compiled

    def groups(self) -> list[tuple[str, int]]:
        """The named groups and their numbers, read from the pattern text (as `re` numbers them: every
        capturing `(` in order, outside character classes, not escaped), without compiling it."""
        out: list[tuple[str, int]] = []
        p, n, i, in_class = self.pattern, 0, 0, False
        while i < len(p):
            c = p[i]
            if c == "\\":
                i += 1
            elif in_class:
                in_class = c != "]"
            elif c == "[":
                in_class = True
                i += 2 if p.startswith("^]", i + 1) else 1 if p.startswith("]", i + 1) else 0  # a literal `]`
            elif c == "(" and (p.startswith("?P<", i + 1) or not p.startswith("?", i + 1)):
                n += 1
                if p[i + 1] == "?":
                    end = p.index(">", i + 4)
                    out.append((p[i + 4 : end], n))
            i += 1
        return out


_r = Rule


# --- `MID n <rest>`: keyed by the first word of <rest> -------------------------------------------------
_MID_RULES: dict[str, list[Rule]] = {
    "ICID": [
        _r("mail_from", r"ICID (?P<icid>\d+) From: <(?P<address>[^>]*)>(?: (?P<extra>.*))?$"),
        _r("rcpt_to", r"ICID (?P<icid>\d+) RID (?P<rid>\d+) To: <(?P<address>[^>]*)>(?: (?P<extra>.*))?$"),
        _r(
            "rcpt_rejected",
            r"ICID (?P<icid>\d+) To: <(?P<address>[^>]*)> Rejected by (?P<by>.+?)(?: \((?P<detail>.*)\))?\.?$",
        ),
        # Addresses without angle brackets (seen in AsyncOS 14-15 logs).
        _r("mail_from", r"ICID (?P<icid>\d+) From: (?P<address>[^<>\s]+)(?: (?P<extra>.*))?$"),
        _r("rcpt_to", r"ICID (?P<icid>\d+) RID (?P<rid>\d+) To: (?P<address>[^<>\s]+)(?: (?P<extra>.*))?$"),
        _r("rcpt_invalid", r"ICID (?P<icid>\d+) Invalid recipient address:? *(?P<detail>.*?)\s*$"),
        _r("mid_note", r"ICID (?P<icid>\d+) (?P<detail>TLS (?:read|write) .+?)\s*$"),  # Debug level
    ],
    "ready": [
        _r("ready", r"ready (?P<size>\d+) bytes from <(?P<address>[^>]*)>"),
        _r("ready", r"ready (?P<size>\d+) bytes from (?P<address>[^<>\s]+)\s*$"),
        _r("ready", r"ready (?P<size>\d+) bytes\s*$"),  # older guides: `from <…>` on the next line
    ],
    "queued": [_r("queued", r"queued for delivery")],
    "Message-ID": [_r("message_id", r"Message-ID (?:'(?P<q1>.*)'|\"(?P<q2>.*)\"|(?P<q3>.*))$")],
    "Subject": [_r("subject", r"Subject (?:'(?P<q1>.*)'|\"(?P<q2>.*)\"|(?P<q3>.*))$")],
    "matched": [
        _r(
            "policy_match",
            r"matched (?:all recipients|recipients? (?P<recipients>.+?)) for per-recipient policy "
            r"(?P<policy>.+?) in the (?P<direction>\w+) table",
        )
    ],
    "using": [_r("engine_verdict", r"using engine: (?P<engine>\S+) (?P<verdict>.+?)\s*$")],
    "interim": [
        _r("engine_verdict_interim", r"interim verdict using engine: (?P<engine>\S+) (?P<verdict>.+?)\s*$"),
        _r("av_interim", r"interim AV verdict using (?P<engine>\S+) (?P<verdict>.+?)\s*$"),
    ],
    "antivirus": [_r("antivirus", r"antivirus (?P<verdict>\S+)(?: (?P<detail>.*?))?\s*$")],
    "AMP": [_r("amp_verdict", r"AMP file reputation verdict ?: ?(?P<verdict>.+?)\s*$")],
    "Outbreak": [_r("outbreak", r"Outbreak Filters: verdict (?P<verdict>\S+)(?: (?P<detail>.*?))?\s*$")],
    "DKIM:": [_r("dkim", r"DKIM: (?P<result>.+?)\s*$")],
    "DomainKeys:": [_r("domainkeys", r"DomainKeys: (?P<result>.+?)\s*$")],
    "SPF:": [
        _r(
            "spf",
            r"SPF: (?P<identity>\w+) identity (?P<address>\S+) (?P<result>\w+)(?: (?P<detail>.*?))?\s*$",
        ),
        _r("spf", r"SPF: (?P<detail>.+?)\s*$"),
    ],
    "DMARC:": [_r("dmarc", r"DMARC: (?P<detail>.+?)\s*$")],
    "DMARC": [_r("dmarc", r"DMARC (?P<detail>.+?)\s*$")],
    "SDR:": [_r("sdr", r"SDR: (?P<detail>.+?)\s*$")],
    "attachment": [_r("attachment", r"attachment (?:'(?P<q1>.*)'|\"(?P<q2>.*)\"|(?P<q3>.*))$")],
    "URL": [
        _r(
            "url_reputation",
            r"URL (?P<url>.+?) has reputation (?P<score>\S+) matched (?P<condition>.+?)\s*$",
        )
    ],
    "was": [
        _r("split", r"was split creating MID (?P<child>\d+)(?: (?P<reason>.+?))?\s*$"),
        _r("generated", r"was generated based on MID (?P<parent>\d+) by (?P<by>.+?)\s*$"),
        _r("generated_bounce", r"was generated for bounce of MID (?P<parent>\d+)"),
        _r("too_big", r"was too big \((?P<size>\d+)/(?P<limit>\d+)\) for scanning by (?P<engine>.+?)\s*$"),
    ],
    "generated": [_r("generated", r"generated based on MID (?P<parent>\d+) by (?P<by>.+?)\s*$")],
    "rewritten": [_r("rewritten", r"rewritten to (?:MID )?(?P<child>\d+) by (?P<by>.+?)\s*$")],
    "RID": [_r("response", r"RID +\[(?P<rids>[\d, ]*)\] Response (?P<response>.*?)\s*$")],
    "DLP": [
        _r(
            "dlp",
            r"DLP (?:violation\. Severity: (?P<severity>\S+) \(Risk Factor: (?P<risk>\d+)\)\. "
            r"DLP policy match: '(?P<policy>.*)'|(?P<verdict>no violation))",
        )
    ],
    "Custom": [_r("custom_log", r"Custom Log Entry: (?P<text>.+?)\s*$")],
    "SHA": [
        _r(
            "file_analysis_queued",
            r"SHA (?P<sha256>[0-9A-Fa-f]+) filename (?P<filename>.*?)(?: queued for possible file analysis upload)?\s*$",
        )
    ],
    "IncomingRelay": [_r("incoming_relay", r"IncomingRelay\((?P<name>[^)]*)\): (?P<detail>.+?)\s*$")],
    "not": [_r("scan_incomplete", r"not completely scanned by (?P<engine>\S+?)\.? Error: (?P<error>.+?)\s*$")],
    ",": [_r("scan_problem", r", [Mm]essage [Ss]canning (?:Problem|error): (?P<problem>.+?)\s*$")],
    "scanning": [_r("scan_problem", r"scanning error:? (?P<problem>.+?)\s*$")],
    "quarantined": [_r("quarantined", r"quarantined to \"?(?P<quarantine>[^\"(]+?)\"? ?(?:\((?P<reason>.*)\))?\s*$")],
    "enqueued": [
        _r(
            "quarantined",
            r"enqueued for transfer to centralized quarantine \"(?P<quarantine>[^\"]+)\"(?: \((?P<reason>.*)\))?",
        )
    ],
    "released": [_r("quarantine_released", r"released from (?:all )?quarantines?(?: \"?(?P<quarantine>[^\"]*)\"?)?")],
    "deleted": [_r("quarantine_deleted", r"deleted from (?:all )?quarantines?(?: \"?(?P<quarantine>[^\"]*)\"?)?")],
}
_MID_RULES["Subject:"] = _MID_RULES["Subject"]


# --- `ICID n <rest>` -----------------------------------------------------------------------------------
_ICID_RULES: list[Rule] = [
    _r("icid_close", r"ICID (?P<icid>\d+) close\s*$", re.I),
    _r("icid_lost", r"ICID (?P<icid>\d+) lost\s*$", re.I),
    _r(
        "hat",
        r"ICID (?P<icid>\d+) (?P<action>ACCEPT|REJECT|RELAY|TCPREFUSE|CONTINUE|THROTTLE|BLOCK|ALLOW) SG "
        r"(?P<sender_group>\S+) match(?: (?P<match>.*?))?(?: SBRS (?P<sbrs>None|not enabled|rfc1918|unavailable|-?[\d.]+))?"
        r"(?: country (?P<country>.+?))?\s*$",
        re.I,
    ),
    _r(
        "sbrs",
        r"ICID (?P<icid>\d+) SBRS (?P<sbrs>None|not enabled|rfc1918|unavailable|-?[\d.]+)(?: country (?P<country>.+?))?\s*$",
        re.I,
    ),
    _r("delayed_hat_reject", r"ICID (?P<icid>\d+) Delayed HAT REJECT(?: (?P<detail>.+?))?\s*$"),
    _r(
        "icid_tls",
        r"ICID (?P<icid>\d+) TLS (?P<status>success|failed|failure)(?: protocol (?P<protocol>\S+))?"
        r"(?: cipher (?P<cipher>\S+))?(?:[:,]? ?(?P<detail>.+?))?\s*$",
    ),
    _r("icid_tls_required", r"ICID (?P<icid>\d+) TLS was required but (?P<detail>.+?)\s*$"),
    _r("receiving_failed", r"ICID (?P<icid>\d+) Receiving Failed: (?P<reason>.+?)\s*$"),
    _r(
        "icid_disconnected",
        r"ICID (?P<icid>\d+) disconnected(?: address (?P<address>[^\s,]+))?,? ?(?P<reason>.*?)\s*$",
    ),
    _r("icid_address", r"ICID (?P<icid>\d+) address (?P<address>\S+)(?: (?P<detail>.+?))?\s*$"),
    _r("icid_rejected_rcpt", r"ICID (?P<icid>\d+) To: <(?P<address>[^>]*)> Rejected by (?P<by>.+?)\s*$"),
    # `ICID n MID m …`: a message line written connection first (older releases); it joins the message.
    _r("rcpt_invalid", r"ICID (?P<icid>\d+) MID (?P<mid>\d+) Invalid recipient address:? *(?P<detail>.*?)\s*$"),
    _r("mid_note", r"ICID (?P<icid>\d+) MID (?P<mid>\d+) (?P<detail>.+?)\s*$"),
    _r("icid_other", r"ICID (?P<icid>\d+)(?: (?P<detail>.*?))?\s*$"),
]

_ICID_BY_KIND = {rule.kind: rule for rule in _ICID_RULES}
# The word after `ICID n` (lower-cased) → the few rules that can match; anything else tries them all.
_ICID_ROUTES: dict[str, list[Rule]] = {
    word: [_ICID_BY_KIND[k] for k in kinds] + [_ICID_BY_KIND["icid_other"]]
    for word, kinds in {
        "close": ["icid_close"],
        "lost": ["icid_lost"],
        "sbrs": ["sbrs"],
        "delayed": ["delayed_hat_reject"],
        "tls": ["icid_tls", "icid_tls_required"],
        "receiving": ["receiving_failed"],
        "disconnected": ["icid_disconnected"],
        "address": ["icid_address"],
        "to:": ["icid_rejected_rcpt"],
        "mid": ["rcpt_invalid", "mid_note"],
        **{a: ["hat"] for a in ("accept", "reject", "relay", "tcprefuse", "continue", "throttle", "block", "allow")},
    }.items()
}

# --- `DCID n <rest>` -----------------------------------------------------------------------------------
_DCID_RULES: list[Rule] = [
    _r("dcid_close", r"DCID (?P<dcid>\d+) close\s*$"),
    _r(
        "dcid_tls",
        r"DCID (?P<dcid>\d+) TLS (?P<status>success|failed|failure)(?: protocol (?P<protocol>\S+))?"
        r"(?: cipher (?P<cipher>\S+))?(?: for (?P<domain>\S+))?(?:[:,]? ?(?P<detail>.+?))?\s*$",
    ),
    _r("dcid_other", r"DCID (?P<dcid>\d+)(?: (?P<detail>.*?))?\s*$"),
]

# --- everything else, keyed by the first word ----------------------------------------------------------
_RID_LIST = r"\[(?P<rids>[\d, ]*)\]"
# `Bounced:`/`Delayed:` in the mail log, every release's wording: `DCID d MID m` (3.x: `DCID: d Message m`),
# envelope addresses or not (`From:<f> To:<t>`, `From: <f> To: <t>`), `to RID r`, `RID r` or `to RID [r, …]`,
# then `- code - reason (response)`.
_BOUNCED = (
    r"%s: DCID:? (?P<dcid>\d+) (?:MID|Message) (?P<mid>\d+)(?: From: ?<(?P<from>[^>]*)>)?(?: To: ?<(?P<to>[^>]*)>)?"
    r" (?:to )?(?:RID )?(?:" + _RID_LIST + r"|(?P<rid>\d+)) - (?P<code>\d\.\d{1,3}\.\d{1,3}) - "
    r"(?P<reason>.+?)(?: ?(?P<response>\(['\"].*))?\s*$"
)
# The bounce log subscription: `Bounced: mid:rid From:<f> To:<t> Reason: "…" Response: …`.
_BOUNCE_LOG = (
    r"%s: (?P<mid>\d+):(?P<rid>\d+)(?: From: ?<(?P<from>[^>]*)>)?(?: To: ?<(?P<to>[^>]*)>)?"
    r"(?: Reason: ?\"(?P<code>\d\.\d{1,3}\.\d{1,3})? ?-? ?(?P<reason>[^\"]*)\")?(?: Response: ?(?P<response>.*?))?\s*$"
)
_OTHER_RULES: dict[str, list[Rule]] = {
    "Start": [_r("start_mid", r"Start MID (?P<mid>\d+) ICID (?P<icid>\d+)\s*$")],
    # Debug level: `MID: n Message filter Name: …` (what the filter engine logs while it runs).
    "MID:": [_r("mid_note", r"MID: (?P<mid>\d+),? (?P<detail>.+?)\s*$")],
    "Message": [
        _r("message_finished", r"Message finished MID (?P<mid>\d+) (?P<status>\w+)\s*$"),
        _r("message_aborted", r"Message aborted MID (?P<mid>\d+) (?P<reason>.+?)\s*$"),
        _r(
            "message_done",
            r"Message done (?P<ctype>DCID|RCID) (?P<dcid>\d+) MID (?P<mid>\d+) to RID " + _RID_LIST + r"(?P<extra>.*)$",
        ),
        _r("pending", r"Message (?P<mid>\d+) to RID " + _RID_LIST + r" pending till (?P<until>.+?)\s*$"),
    ],
    "New": [
        _r(
            "new_icid",
            r"New SMTP ICID (?P<icid>\d+) interface (?P<interface>.+?) \((?P<interface_ip>[^)]*)\) address "
            r"(?P<source_ip>\S+)(?: reverse dns host (?P<reverse_dns>\S+))?(?: verified (?P<verified>\w+))?\s*$",
            re.I,
        ),
        _r(
            "new_dcid",
            r"New SMTP DCID (?P<dcid>\d+) interface (?P<interface>\S+) address (?P<destination_ip>\S+)"
            r"(?: port (?P<port>\d+))?\s*$",
            re.I,
        ),
    ],
    "Delivery": [
        _r(
            "delivery_start",
            r"Delivery start (?P<ctype>DCID|RCID) (?P<dcid>\d+) MID (?P<mid>\d+) to (?:RID "
            + _RID_LIST
            + r")?(?P<extra>.*?)\s*$",
        )
    ],
    "RPC": [
        _r(
            "delivery_start",
            r"RPC Delivery start (?P<ctype>RCID) (?P<dcid>\d+) MID (?P<mid>\d+) to (?:RID "
            + _RID_LIST
            + r")?(?P<extra>.*?)\s*$",
        ),
        _r(
            "message_done",
            r"RPC Message done (?P<ctype>RCID) (?P<dcid>\d+) MID (?P<mid>\d+)(?: to RID "
            + _RID_LIST
            + r")?(?P<extra>.*)$",
        ),
    ],
    "Bounced:": [_r("bounced", _BOUNCED % "Bounced"), _r("bounce_log", _BOUNCE_LOG % "Bounced")],
    "Delayed:": [_r("delayed", _BOUNCED % "Delayed"), _r("delay_log", _BOUNCE_LOG % "Delayed")],
    "Connection": [
        _r(
            "connection_error",
            r"Connection Error: DCID (?P<dcid>\d+)(?: domain: (?P<domain>\S+))?(?: IP: (?P<destination_ip>\S+))?"
            r"(?P<detail>.*?)\s*$",
        ),
        _r("connection_error", r"Connection Error: (?P<detail>.+?)\s*$"),
    ],
    "Possible": [
        _r(
            "possible_delivery",
            r"Possible Delivery: DCID (?P<dcid>\d+) MID (?P<mid>\d+) to RID " + _RID_LIST + r"(?P<extra>.*)$",
        )
    ],
    "SMTP": [
        _r(
            "smtp_auth",
            r"SMTP Auth: \(ICID (?P<icid>\d+)\) (?P<result>succeeded|failed)(?: for user: (?P<user>\S+))?"
            r"(?: using AUTH mechanism: (?P<mechanism>\S+))?(?: with profile: (?P<profile>\S+))?(?P<detail>.*?)\s*$",
        ),
        _r("connection_killed", r"SMTP server connection killed ICID: (?P<icid>\d+)"),
    ],
    "LDAP:": [
        _r(
            "ldap_reroute",
            r"LDAP: (?P<query>\w+) query (?P<name>\S+) MID (?P<mid>\d+) RID (?P<rid>\d+) address (?P<address>\S+) to (?P<target>.+?)\s*$",
        ),
        # An LDAP accept query run in the work queue: the recipient is dropped or bounced there.
        _r(
            "ldap_reject",
            r"LDAP: (?P<query>Drop|Bounce) query (?P<name>\S+) MID (?P<mid>\d+) RID (?P<rid>\d+) address (?P<address>\S+)\s*$",
        ),
        _r(
            "dhap_drop",
            r"LDAP: Dropping connection due to potential Directory Harvest Attack from host=\(?'?(?P<source_ip>[0-9A-Fa-f.:]+)'?"
            r"(?:, ?'?(?P<source_host>[^')]*)'?)?\)?,?(?: ?dhap_limit=(?P<dhap_limit>\d+),?)?"
            r"(?: ?sender_group=(?P<sender_group>[^\s,]+))?(?P<detail>.*?)\s*$",
        ),
        _r("mid_note", r"LDAP: (?P<detail>(?:.*? )?MID (?P<mid>\d+)(?:[ ,].*?)?)\s*$"),
        _r("ldap_other", r"LDAP: (?P<detail>.+?)\s*$"),
    ],
    "EUQ:": [
        _r("quarantine_tagged", r"EUQ: Tagging MID (?P<mid>\d+) for quarantine"),
        _r("euq_quarantined", r"EUQ: Quarantined MID (?P<mid>\d+)"),
        _r("reinjected", r"EUQ: Reinjected MID (?P<parent>\d+) as MID (?P<mid>\d+)"),
        _r("mid_note", r"EUQ: (?P<detail>(?:.*? )?MID (?P<mid>\d+)(?:[ ,].*?)?)\s*$"),
        _r("euq_other", r"EUQ: (?P<detail>.+?)\s*$"),
    ],
    "ISQ:": [
        _r("quarantine_tagged", r"ISQ: Tagging MID (?P<mid>\d+) for quarantine"),
        _r("euq_quarantined", r"ISQ: Quarantined MID (?P<mid>\d+)"),
        _r("mid_note", r"ISQ: (?P<detail>(?:.*? )?MID (?P<mid>\d+)(?:[ ,].*?)?)\s*$"),
        _r("isq_other", r"ISQ: (?P<detail>.+?)\s*$"),
    ],
    # AMP log subscription (file reputation and analysis); MID when the line names one.
    "File": [
        _r(
            "amp_reputation_query",
            r"File reputation query initiating\. File Name = '?(?P<filename>.*?)'?, MID = (?P<mid>\d+)(?P<detail>.*?)\s*$",
        ),
        _r("amp_not_uploaded", r"File not uploaded for analysis\. +MID = (?P<mid>\d+),? (?P<detail>.*?)\s*$"),
        _r("amp_analysis", r"File (?:[Aa]nalysis|uploaded|analysis upload)(?P<detail>.*?)\s*$"),
    ],
    "Response": [
        _r(
            "amp_reputation",
            r"Response received for file reputation query from (?P<source>\w+)\. File ?Name = '?(?P<filename>.*?)'?, "
            r"MID = (?P<mid>\d+), Disposition = (?P<disposition>[^,]+), Malware = (?P<malware>[^,]+),(?P<detail>.*?)\s*$",
        ),
    ],
    "Retrospective": [_r("amp_retrospective", r"Retrospective verdict received\. (?P<detail>.+?)\s*$")],
    "SHA256:": [_r("amp_upload_status", r"SHA256: (?P<sha256>[0-9A-Fa-f]+)(?P<detail>.*?)\s*$")],
    # Anti-virus log subscription.
    "sophos": [
        _r("av_log", r"sophos +antivirus - MID (?P<mid>\d+)(?: (?P<rid>\d+))? - (?P<result>.+?)\s*$", re.I),
    ],
    # File header and appliance-level (system) lines.
    "Begin": [_r("log_begin", r"Begin Logfile")],
    "Version:": [_r("log_version", r"Version: (?P<version>\S+)(?: SN: (?P<serial>\S+))?")],
    "Time": [_r("log_time_offset", r"Time offset from UTC: (?P<offset>-?\d+) seconds")],
    "Logfile": [_r("log_rolled", r"Logfile (?P<detail>.+?)\s*$")],
    "End": [_r("log_end", r"End(?: of)? [Ll]ogfile")],
    "A": [_r("system_alert", r"A (?P<alert>\S+) alert was sent to (?P<to>\S+)(?: with subject (?P<subject>.*?))?\s*$")],
    "Internal": [_r("system_internal_smtp", r"Internal SMTP (?P<detail>.+?)\s*$")],
    "Error": [_r("system_error", r"Error while (?P<detail>.+?)\s*$")],
    "URL": [_r("system_url_categories", r"URL category definitions (?P<detail>.+?)\s*$")],
    "URL_REP_CLIENT:": [_r("system_service", r"URL_REP_CLIENT: (?P<detail>.+?)\s*$")],
    "graymail": [_r("system_service", r"graymail (?P<detail>.+?)\s*$")],
    "Your": [_r("system_license", r"Your (?P<detail>.+? key will expire.*?)\s*$")],
    "CASE": [_r("system_case_cache", r"CASE cache status: (?P<detail>.+?)\s*$")],
    "SenderBase": [_r("system_senderbase", r"SenderBase (?P<detail>.+?)\s*$")],
}

_CEF = re.compile(
    r"CEF:\d+\|[^|]*\|[^|]*\|(?P<version>[^|]*)\|(?P<event_class>[^|]*)\|[^|]*\|[^|]*\|(?P<ext>.*)$", re.S
)
_CEF_KV = re.compile(r"(\w+)=(.*?)(?= \w+=|$)", re.S)
_CEF_FIELDS = {
    "ESAMID": "mid",
    "ESAICID": "icid",
    "ESADCID": "dcid",
    "act": "action",
    "ESAFinalActionDetails": "final_action_details",
    "ESAMailFlowPolicy": "mail_flow_policy",
    "ESAASVerdict": "antispam",
    "ESAAVVerdict": "antivirus",
    "ESAAMPVerdict": "amp",
    "ESAGMVerdict": "graymail",
    "ESACFVerdict": "content_filter",
    "ESADLPVerdict": "dlp",
    "suser": "from",
    "duser": "to",
    "src": "source_ip",
    "dvc": "observer_ip",
    "deviceExternalId": "serial",
}

Typed = tuple[str, int | None, int | None, int | None, dict[str, Any] | None]

# `MID n <rest>` that no rule types: this kind, with <rest> kept in this field (the native core too).
MID_UNRECOGNIZED = "mid_unrecognized"
DETAIL = "detail"


def _first_match(rules: list[Rule], text: str, mid: int | None = None) -> Typed | None:
    for rule in rules:
        rx, extract = rule.compiled or rule.compile()
        m = rx.match(text)
        if m is not None:
            return extract(m, mid)  # type: ignore[no-any-return]
    return None


def _cef(body: str) -> Typed | None:
    i = body.find("CEF:")
    m = _CEF.match(body, i) if i >= 0 else None
    if m is None:
        return None
    d: dict[str, Any] = {"version": m.group("version"), "event_class": m.group("event_class")}
    for k, v in _CEF_KV.findall(m.group("ext")):
        name = _CEF_FIELDS.get(k)
        if name is not None:
            d[name] = v.strip()
    mid = d.pop("mid", None)
    icid = d.pop("icid", None)
    dcid = d.pop("dcid", None)

    def num(v: str | None) -> int | None:
        return int(v) if v is not None and v.isdigit() else None

    ids = num(mid), num(icid), num(dcid)
    if any(x is not None and x > LONG_MAX for x in ids):
        return _out_of_range()
    return "consolidated_event", *ids, d


def type_body(body: str) -> Typed:
    """Classify one ESA body into (kind, mid, icid, dcid, fields); `unparsed` when no shape fits."""
    if body.startswith("MID "):
        sp = body.find(" ", 4)
        num = body[4:sp] if sp > 0 else body[4:]
        comma = num.endswith(",")
        # `MID n: …` is how debug and trace lines name a message (`Trace: MID 14: Skip AMP Engine check`).
        note = num.endswith(":")
        if comma or note:
            num = num[:-1]
        if num.isdigit() and num.isascii():
            mid = int(num)
            if mid > LONG_MAX:
                return _out_of_range()
            rest = body[sp + 1 :].lstrip(" ") if sp > 0 else ""
            if comma:
                rest = ", " + rest
            word = rest.split(" ", 1)[0]
            if "(" in word:
                word = word.split("(", 1)[0]
            for rule in _MID_RULES.get(word, ()):
                rx, extract = rule.compiled or rule.compile()
                m = rx.match(rest)
                if m is not None:
                    return extract(m, mid)  # type: ignore[no-any-return]
            return "mid_note" if note else MID_UNRECOGNIZED, mid, None, None, {DETAIL: rest}
    elif body.startswith("ICID "):
        parts = body.split(" ", 3)
        rules = _ICID_ROUTES.get(parts[2].lower(), _ICID_RULES) if len(parts) > 2 else _ICID_RULES
        typed = _first_match(rules, body)
        if typed is not None:
            return typed
    elif body.startswith("DCID "):
        typed = _first_match(_DCID_RULES, body)
        if typed is not None:
            return typed
    else:
        sp = body.find(" ")
        word = body if sp < 0 else body[:sp]
        other_rules = _OTHER_RULES.get(word)
        if other_rules:
            typed = _first_match(other_rules, body)
            if typed is not None:
                return typed
        if "CEF:" in body:
            typed = _cef(body)
            if typed is not None:
                return typed
    return "unparsed", None, None, None, None


# A debug or trace line that no shape types and that names no message or connection: appliance-level.
SYSTEM_DEBUG = "system_debug"
_DEBUG_LEVELS = frozenset(("Debug", "Trace"))


def untyped_kind(level: str | None, body: str) -> str:
    """The kind of a body no shape types: `system_debug` for an unidentified debug or trace line (they
    describe the appliance's work, e.g. `Trace: GRAYMAIL: No Actions Applied`), else `unparsed`."""
    if level in _DEBUG_LEVELS and "MID" not in body and "ICID" not in body and "DCID" not in body:
        return SYSTEM_DEBUG
    return "unparsed"


# Kinds whose line is not about a message or connection (appliance-level, file header).
SYSTEM_KINDS = frozenset(
    r.kind for rules in _OTHER_RULES.values() for r in rules if r.kind.startswith(("system_", "log_"))
) | frozenset(
    ("amp_analysis", "amp_retrospective", "amp_upload_status", "euq_other", "isq_other", "ldap_other", SYSTEM_DEBUG)
)

# The lines that open a native log file, stamped before their own `Time offset from UTC` applies: no clock
# reading (neither the parser's clock nor the stitcher's watermark moves with them).
HEADER_KINDS = frozenset(("log_begin", "log_version", "log_time_offset"))

# Kinds that are attributed to a session but whose shape was not recognised: counted as unparsed.
UNRECOGNIZED_KINDS = frozenset(("unparsed", MID_UNRECOGNIZED, "icid_other", "dcid_other"))

ALL_KINDS = frozenset(
    [r.kind for rules in _MID_RULES.values() for r in rules]
    + [r.kind for r in _ICID_RULES]
    + [r.kind for r in _DCID_RULES]
    + [r.kind for rules in _OTHER_RULES.values() for r in rules]
    + ["consolidated_event", MID_UNRECOGNIZED, "mid_note", SYSTEM_DEBUG, "unparsed"]
)
