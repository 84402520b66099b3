"""Kafka state store: durable checkpoints of the windowed state, per source partition, kept in Kafka itself.

A checkpoint of partition p is the stitcher's whole `snapshot()`, serialised and cut into chunks, written
to the compacted state topic (partition p) under keys that carry the checkpoint number and a token of the
writing process (`<topic>/<p>/<n>.<token>/<i>`), followed by a marker (`<topic>/<p>/marker`: checkpoint
number, token, chunk count and the source offset it covers). Chunks are immutable, the marker is written
last, and the previous checkpoint's chunks are deleted with tombstones afterwards: a crash at any point
leaves either the old or the new checkpoint complete. The token keeps two writers apart (a member that was
expelled from the group but does not know it yet, writing the same number as the partition's new owner):
whichever marker is last names chunks that are all its own. Restore reads partition p of the state topic
to its end. See docs/decisions/durable-state.md for the choice and the measured recovery time.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import orjson

from enricher.core.sessions.state import decode_state, encode_state
from enricher.edges.ports import Checkpoint, StateStoreError

CHUNK_BYTES = 512 * 1024


class KafkaStateStore:
    """Checkpoints in a compacted Kafka topic with as many partitions as the source topic."""

    def __init__(self, producer: Any, consumer_factory: Any, state_topic: str) -> None:
        self.producer = producer
        self.consumer_factory = consumer_factory  # () -> a KafkaConsumer without group
        self.state_topic = state_topic
        self._previous: dict[tuple[str, int], tuple[str, int]] = {}  # (topic, p) -> (checkpoint id, chunks)
        self.token = os.urandom(4).hex()  # this writer
        self.last_size = 0  # bytes of the last checkpoint written (compressed)

    def _key(self, topic: str, partition: int, *rest: object) -> bytes:
        return "/".join([topic, str(partition), *map(str, rest)]).encode()

    def save(self, topic: str, partition: int, number: int, offset: int, state: dict[str, Any]) -> None:
        """Chunks, then the marker, then tombstones for the previous checkpoint's chunks."""
        blob = encode_state(state)
        self.last_size = len(blob)
        chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        ckpt = f"{number}.{self.token}"
        send = self.producer.send
        futures = [
            send(self.state_topic, key=self._key(topic, partition, ckpt, i), value=chunk, partition=partition)
            for i, chunk in enumerate(chunks)
        ]
        self.producer.flush()
        _check(futures, "state chunks")
        marker = orjson.dumps(
            {"number": number, "token": self.token, "chunks": len(chunks), "offset": offset, "crc": zlib.crc32(blob)}
        )
        f = send(self.state_topic, key=self._key(topic, partition, "marker"), value=marker, partition=partition)
        self.producer.flush()
        _check([f], "state marker")
        prev = self._previous.get((topic, partition))
        if prev is not None and prev[0] != ckpt:
            for i in range(prev[1]):
                send(self.state_topic, key=self._key(topic, partition, prev[0], i), value=None, partition=partition)
        self._previous[(topic, partition)] = (ckpt, len(chunks))

    def load(self, topic: str, partition: int) -> Checkpoint | None:
        """Read partition `partition` of the state topic to its end; assemble the marker's checkpoint."""
        return self.load_many(topic, [partition])[partition]

    def load_many(self, topic: str, partitions: list[int]) -> dict[int, Checkpoint | None]:
        """`load` of several partitions with one consumer: an assignment of n partitions costs one client
        start-up (~0.2 s), not n."""
        from kafka import TopicPartition

        if not partitions:
            return {}
        tps = {p: TopicPartition(self.state_topic, p) for p in partitions}
        prefixes = {p: f"{topic}/{p}/".encode() for p in partitions}
        markers: dict[int, dict[str, Any] | None] = dict.fromkeys(partitions)
        chunks: dict[int, dict[bytes, bytes | None]] = {p: {} for p in partitions}
        consumer = self.consumer_factory()
        try:
            consumer.assign(list(tps.values()))
            consumer.seek_to_beginning(*tps.values())
            ends = consumer.end_offsets(list(tps.values()))
            while any(consumer.position(tp) < ends[tp] for tp in tps.values()):
                for tp, records in consumer.poll(timeout_ms=1000).items():
                    prefix = prefixes[tp.partition]
                    for r in records:
                        if r.key is None or not r.key.startswith(prefix):
                            continue
                        if r.key.endswith(b"/marker"):
                            markers[tp.partition] = orjson.loads(r.value) if r.value is not None else None
                        else:
                            chunks[tp.partition][r.key] = r.value
        finally:
            consumer.close()
        return {p: self._assemble(topic, p, markers[p], chunks[p]) for p in partitions}

    def _assemble(
        self, topic: str, partition: int, marker: dict[str, Any] | None, chunks: dict[bytes, bytes | None]
    ) -> Checkpoint | None:
        """The checkpoint a partition's marker names, from the chunks read (stale chunks are deleted)."""
        if marker is None:
            return None
        prefix = f"{topic}/{partition}/".encode()
        number = marker["number"]
        ckpt = f"{number}.{marker['token']}" if marker.get("token") else str(number)
        # Chunks of other (failed or superseded) checkpoints: delete them, they are never needed again.
        for key, value in chunks.items():
            if value is not None and not key.startswith(prefix + f"{ckpt}/".encode()):
                self.producer.send(self.state_topic, key=key, value=None, partition=partition)
        parts = [chunks.get(self._key(topic, partition, ckpt, i)) for i in range(marker["chunks"])]
        if any(p is None for p in parts):
            raise StateStoreError(
                f"checkpoint {number} of {topic}/{partition} is incomplete in {self.state_topic} "
                "(chunks compacted away?)"
            )
        blob = b"".join(parts)  # type: ignore[arg-type]
        if zlib.crc32(blob) != marker["crc"]:
            raise StateStoreError(f"checkpoint {number} of {topic}/{partition} fails its checksum")
        self._previous[(topic, partition)] = (ckpt, marker["chunks"])
        return Checkpoint(number, marker["offset"], decode_state(blob))


def _check(futures: list[Any], what: str) -> None:
    """After a flush: fail (before anything is committed) when Kafka did not take a write."""
    for f in futures:
        if f.failed():
            raise StateStoreError(f"writing {what} to the state topic failed: {f.exception!r}")
