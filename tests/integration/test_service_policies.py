"""Failure policies of `run` on the real Kafka and Elasticsearch (issue 11, item 7):
- a record that makes processing raise goes to the dead-letter topic once, and the rest of its partition is
  processed exactly once (the failure is injected through the pipeline the service is built with);
- a request Elasticsearch refuses with a client error stops `run` with a clear message, committing nothing;
- with Elasticsearch unreachable, SIGTERM ends `run` within `service.shutdown_timeout_seconds`, a second
  SIGTERM ends it at once, and a restart loses nothing.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from enricher.cli import build_pipeline
from enricher.config import load
from enricher.core.pipeline import Pipeline
from enricher.service.wiring import connect
from enricher.telemetry import Metrics
from tests.integration.harness import Stack, generate_corpus, ndjson_fields, wait_until

pytestmark = pytest.mark.integration

POISON = "POISON-RECORD"
FIELDS = ["event.id", "abort_reason", "abort_layer", "esa.session.lines", "esa.session.state"]


class RaisesOnMarked(Pipeline):
    """A pipeline stage that raises on a marked record (as a bug in the stitcher or the builder would)."""

    def event_documents(self, ev: Any, now: float | None = None) -> list[dict[str, Any]]:
        if POISON in (ev.raw or ""):
            raise ValueError("boom on a marked record")
        return super().event_documents(ev, now)


@pytest.fixture
def _signals() -> Iterator[None]:
    """`run` installs its SIGTERM/SIGINT handlers: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def corpus_of(stack: Stack, lines: int, seed: int) -> tuple[Path, dict[str, Any]]:
    path = stack.dir / "corpus.log"
    return path, generate_corpus(path, lines, seed=seed, appliances=2)


@pytest.mark.usefixtures("_signals")
def test_a_poison_record_goes_to_the_dead_letter_topic_once_and_the_partition_goes_on(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("poison", partitions=2)
    corpus, meta = corpus_of(stack, 3000, seed=11)
    lines = corpus.read_text().splitlines()
    marked = lines[1500].replace("Info:", f"Info: {POISON}", 1)
    poisoned = stack.dir / "poisoned.log"
    poisoned.write_text("\n".join([*lines[:1501], marked, *lines[1501:]]) + "\n")
    stack.produce(poisoned)
    reference = stack.dir / "reference.ndjson"
    stack.replay(corpus, out=reference)
    expected = ndjson_fields(reference, FIELDS)

    cfg = load(str(stack.config_path))
    metrics = Metrics()

    def build() -> Pipeline:
        p = build_pipeline(cfg)
        return RaisesOnMarked(p.parser, p.stitcher, p.doc_config)

    assert connect(cfg, metrics, build).run(exit_when_idle=2) == 0

    raw = [r for r in stack.read_topic(stack.topic) if POISON.encode() in (r.value or b"")]
    assert len(raw) == 1
    letters = [orjson.loads(r.value) for r in stack.read_topic(stack.dlq)]
    assert len(letters) == 1, letters  # exactly once
    (letter,) = letters
    assert letter["sources"] == [{"topic": stack.topic, "partition": raw[0].partition, "offset": raw[0].offset}]
    assert letter["error"]["type"] == "processing_error" and letter["error"]["exception"] == "ValueError"
    assert letter["document"]["event"]["original"] == marked
    assert metrics.registry.get_sample_value("esa_processing_errors_total", {"exception": "ValueError"}) == 1
    # The rest of the partition, exactly once: every session of the corpus (the marked record repeats a line).
    assert stack.es_fields(es_client, FIELDS) == expected
    assert stack.es_count(es_client) == meta["sessions"]
    assert stack.committed() == {k: v for k, v in stack.end_offsets().items() if v}


def test_a_request_elasticsearch_refuses_stops_run_with_a_clear_message(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("refused", partitions=1)
    corpus, _ = corpus_of(stack, 1000, seed=12)
    stack.produce(corpus)
    # A URL with a path the node has no handler for: every bulk request is answered 400 as a whole.
    wrong = stack.variant("wrong-path", elasticsearch={"url": f"{stack.es_url}/no/such"})
    p = stack.start(exit_when_idle=2, tag="refused", config=wrong)
    assert p.wait(120) == 1, p.log()[-3000:]
    log = p.log()
    # One line that says what Elasticsearch answered, no traceback.
    assert any(line.startswith("esa-enricher: ") and "no handler found" in line for line in log.splitlines()), log[-3000:]
    assert "Traceback" not in log
    assert stack.committed() == {}  # nothing was written, so nothing is committed: a restart resumes from 0


class Blackhole:
    """A TCP port that accepts connections and never answers: an Elasticsearch node that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def test_shutdown_during_an_outage_is_bounded_and_a_restart_loses_nothing(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("outage-stop", partitions=2)
    corpus, meta = corpus_of(stack, 3000, seed=13)
    stack.produce(corpus)
    reference = stack.dir / "reference.ndjson"
    stack.replay(corpus, out=reference)
    hole = Blackhole()
    try:
        timeout = 6
        hanging = stack.variant(
            "hanging", elasticsearch={"url": f"http://127.0.0.1:{hole.port}", "request_timeout_seconds": 120},
            service={"shutdown_timeout_seconds": timeout},
        )
        # SIGTERM: documents cannot be written, so run gives up after the timeout, committing nothing.
        p = stack.start(tag="term-once", config=hanging)
        wait_until(lambda: p.metric("esa_lines_received_total") > 0, 60, "the first run to read")
        time.sleep(1)  # a bulk request is hanging now
        signalled = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        rc = p.wait(timeout + 15)
        took = time.monotonic() - signalled
        assert rc == 1, p.log()[-3000:]
        assert took < timeout + 3, f"SIGTERM took {took:.1f} s with a {timeout} s shutdown timeout"
        assert "shutdown did not finish within" in p.log() or "stopped with documents not yet written" in p.log()
        assert stack.committed() == {}

        # A second SIGTERM: at once, whatever the timeout. (Another group: it need not wait for the first run's
        # member, which exited without leaving, to time out; it commits nothing either.)
        patient = stack.variant(
            "patient", elasticsearch={"url": f"http://127.0.0.1:{hole.port}", "request_timeout_seconds": 120},
            service={"shutdown_timeout_seconds": 300}, kafka={"group_id": f"{stack.group}-patient"},
        )
        q = stack.start(tag="term-twice", config=patient)
        wait_until(lambda: q.metric("esa_lines_received_total") > 0, 60, "the second run to read")
        time.sleep(1)
        q.proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert q.alive(), q.log()[-3000:]  # the first signal waits (up to 300 s) for the hanging request
        second = time.monotonic()
        q.proc.send_signal(signal.SIGTERM)
        assert q.wait(15) == 128 + signal.SIGTERM, q.log()[-3000:]
        assert time.monotonic() - second < 5
        assert "second stop signal: exiting at once" in q.log()
    finally:
        hole.close()

    # Elasticsearch back (the stack's own URL): the restart writes every session, once.
    r = stack.start(exit_when_idle=2, tag="restart")
    assert r.wait(180) == 0, r.log()[-3000:]
    assert stack.es_fields(es_client, FIELDS) == ndjson_fields(reference, FIELDS)
    assert stack.es_count(es_client) == meta["sessions"]
    assert stack.committed() == {k: v for k, v in stack.end_offsets().items() if v}
