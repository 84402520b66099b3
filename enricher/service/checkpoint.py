"""Checkpoints: flush the sinks, snapshot each partition's state durably, then commit its offset.

A checkpoint waits for the batch in flight and flushes the sinks (every document emitted so far is indexed,
acknowledged on the sessions topic, or dead-lettered, and every dead letter is acknowledged by Kafka), writes
each partition's state snapshot with the next offset to read, then commits that offset. Restore loads the
snapshot and seeks to its offset; documents emitted after it are emitted again under the same ids (overwrite,
no duplicates). The snapshot, not the committed offset, is what a restore trusts: a kill between the two is
harmless. A snapshot or a dead letter that Kafka does not take raises `CheckpointError` before anything is
committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from enricher.edges.ports import FlushDeadline, StateStore
from enricher.errors import CheckpointError
from enricher.service.dead_letters import DeadLetters
from enricher.service.rebalance import PartitionWork, stream_of
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")

# How long a revocation may wait for Elasticsearch before giving the partitions up without a checkpoint
# (the rebalance callback blocks the consumer's heartbeats: it must stay well under the session timeout).
REVOKE_FLUSH_SECONDS = 4.0


class Checkpointer:
    """Makes the partitions' progress durable: sinks flushed, snapshots written, offsets committed."""

    def __init__(
        self,
        group_id: str,
        consumer: Any,
        producer: Any,
        snapshots: StateStore,
        sink: Any,
        dead_letters: DeadLetters,
        metrics: Metrics,
        flush: Callable[[], None],
    ) -> None:
        self.group_id = group_id
        self.consumer = consumer
        self.producer = producer
        self.snapshots = snapshots
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.flush = flush  # the loop's flush: back-pressure (pause, keep polling) while the sink retries
        self.last = time.monotonic()

    def checkpoint(self, works: list[PartitionWork], rebalancing: bool = False) -> None:
        """Flush, snapshot each dirty partition, commit its offset."""
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        t0 = time.monotonic()
        if rebalancing:
            # No polling from inside a rebalance callback, and not for long: it holds up the heartbeats.
            try:
                self.sink.flush(None, deadline=time.monotonic() + REVOKE_FLUSH_SECONDS)
            except FlushDeadline:
                log.warning("Elasticsearch did not take the documents in time: partitions given up without checkpoint")
                return
        else:
            self.flush()
        self.producer.flush()
        self.dead_letters.confirm()
        offsets = {}
        for w in works:
            if not w.restored or w.next_offset is None:
                continue
            if not w.dirty:
                if w.commit_due:  # nothing new since the restore: only commit the snapshot's offset
                    offsets[w.tp] = OffsetAndMetadata(w.next_offset, "", -1)
                    w.commit_due = False
                continue
            assert w.pipeline is not None  # restored
            w.commit_due = False
            w.checkpoint_no += 1
            state = w.pipeline.snapshot()
            try:
                self.snapshots.save(stream_of(self.group_id, w.tp), w.tp.partition, w.checkpoint_no, w.next_offset, state)
            except Exception as exc:
                w.checkpoint_no -= 1  # not written: the next attempt writes this number again
                raise CheckpointError(
                    f"the state snapshot of partition {w.tp.partition} could not be written ({exc}); "
                    "nothing was committed past the previous checkpoint"
                ) from exc
            size = getattr(self.snapshots, "last_size", None)
            if size is not None:
                self.metrics.checkpoint_bytes.labels(partition=str(w.tp.partition)).set(size)
            offsets[w.tp] = OffsetAndMetadata(w.next_offset, "", -1)
            w.dirty = False
        if offsets:
            try:
                self.consumer.commit(offsets)
                self.metrics.checkpoints.inc()
            except CommitFailedError as exc:
                # The group is rebalancing: the snapshots just written are what the next owner restores.
                log.warning("offset commit refused (%s); the state snapshots stand", exc)
        self.last = time.monotonic()
        self.metrics.checkpoint_seconds.observe(self.last - t0)
