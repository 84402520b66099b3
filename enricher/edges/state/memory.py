"""In-process state store: checkpoints kept in memory, encoded as a durable store keeps them.

For the service's unit tests and for a service that does not need to survive restarts. Each checkpoint is kept
encoded (`encode_state`), so a restore gets a copy that shares nothing with the state that was saved, and what
the Kafka store would refuse to encode fails here too.
"""

from __future__ import annotations

from typing import Any

from enricher.core.sessions.state import decode_state, encode_state
from enricher.edges.ports import Checkpoint


class MemoryStateStore:
    """The latest checkpoint of each (stream, partition), in this process."""

    def __init__(self) -> None:
        self._d: dict[tuple[str, int], tuple[int, int, bytes]] = {}
        self.last_size = 0  # bytes of the last checkpoint saved (encoded), as the Kafka store reports it

    def save(self, topic: str, partition: int, number: int, offset: int, state: dict[str, Any]) -> None:
        """Keep the checkpoint."""
        blob = encode_state(state)
        self.last_size = len(blob)
        self._d[(topic, partition)] = (number, offset, blob)

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        """The last checkpoint saved."""
        got = self._d.get((topic, partition))
        if got is None:
            return None
        return Checkpoint(got[0], got[1], decode_state(got[2]))

    def load_many(self, topic: str, partitions: list[int]) -> dict[int, Checkpoint | None]:
        """`load` of each partition."""
        return {p: self.load(topic, p) for p in partitions}
