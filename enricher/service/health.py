"""What the service reports about itself: /healthz's (ok, reason) and the metrics of each partition's work."""

from __future__ import annotations

import logging
from typing import Any

from enricher.config import Config
from enricher.service.rebalance import PartitionWork
from enricher.telemetry import Metrics

log = logging.getLogger("esa_enricher.service")


class Health:
    """/healthz's answer, as the loop moves between states (starting, running, paused, stopped)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state: tuple[bool, str] = (True, "starting")

    def sink_names(self) -> str:
        """The outputs that may be refusing writes, as /healthz and the log name them."""
        names = {"elasticsearch": "Elasticsearch", "kafka": f"the sessions topic ({self.cfg.kafka.sessions_topic})"}
        return " or ".join(names[o] for o in self.cfg.service.outputs)

    def running(self) -> None:
        """Reading and writing."""
        self.state = (True, "running")

    def paused(self) -> None:
        """An output refuses writes: the partitions are paused while the sink retries."""
        sinks = self.sink_names()
        self.state = (False, f"{sinks} refuses writes: partitions paused, retrying")
        log.warning("%s refuses writes: consumer paused, retrying", sinks)

    def resumed(self) -> None:
        """The outputs accept writes again."""
        self.running()
        log.info("the sinks accept writes again: consumer resumed")

    def stopped(self, why: str = "stopped") -> None:
        """The loop has ended (or is shutting down)."""
        self.state = (False, why)


class Reporter:
    """Exports what the partitions' pipelines counted to the metrics, and keeps the totals of the summary."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.lines_read = 0
        self.outcomes: dict[str, int] = {}
        self._closed_counters: dict[str, Any] = {}
        self._abort_counters: dict[tuple[str, str], Any] = {}

    def partition_read(self, w: PartitionWork) -> None:
        """After a partition's records of one poll: line outcomes, unrecognized lines and duplicates."""
        pipe = w.pipeline
        assert pipe is not None
        for outcome, n in pipe.stats.line_outcomes(pipe.stitcher).items():
            grew = n - w.seen_outcomes.get(outcome, 0)
            if grew:
                self.metrics.lines_accounted.labels(outcome=outcome).inc(grew)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + grew
                w.seen_outcomes[outcome] = n
        unrec = pipe.stitcher.stats.unrecognized
        if unrec != w.seen_unrecognized:
            self.metrics.unparsed.labels(reason="unknown_shape_in_session").inc(unrec - w.seen_unrecognized)
            w.seen_unrecognized = unrec
        dups = pipe.stitcher.stats.duplicates
        if dups != w.seen_duplicates:
            self.metrics.duplicates.inc(dups - w.seen_duplicates)
            w.seen_duplicates = dups

    def lines(self, n: int) -> None:
        """Records read by one poll."""
        self.metrics.lines_in.inc(n)
        self.lines_read += n

    def session_closed(self, doc: dict[str, Any]) -> None:
        """A session document goes to the sink: count it by state and by abort reason."""
        state = (doc.get("esa") or {}).get("session", {}).get("state", "")
        counter = self._closed_counters.get(state)
        if counter is None:  # labels() takes a lock and builds a key: once per state, not per document
            counter = self._closed_counters[state] = self.metrics.sessions_closed.labels(state=state)
        counter.inc()
        reason = doc.get("abort_reason")
        if reason:
            layer = doc.get("abort_layer", "")
            counter = self._abort_counters.get((reason, layer))
            if counter is None:
                counter = self._abort_counters[reason, layer] = self.metrics.aborts.labels(reason=reason, layer=layer)
            counter.inc()

    def open_sessions(self, works: Any) -> None:
        """The gauge of sessions held, over every partition with a pipeline."""
        self.metrics.sessions_open.set(sum(w.pipeline.stitcher.open_sessions() for w in works if w.pipeline is not None))

    def lag(self, consumer: Any, works: Any) -> None:
        """Each partition's distance to its end."""
        for w in works:
            hw = consumer.highwater(w.tp)
            if hw is not None and w.next_offset is not None:
                self.metrics.consumer_lag.labels(partition=str(w.tp.partition)).set(max(0, hw - w.next_offset))

    def summary(self) -> dict[str, Any]:
        """Records read by this process and where each went (their sum is `lines`; a record read again after
        a restore counts again, in both)."""
        return {"lines": self.lines_read, "line_outcomes": dict(sorted(self.outcomes.items()))}
