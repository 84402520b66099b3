"""Several sinks driven as one (`service.outputs`): every document goes to each, a flush waits for all."""

from __future__ import annotations

from typing import Any

from enricher.edges.ports import BatchSink, KeepAlive


class Fanout:
    """The `BatchSink` interface of the service (add, submit, settle, flush, discard, …) over several sinks."""

    def __init__(self, sinks: list[BatchSink]) -> None:
        self.sinks = sinks

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document in every sink."""
        for s in self.sinks:
            s.add(doc, sources, owner=owner)

    def pending(self) -> int:
        """Documents queued and not yet sent, in the sink that has most."""
        return max(s.pending() for s in self.sinks)

    def in_flight(self) -> int:
        """Documents sent and not yet settled, in all sinks."""
        return sum(s.in_flight() for s in self.sinks)

    def full(self) -> bool:
        """True when a flush is due by size in any sink."""
        return any(s.full() for s in self.sinks)

    def in_flight_done(self) -> bool:
        """True when some sink has an answer to settle."""
        return any(s.in_flight_done() for s in self.sinks)

    def submit(self, keep_alive: KeepAlive | None = None) -> None:
        """Send what each sink has queued."""
        for s in self.sinks:
            s.submit(keep_alive)

    def settle(self, keep_alive: KeepAlive | None = None) -> None:
        """Settle the sinks whose answer is in (never waits for one still on its way)."""
        for s in self.sinks:
            if s.in_flight_done():
                s.settle(keep_alive)

    def flush(self, keep_alive: KeepAlive | None = None, deadline: float | None = None) -> None:
        """Write everything queued in every sink (FlushDeadline and InterruptedError as each sink raises them)."""
        for s in self.sinks:
            s.flush(keep_alive, deadline=deadline)

    def discard(self, owners: Any) -> int:
        """Drop the queued documents of these owners in every sink."""
        owners = list(owners)
        return max(s.discard(owners) for s in self.sinks)

    def reown(self, owner: Any) -> None:
        """An owner is assigned again."""
        for s in self.sinks:
            s.reown(owner)

    def close(self) -> None:
        """Stop every sink."""
        for s in self.sinks:
            s.close()
