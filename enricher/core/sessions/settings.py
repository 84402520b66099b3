"""Settings and counters of the stitcher (stitcher.py documents the whole; kept apart so that the session
table, which the stitcher's state lives in, and the stitcher both read them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StitchConfig:
    """Windowing settings of the stitcher (all durations in seconds of event time)."""

    grace_seconds: float = 5.0
    idle_timeout_seconds: float = 3600.0
    max_open_sessions: int = 200_000
    max_dormant_sessions: int = 20_000
    dormant_horizon_seconds: float = 7 * 86400.0
    closed_retention_seconds: float | None = None  # None: the idle timeout
    max_closed_sessions: int = 10_000
    max_closed_digests: int = 100_000
    quiet_seconds: float = 60.0
    keep_raw: bool = True


@dataclass
class StitchStats:
    """Counters the stitcher keeps (exported as metrics and in the replay summary). `system`, `uncorrelated`,
    `icid_zero` and `delivery_connection` count lines that are in no document, each once (see
    `Stitcher.line_outcomes`); `unrecognized` counts lines of unrecognised shape, in a session or not."""

    system: int = 0  # appliance-level lines and file headers
    unrecognized: int = 0
    icid_zero: int = 0  # `ICID 0 …` lines other than the HAT outcomes that make a document of their own
    uncorrelated: int = 0  # lines that name no session they could join
    delivery_connection: int = 0  # outbound `DCID n …` lines: their facts go into the messages' deliveries
    # Lines of delivery connections (`New SMTP DCID`, `DCID n TLS …`, `Connection Error: DCID n`, `DCID n close`):
    # folded into the documents of the messages delivered on that connection (their data, not their raw
    # lines), or, when no message of the input was delivered on it, in no document at all (counted here).
    # Both are known once the connection's record is dropped; `delivery_connection` counts them on arrival.
    dcid_in_messages: int = 0
    dcid_unmatched: int = 0
    opened: int = 0
    revived: int = 0
    duplicates: int = 0
    closed: dict[str, int] = field(default_factory=dict)

    def closed_as(self, state: str) -> None:
        """Count one session written with `state`."""
        self.closed[state] = self.closed.get(state, 0) + 1
