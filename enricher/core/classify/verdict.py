"""What a classification answers (`Verdict`), its settings (`ClassifyConfig`) and the rule type shared by the
rule modules (`messages`, `connections`, `recipients`) and the rule tables (`rules`). Imports nothing of the
sessions package at run time (see `recipients`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for types: `sessions.merge` imports this package (recipient refusals), not the reverse
    from enricher.core.sessions.session import Session

# abort_layer values (the contract's closed list).
TRANSPORT, APPLICATION, TIMEOUT, POLICY = "transport", "application", "timeout", "policy"
RESOURCE, TLS, DELIVERY, INTERNAL, UNKNOWN = "resource", "tls", "delivery", "internal", "unknown"
LAYERS = frozenset((TRANSPORT, APPLICATION, TIMEOUT, POLICY, RESOURCE, TLS, DELIVERY, INTERNAL, UNKNOWN))


@dataclass(frozen=True)
class ClassifyConfig:
    """Settings the classification depends on (recorded in the evidence when used)."""

    inbound_timeout_seconds: float = 300.0
    inbound_timeout_tolerance_seconds: float = 5.0
    # Per appliance (`esa1`) or per appliance and listener interface (`esa1/Data 1`) overrides.
    inbound_timeouts: dict[str, float] = field(default_factory=dict)
    lost_window_seconds: float = 5.0


@dataclass
class Verdict:
    """How a session ended: the two contract fields plus what the document says around them."""

    abort_reason: str | None
    abort_layer: str | None
    disposition: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """ECS event.outcome."""
        if self.abort_reason in _NOT_FAILURES:
            return _NOT_FAILURES[self.abort_reason]
        if self.abort_reason is not None:
            return "failure"
        return "success" if self.disposition in _SUCCESS else "unknown"


_SUCCESS = frozenset(("delivered", "quarantined", "released", "queued", "done"))
# Endings with an abort_reason that are not (known to be) failures: a plain QUIT, a delivery still being
# retried, an ending the log never showed.
_NOT_FAILURES = {"quit_without_message": "success", "soft_bounce": "unknown", "ending_not_logged": "unknown"}

# A rule reads one session and answers a Verdict with its evidence, or None when it does not apply.
Rule = Callable[["Session", ClassifyConfig], "Verdict | None"]
# A rule table: (stable slug, rule) in order of precedence. The slug is what `esa.abort.evidence.rule` says
# (docs/abort-taxonomy.md): a contract with the analyst, so it never follows a function's name.
RuleTable = tuple[tuple[str, Rule], ...]


def aborted(slug: str, layer: str, disposition: str = "aborted", /, **evidence: Any) -> Verdict:
    """A verdict with an abort reason; evidence values that are None are left out."""
    return Verdict(slug, layer, disposition, {k: v for k, v in evidence.items() if v is not None})


def first_verdict(rules: RuleTable, s: Session, cfg: ClassifyConfig) -> Verdict | None:
    """The verdict of the first rule of `rules` that applies, its slug in the evidence (`rule`)."""
    for slug, rule in rules:
        v = rule(s, cfg)
        if v is not None:
            v.evidence.setdefault("rule", slug)
            return v
    return None
