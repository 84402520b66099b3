"""The two ways the world moves under a running enricher: Elasticsearch goes away, partitions move.

- Elasticsearch stopped for real in the middle of a run (es.sh down … up, or `docker pause` for a
  testcontainers node): while it is down the committed offsets stay where they were, nothing more is read,
  /healthz answers 503 and the back-pressure and bulk-failure metrics move; afterwards every session is in
  Elasticsearch exactly once (the same ids as replay).
- Two enrichers in one group: the second joins mid-stream (partitions move with their state), the first is
  killed with SIGKILL (its partitions move again, from its last checkpoint): no session is split, every
  document equals replay's, field for field, and no id is there twice.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enricher.edges.sinks.ndjson import dumps
from tests.integration.conftest import EsOutage
from tests.integration.harness import KAFKA_CLIENTS, Stack, by_id, generate_corpus, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def split(corpus: Path, fractions: list[float]) -> list[Path]:
    """Cut a corpus into consecutive parts (by line), written next to it."""
    lines = corpus.read_bytes().splitlines(keepends=True)
    parts, start = [], 0
    for i, f in enumerate([*fractions, 1.0 - sum(fractions)]):
        end = len(lines) if i == len(fractions) else start + int(len(lines) * f)
        p = corpus.with_name(f"{corpus.stem}.part{i}.log")
        p.write_bytes(b"".join(lines[start:end]))
        parts.append(p)
        start = end
    return parts


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_elasticsearch_outage_pauses_without_loss(
    make_stack: Callable[..., Stack], es_client: Any, es_outage: EsOutage, client: str
) -> None:
    stack = make_stack(
        "outage",
        partitions=4,
        kafka={"client": client},
        # Short backoff cap and request timeout: the test waits for recovery, not for a 30 s backoff.
        elasticsearch={"max_backoff_seconds": 2.0, "request_timeout_seconds": 5.0},
    )
    corpus = stack.dir / "corpus.log"
    meta = generate_corpus(corpus, 120_000, seed=77, appliances=6)
    before, during, after = split(corpus, [0.45, 0.1])
    expected = by_id(stack.replay(corpus))
    assert len(expected) == meta["sessions"]

    stack.produce(before)
    p = stack.start(exit_when_idle=15)
    wait_until(lambda: p.metric("esa_documents_written_total") > 0 and stack.committed(), 120, "a first checkpoint")
    assert p.healthz()[0] == 200
    # The lag gauge needs each client's view of the partitions' end offsets: one sample per partition with data.
    with_data = {str(k) for k, v in stack.end_offsets().items() if v}
    wait_until(
        lambda: {lab["partition"] for n, lab, _ in p.metrics() if n == "esa_consumer_lag"} >= with_data, 30, "the lag gauge"
    )

    es_outage.stop()
    t_down = time.monotonic()
    stack.produce(during)  # sessions to write while Elasticsearch is gone
    wait_until(lambda: p.healthz()[0] == 503, 60, "/healthz to report the outage")
    wait_until(lambda: p.metric("esa_bulk_failures_total") > 0, 30, "a failed bulk request")
    stack.produce(after)  # more to read, which must wait
    held = stack.committed()
    read = p.metric("esa_lines_received_total")
    pressure = p.metric("esa_backpressure_seconds_total")
    samples = 0
    while time.monotonic() - t_down < 25:
        time.sleep(2.5)
        assert stack.committed() == held, "an offset was committed while Elasticsearch was down"
        code, why = p.healthz()
        assert code == 503 and "elasticsearch" in why.lower(), (code, why)
        samples += 1
    assert samples >= 3
    assert p.metric("esa_lines_received_total") == read, "records were read while the sink was refusing"
    assert read < sum(stack.end_offsets().values())
    assert p.metric("esa_backpressure_seconds_total") > pressure
    assert sum(held.values()) < read

    # Back after an outage longer than --exit-when-idle: that time was not idleness, the rest is read.
    es_outage.start()
    wait_until(lambda: p.healthz()[0] == 200, 120, "/healthz to recover")
    assert p.metric("esa_bulk_retries_total") > 0
    assert p.wait(300) == 0, p.log()[-4000:]
    assert "consumer resumed" in p.log()

    ends = stack.end_offsets()
    assert stack.committed() == {k: v for k, v in ends.items() if v}
    got = stack.es_docs(es_client)
    assert stack.es_count(es_client) == len(got) == meta["sessions"]
    assert set(got) == set(expected)
    assert Counter(d.get("abort_reason") for d in got.values() if d.get("abort_reason")) == Counter(meta["abort_reason"])
    differ = [i for i, d in expected.items() if got[i] != d]
    assert not differ, differ[:5]


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_two_consumers_and_a_kill_split_no_session(make_stack: Callable[..., Stack], es_client: Any, client: str) -> None:
    # Both outputs: the sessions topic must come through the rebalances and the kill as the index does.
    stack = make_stack("rebalance", partitions=4, kafka={"client": client}, service={"outputs": ["elasticsearch", "kafka"]})
    corpus = stack.dir / "corpus.log"
    meta = generate_corpus(corpus, 150_000, seed=99, appliances=6)  # hosts spread over partitions 0, 1 and 3
    first, second, third = split(corpus, [0.4, 0.3])
    expected = by_id(stack.replay(corpus))
    assert len(expected) == meta["sessions"]

    stack.produce(first)
    a = stack.start(tag="a")
    wait_until(lambda: len(stack.committed()) >= 3, 120, "the first consumer to checkpoint every partition with data")
    producing = stack.produce_async(second)
    b = stack.start(exit_when_idle=25, tag="b")
    # The second consumer takes some partitions over, with the state the first one checkpointed on revoke.
    wait_until(lambda: b.metric("esa_state_restores_total") >= 1, 120, "partitions to move to the second consumer")
    assert producing.wait(300) == 0
    stack.produce(third)
    wait_until(lambda: a.metric("esa_lines_received_total") > 0 and b.metric("esa_lines_received_total") > 0, 60, "both to read")
    assert a.kill(signal.SIGKILL) == -signal.SIGKILL
    moved = b.metric("esa_state_restores_total")
    # After the session timeout the group gives the killed member's partitions to the second one.
    wait_until(lambda: b.metric("esa_state_restores_total") > moved, 60, "the killed member's partitions to move")
    assert b.wait(300) == 0, b.log()[-4000:]
    assert "restored checkpoint" in a.log()  or "restored checkpoint" in b.log()

    ends = stack.end_offsets()
    assert stack.committed() == {k: v for k, v in ends.items() if v}
    got = stack.es_docs(es_client)  # fails on an id present twice
    assert stack.es_count(es_client) == len(got) == len(expected)
    assert set(got) == set(expected)
    split_or_wrong = [i for i, d in expected.items() if got[i] != d]
    assert not split_or_wrong, [
        (i, {k: (got[i].get(k), expected[i].get(k)) for k in ("abort_reason",)}, got[i]["esa"]["session"], expected[i]["esa"]["session"])
        for i in split_or_wrong[:5]
    ]
    # The sessions topic: the last record of every key is the same document (replay's bytes, no event.ingested).
    latest = {}
    for r in sorted(stack.read_topic(stack.sessions_topic), key=lambda r: (r.partition, r.offset)):
        latest[r.key.decode()] = r.value
    assert set(latest) == set(expected)
    wrong_on_topic = [i for i, d in expected.items() if latest[i] != dumps(d)[:-1]]
    assert not wrong_on_topic, wrong_on_topic[:5]
