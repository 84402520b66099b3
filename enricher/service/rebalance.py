"""The partitions assigned to this member: each one's pipeline and progress, and what a rebalance does to them.

- One pipeline (parser + stitcher) per assigned partition: all lines of an appliance share a partition, so a
  partition's state moves whole on a rebalance.
- With kafka-python, restores (and the partition's pipeline) are made in the main loop, not inside the
  rebalance callback (which must stay short: it blocks the client's heartbeats, and kafka-python 3 runs it on
  its own thread); a partition is paused from its assignment until its state is loaded. librdkafka runs the
  callback inside poll() on the main loop's thread and heartbeats on its own: the state is restored there,
  unpaused (librdkafka starts fetching a partition resumed before its first fetch ~0.5 s late).
- On a revocation the partitions' documents are flushed with a deadline; if the sink does not take them in
  time, the partitions are given up without a checkpoint (the next owner restores the previous one) and their
  queued documents are discarded, so a stale version can never overwrite the next owner's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enricher.core.pipeline import Pipeline
from enricher.edges.ports import StateStore
from enricher.errors import CheckpointError
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")


@dataclass
class PartitionWork:
    """One assigned partition: its pipeline and how far it got."""

    tp: Any
    pipeline: Pipeline | None = None  # built by the main loop when the partition's state is restored
    next_offset: int | None = None
    checkpoint_no: int = 0
    dirty: bool = False
    commit_due: bool = False  # restored from a snapshot whose offset may be ahead of the group's commit
    restored: bool = False
    seen_unrecognized: int = 0
    seen_outcomes: dict[str, int] = field(default_factory=dict)  # line outcomes already exported as metrics
    seen_duplicates: int = 0


def stream_of(group_id: str, tp: Any) -> str:
    """Whose state a checkpoint is: the consumer group's view of a topic (two groups never share state)."""
    return f"{group_id}/{tp.topic}"


class Partitions:
    """The assignment and its pipelines; `assign`/`revoke` are the rebalance callbacks."""

    def __init__(
        self,
        group_id: str,
        consumer: Any,
        snapshots: StateStore,
        build_pipeline: Callable[[], Pipeline],
        sink: Any,
        metrics: Metrics,
        on_change: Callable[[], None],
    ) -> None:
        self.group_id = group_id
        self.consumer = consumer
        self.snapshots = snapshots
        self.build_pipeline = build_pipeline
        self.sink = sink
        self.metrics = metrics
        self.on_change = on_change  # the assignment or its sessions changed (the open-sessions gauge)
        self.parts: dict[Any, PartitionWork] = {}
        # Called on a revocation for the partitions leaving (their last checkpoint), None when that must not
        # happen now (the loop is flushing, or shutting down past its deadline).
        self.checkpoint_leaving: Callable[[list[PartitionWork]], None] | None = None
        self.joined = False
        # When partitions were last assigned and restored: the time until then (joining the group, which waits
        # out a dead member's session, and restoring inside librdkafka's callback) is not idleness either.
        self.restored_at = 0.0

    def restored(self) -> list[PartitionWork]:
        """The partitions whose state is loaded (the ones records are processed for)."""
        # list() copies the values in one step: kafka-python 3 runs `assign`/`revoke` on its I/O thread, and
        # iterating the dict itself while they change it would raise.
        return [w for w in list(self.parts.values()) if w.restored]

    def assign(self, tps: list[Any]) -> None:
        """Rebalance callback: note the new partitions and pause them until their state is restored.

        A client that runs its callbacks inside poll() on the main loop's thread (librdkafka) gets the state
        restored right here instead: no pause, and the first records come sooner."""
        self.joined = True
        new = [tp for tp in tps if tp not in self.parts]
        for tp in new:
            self.parts[tp] = PartitionWork(tp)
            self.sink.reown(tp)
        if not new:
            return
        if getattr(self.consumer, "callbacks_on_poll_thread", False):
            self.restore_pending()
        else:
            self.consumer.pause(*new)

    def restore_pending(self) -> bool:
        """Load the checkpoint of each newly assigned partition, seek to its offset and resume it."""
        todo = [w for w in list(self.parts.values()) if not w.restored]
        # One read of the state topic for every partition assigned (streams differ only across topics).
        loaded: dict[tuple[str, int], Any] = {}
        for stream in {stream_of(self.group_id, w.tp) for w in todo}:
            wanted = sorted(w.tp.partition for w in todo if stream_of(self.group_id, w.tp) == stream)
            try:
                got = self.snapshots.load_many(stream, wanted)
            except Exception as exc:  # a checkpoint that cannot be read: going on without it would lose its state
                raise CheckpointError(f"the checkpoints of {stream} partitions {wanted} cannot be restored: {exc}") from exc
            loaded.update({(stream, p): c for p, c in got.items()})
        for w in todo:
            tp = w.tp
            # Built here, not in the rebalance callback: kafka-python 3 runs listeners on its I/O thread, and a
            # pipeline may hold thread-bound parts (the native parser's Typer panics when used across threads).
            w.pipeline = self.build_pipeline()
            ckpt = loaded[stream_of(self.group_id, tp), tp.partition]
            if ckpt is not None:
                w.pipeline.restore(ckpt.state)
                w.checkpoint_no = ckpt.number
                w.next_offset = ckpt.offset
                w.seen_unrecognized = w.pipeline.stitcher.stats.unrecognized
                w.seen_duplicates = w.pipeline.stitcher.stats.duplicates
                w.commit_due = True  # a kill between snapshot and commit leaves the commit behind: catch up
                self.consumer.seek(tp, ckpt.offset)
                self.metrics.restores.inc()
                log.info("partition %s: restored checkpoint %d at offset %d", tp.partition, ckpt.number, ckpt.offset)
            # Without a checkpoint the group's committed offset (or auto_offset_reset) is where it starts.
            w.restored = True
        if todo:
            self.consumer.resume(*[w.tp for w in todo])
            self.on_change()
            self.restored_at = time.monotonic()
        return bool(todo)

    def revoke(self, tps: list[Any]) -> None:
        """Rebalance callback: checkpoint the partitions leaving (when possible), then forget them."""
        leaving = [self.parts[tp] for tp in tps if tp in self.parts]
        ready = [w for w in leaving if w.restored]
        if leaving:  # a revocation in the middle of a run is worth knowing about (and on which thread it ran)
            log.info("partitions %s revoked (%s thread)", sorted(w.tp.partition for w in leaving),
                     threading.current_thread().name)
        if ready and self.checkpoint_leaving is not None:
            try:
                self.checkpoint_leaving(ready)
            except Exception:  # the next owner restores the previous checkpoint: nothing is lost
                log.exception("checkpoint on revoke failed; the next owner re-reads from the previous checkpoint")
        # Whatever of theirs is still queued (not written in time, or a flush in progress) is dropped: the next
        # owner emits it again from the checkpoint, and a late write must not overwrite a newer version.
        self.sink.discard(tps)
        for tp in tps:
            self.parts.pop(tp, None)
        self.on_change()
