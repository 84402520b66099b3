"""The service loop on the memory state store and small fakes of its edges (tests/unit/service_fakes.py):
processing, checkpoints and restores, the processing-error policies, typed checkpoint errors, bounded shutdown.
The same flows on the real Kafka and Elasticsearch: tests/integration/test_service_policies.py and others."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from enricher.cli import build_pipeline
from enricher.config import Config
from enricher.core.pipeline import Pipeline
from enricher.edges.state.memory import MemoryStateStore
from enricher.errors import CheckpointError, ProcessingError
from enricher.service import Service
from enricher.telemetry import Metrics
from tests.unit.service_fakes import FakeConsumer, FakeProducer, FakeSink, Log

REPO = Path(__file__).resolve().parents[2]
TOPIC = "raw"
POISON = "POISON-RECORD"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, Any]]:
    """2,000 generated syslog lines of two appliances (bench/gen_corpus.py) and the generator's sidecar."""
    out = tmp_path_factory.mktemp("corpus") / "corpus.log"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "gen_corpus.py"), "--lines", "2000", "--seed", "7", "--appliances", "2",
         "--out", str(out)],
        check=True, capture_output=True, timeout=120,
    )
    return out.read_text().splitlines(), orjson.loads(out.with_suffix(".meta.json").read_bytes())


def make_log(lines: list[str]) -> Log:
    """The lines as records keyed by appliance (the syslog host), one partition per appliance."""
    log = Log(TOPIC)
    hosts: dict[str, int] = {}
    for line in lines:
        host = line.split()[3]
        log.append(hosts.setdefault(host, len(hosts)), host, line.encode())
    return log


@pytest.fixture(autouse=True)
def _signals() -> Iterator[None]:
    """`run` installs its SIGTERM/SIGINT handlers: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


class Harness:
    """One service member over a Log, a memory state store and a fake sink; `exits` records exit_now calls."""

    def __init__(
        self,
        log: Log,
        store: MemoryStateStore,
        sink: FakeSink | None = None,
        build: Callable[[], Pipeline] | None = None,
        callbacks_on_poll_thread: bool = False,
        empty_every: int = 0,
        kafka: dict[str, Any] | None = None,
        **service: Any,
    ) -> None:
        self.cfg = Config.model_validate(
            {
                "time": {"reference_time": "2026-12-31T00:00:00Z"},
                "kafka": {"topic": TOPIC, "group_id": "g", "dead_letter_topic": "dlq", **(kafka or {})},
                "service": {"checkpoint_interval_seconds": 0.05, **service},
            }
        )
        self.consumer = FakeConsumer(log, callbacks_on_poll_thread, empty_every)
        self.producer = FakeProducer()
        self.sink = sink or FakeSink()
        self.metrics = Metrics()
        self.exits: list[int] = []
        self.service = Service(
            self.cfg, self.consumer, self.producer, None, store, build or (lambda: build_pipeline(self.cfg)),
            self.metrics, sink=self.sink, exit_now=self.exit_now,
        )
        self.sink.should_stop = self.service.stopping_now

    def exit_now(self, code: int) -> None:
        self.exits.append(code)
        self.sink.release = True  # what the process's end would do to a hanging request

    def run(self, idle: float | None = 0.3) -> int:
        return self.service.run(exit_when_idle=idle)

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.producer.sent if t == "dlq"]

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def session_ids(docs: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {i: (d.get("abort_reason"), d["esa"]["session"]["state"]) for i, d in docs.items()}


@pytest.mark.parametrize("on_poll_thread", [False, True], ids=["restore-in-loop", "restore-in-callback"])
def test_every_session_once_and_a_restart_resumes_from_the_checkpoint(
    corpus: tuple[list[str], dict[str, Any]], on_poll_thread: bool
) -> None:
    lines, meta = corpus
    whole = Harness(make_log(lines), MemoryStateStore(), callbacks_on_poll_thread=on_poll_thread)
    assert whole.run() == 0
    assert len(whole.sink.written) == meta["sessions"]
    assert whole.consumer.log.committed == {p: len(r) for p, r in whole.consumer.log.partitions.items()}
    assert whole.metric("esa_lines_received_total") == len(lines)

    # The first half, a stop, then the rest: the second member restores each partition's checkpoint.
    log, store, sink = make_log(lines[:1000]), MemoryStateStore(), FakeSink()
    first = Harness(log, store, sink, callbacks_on_poll_thread=on_poll_thread)
    assert first.run(idle=0.2) == 0
    halfway = dict(log.committed)
    for line in lines[1000:]:
        host = line.split()[3]
        part = next(p for p, rs in log.partitions.items() if rs[0].key == host.encode())
        log.append(part, host, line.encode())
    second = Harness(log, store, sink, callbacks_on_poll_thread=on_poll_thread)
    assert second.run() == 0
    assert second.metric("esa_state_restores_total") == len(log.partitions)
    # Nothing read twice: each restored partition starts at its checkpoint's offset.
    assert second.metric("esa_lines_received_total") == sum(len(r) for r in log.partitions.values()) - sum(halfway.values())
    assert session_ids(sink.written).keys() == session_ids(whole.sink.written).keys()


class RaisesOnMarked(Pipeline):
    """A pipeline stage that raises on a marked record (the way a bug in the stitcher or the builder would)."""

    def event_documents(self, ev: Any, now: float | None = None) -> list[dict[str, Any]]:
        if POISON in (ev.raw or ""):
            raise ValueError("boom on a marked record")
        return super().event_documents(ev, now)


def poisoned(lines: list[str]) -> tuple[list[str], int]:
    """The lines with a marked copy of line 500 inserted after it, and the marked line's index."""
    marked = lines[500].replace("Info:", f"Info: {POISON}", 1)
    return [*lines[:501], marked, *lines[501:]], 501


def raising_build(h: list[Harness]) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        p = build_pipeline(h[0].cfg)
        return RaisesOnMarked(p.parser, p.stitcher, p.doc_config)

    return build


def test_a_record_that_makes_processing_raise_is_dead_lettered_and_the_partition_goes_on(
    corpus: tuple[list[str], dict[str, Any]],
) -> None:
    lines, meta = corpus
    with_poison, at = poisoned(lines)
    log = make_log(with_poison)
    box: list[Harness] = []
    h = Harness(log, MemoryStateStore(), build=raising_build(box))
    box.append(h)
    assert h.run() == 0
    (letter,) = h.dead_letters()
    part = next(p for p, rs in log.partitions.items() if any(POISON.encode() in (r.value or b"") for r in rs))
    offset = next(r.offset for r in log.partitions[part] if POISON.encode() in (r.value or b""))
    assert letter["sources"] == [{"topic": TOPIC, "partition": part, "offset": offset}]
    assert letter["error"] == {"type": "processing_error", "exception": "ValueError", "message": "boom on a marked record"}
    assert letter["document"]["event"]["original"] == with_poison[at]
    assert h.metric("esa_processing_errors_total", exception="ValueError") == 1
    # The rest of the partition is processed: the marked copy repeats a line, so the sessions are the corpus'.
    assert len(h.sink.written) == meta["sessions"]
    assert log.committed == {p: len(r) for p, r in log.partitions.items()}


def test_stop_policy_stops_without_committing_past_the_previous_checkpoint(
    corpus: tuple[list[str], dict[str, Any]],
) -> None:
    with_poison, _ = poisoned(corpus[0])
    log = make_log(with_poison)
    box: list[Harness] = []
    h = Harness(log, MemoryStateStore(), build=raising_build(box), on_processing_error="stop")
    box.append(h)
    with pytest.raises(ProcessingError, match=r"raw/\d+@\d+ failed: ValueError: boom") as err:
        h.run()
    offset = int(err.value.source.rsplit("@", 1)[1])
    part = int(err.value.source.split("/")[1].split("@")[0])
    assert log.committed.get(part, 0) <= offset, "an offset past the failing record was committed"
    assert h.dead_letters() == []
    assert h.metric("esa_processing_errors_total", exception="ValueError") == 1


class FailingStore(MemoryStateStore):
    def save(self, topic: str, partition: int, number: int, offset: int, state: dict[str, Any]) -> None:
        raise OSError("state topic unavailable")


def test_a_snapshot_that_cannot_be_written_raises_a_checkpoint_error_and_commits_nothing(
    corpus: tuple[list[str], dict[str, Any]],
) -> None:
    h = Harness(make_log(corpus[0]), FailingStore())
    with pytest.raises(CheckpointError, match="state snapshot of partition .* could not be written"):
        h.run()
    assert h.consumer.commits == []


def test_a_dead_letter_kafka_refuses_raises_a_checkpoint_error(corpus: tuple[list[str], dict[str, Any]]) -> None:
    h = Harness(make_log(["<22>Nov 27 11:59:58 esa1.example.net mail_logs: Info: not an ESA line at all", *corpus[0]]),
                MemoryStateStore())
    h.producer.fail = RuntimeError("broker gone")
    with pytest.raises(CheckpointError, match="dead letter could not be written to dlq"):
        h.run()
    assert h.consumer.commits == []


def stop_later(h: Harness, after: float, times: int = 1) -> threading.Thread:
    def go() -> None:
        time.sleep(after)
        for _ in range(times):
            h.service.request_stop(signal.SIGTERM)
            time.sleep(0.05)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_stop_during_an_outage_ends_within_the_timeout_without_committing(
    corpus: tuple[list[str], dict[str, Any]],
) -> None:
    sink = FakeSink()
    sink.down = True
    h = Harness(make_log(corpus[0]), MemoryStateStore(), sink, shutdown_timeout_seconds=0.5)
    stop_later(h, 0.3)
    t0 = time.monotonic()
    assert h.run(idle=None) == 1
    assert time.monotonic() - t0 < 0.3 + 0.5 + 2  # (margin for a busy machine; without the bound: forever)
    # The loop gives up at the deadline; on a busy machine the watchdog (due then too) may get there first.
    assert h.consumer.commits == [] and h.exits in ([], [1])
    assert h.service.health() == (False, "stopped")


def test_a_second_signal_exits_at_once(corpus: tuple[list[str], dict[str, Any]]) -> None:
    sink = FakeSink()
    sink.down = True
    h = Harness(make_log(corpus[0]), MemoryStateStore(), sink, shutdown_timeout_seconds=60)
    stop_later(h, 0.2, times=2)
    assert h.run(idle=None) == 1
    assert h.exits == [128 + signal.SIGTERM]
    assert h.consumer.commits == []


def test_a_write_that_hangs_past_the_deadline_ends_the_process(corpus: tuple[list[str], dict[str, Any]]) -> None:
    sink = FakeSink()
    sink.hang = True  # a request to a node that never answers: nothing checks the stop flag meanwhile
    h = Harness(make_log(corpus[0]), MemoryStateStore(), sink, shutdown_timeout_seconds=0.3)
    stop_later(h, 0.2)
    t0 = time.monotonic()
    h.run(idle=None)
    assert h.exits[:1] == [1]
    assert time.monotonic() - t0 < 0.2 + 0.3 + 2


def test_time_spent_waiting_for_the_sink_is_not_idleness(corpus: tuple[list[str], dict[str, Any]]) -> None:
    """A slow sink (each write longer than the idle limit) and polls that sometimes come back empty with records
    still to read (a busy machine): --exit-when-idle must not end the run before the partitions' ends. (The
    kill -9 test's final run did, once: its last checkpoint was then behind the end of a partition.)"""
    lines, meta = corpus
    sink = FakeSink()
    sink.delay = 0.25
    h = Harness(make_log(lines), MemoryStateStore(), sink, empty_every=2, kafka={"max_poll_records": 200})
    assert h.run(idle=0.2) == 0
    assert h.consumer.log.committed == {p: len(r) for p, r in h.consumer.log.partitions.items()}
    assert len(sink.written) == meta["sessions"]


class UnreadableStore(MemoryStateStore):
    def load_many(self, topic: str, partitions: list[int]) -> dict[int, Any]:
        raise RuntimeError("checkpoint 3 of g/raw/0 fails its checksum")


def test_a_checkpoint_that_cannot_be_restored_raises_a_checkpoint_error(corpus: tuple[list[str], dict[str, Any]]) -> None:
    h = Harness(make_log(corpus[0]), UnreadableStore())
    with pytest.raises(CheckpointError, match="cannot be restored: checkpoint 3 of g/raw/0 fails its checksum"):
        h.run()
    assert h.consumer.commits == [] and h.sink.written == {}
