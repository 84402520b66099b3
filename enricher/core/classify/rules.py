"""Abort classification: `abort_reason` and `abort_layer` as in docs/abort-taxonomy.md, for every session.

The rule tables, in order of precedence: one small rule per case (in `messages`, `connections`,
`recipients`), tried in order; each returns a `Verdict` with the evidence it used, or None. The evidence
names the rule that decided by its slug (`rule`; stable, documented). When the evidence is not enough the
answer is `abort_layer: unknown`, never a silent guess. Whether a connection that carried messages gets a
document of its own is decided here too (`connection_document_verdict`).
"""

from __future__ import annotations

from collections.abc import Callable

from enricher.core.classify import connections, messages, recipients
from enricher.core.classify.connections import CONNECTION_FAILURE_RULES, CONNECTION_LEVEL_LAYERS, in_flight_mid
from enricher.core.classify.verdict import UNKNOWN, ClassifyConfig, RuleTable, Verdict, aborted, first_verdict
from enricher.core.parsing.timestamps import format_iso
from enricher.core.sessions.session import MESSAGE, Session


def ending_not_logged(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Closed by a window (idle timeout, eviction, end of input, batch end) before its terminal line, with
    nothing else to tell how it ended: say so, with what was seen last and what closed it."""
    ending = s.ending
    if ending is None or (s.finished_ts if s.kind == MESSAGE else s.closed_ts) is not None:
        return None
    evidence = {k: v for k, v in ending.items() if k != "at"}
    evidence["last_line_kind"] = s.last_kind or None
    evidence["last_line_time"] = format_iso(s.last_ts)
    at = ending["at"]
    if ending.get("closed_by") == "idle_timeout":
        # Closed as of its deadline, not as of the line whose clock showed it: that may be any of the lines
        # within the grace period after the deadline, as they arrive in any order.
        at = s.last_ts + ending["idle_timeout_seconds"]
    evidence["seconds_before_close"] = round(at - s.last_ts, 3)
    return aborted("ending_not_logged", UNKNOWN, "unknown", **evidence)


# Precedence: the message's own ending lines, then its connection's failure if it was being received, then
# what it went through once received (quarantine, delivery, recipients), and only then an ending not logged.
MESSAGE_RULES: RuleTable = (
    ("receiving_aborted", messages.receiving_aborted),
    ("policy_abort", messages.policy_abort),
    ("connection_inherited", messages.connection_inherited),
    ("finished_aborted", messages.finished_aborted),
    ("quarantine", messages.quarantine),
    ("delivery", messages.delivery),
    ("recipients_rejected", recipients.recipients_rejected),
    ("ending_not_logged", ending_not_logged),
)

# Connections: their own failures first (the ones a message being received inherits), then how they ended.
CONNECTION_RULES: RuleTable = (
    *CONNECTION_FAILURE_RULES,
    ("connection_end", connections.connection_end),
    ("ending_not_logged", ending_not_logged),
)

# Every slug `esa.abort.evidence.rule` (and `connection_rule`) can name, in table order.
RULE_SLUGS = tuple(dict.fromkeys(slug for slug, _ in (*MESSAGE_RULES, *CONNECTION_RULES)))


def classify(s: Session, cfg: ClassifyConfig) -> Verdict:
    """Classify one session (message or connection) by the first rule that applies."""
    if s.kind == MESSAGE:
        return first_verdict(MESSAGE_RULES, s, cfg) or messages.message_default(s, cfg)
    return first_verdict(CONNECTION_RULES, s, cfg) or Verdict(None, None, "open", {})


def connection_document_verdict(
    c: Session, message: Callable[[int], Session | None], cfg: ClassifyConfig
) -> Verdict | None:
    """A connection that carried messages (`message`: those at hand, by MID) gets a document of its own only
    when it ended abnormally at its own level and no message was being received then (that message inherits
    the failure and tells it); returns its verdict in that case, else None. A pure function of the two."""
    if in_flight_mid(c, message) is not None:
        return None
    v = classify(c, cfg)
    return v if v.abort_layer in CONNECTION_LEVEL_LAYERS else None
