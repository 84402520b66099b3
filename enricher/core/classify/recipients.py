"""Refused recipients: the abort_reason of each (docs/abort-taxonomy.md §2, per recipient), and the message's
when every recipient was refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enricher.core.classify.verdict import POLICY, ClassifyConfig, Verdict, aborted

if TYPE_CHECKING:  # `sessions.merge` imports this module: nothing of the sessions package at run time
    from enricher.core.sessions.session import Session

# Who refused a recipient in the SMTP dialogue (`Rejected by …`, a prefix) → its abort_reason.
RCPT_REJECTS = (
    ("LDAPACCEPT", "rcpt_rejected_ldap"),
    ("RAT", "rcpt_rejected_rat"),
    ("Receiving Control", "rcpt_rate_limited"),
)
RCPT_REJECTED_OTHER = "rcpt_rejected_other"
# A recipient accepted in the dialogue, then dropped or bounced by an LDAP accept query in the work queue.
RCPT_REJECTED_LDAP_QUERY = "rcpt_rejected_ldap"


def refusal_reason(by: str) -> str:
    """The abort_reason of a recipient refused in the SMTP dialogue by `by` (the line's `Rejected by …`)."""
    for needle, slug in RCPT_REJECTS:
        if by.startswith(needle):
            return slug
    return RCPT_REJECTED_OTHER


def recipients_rejected(s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """Every recipient refused (RAT, LDAP, rate limit) and no other ending: the message-level reason.

    A recipient accepted in the SMTP dialogue and then dropped or bounced by an LDAP accept query in the work
    queue (`LDAP: Drop query …`) counts as refused."""
    rejected = s.data.get("rejected")
    if not rejected:
        return None
    rcpts = s.data.get("rcpts")
    if rcpts:
        refused = {r.get("address") for r in rejected}
        if any(address not in refused for _rid, address in rcpts):
            return None
    # The earliest refusal, whatever the order its lines arrived in (state from before it was kept: the first).
    reason, by = s.data.get("first_rejected") or (rejected[0]["reason"], rejected[0].get("by"))
    return aborted(reason, POLICY, "rejected", by=by or None, recipients_rejected=len(rejected))
