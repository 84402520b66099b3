"""Kafka → enricher → Elasticsearch from a fresh start, compared with `esa-enricher replay` of the same input.

- The seed's three examples (tests/golden/seed-*) come out with connection_lost/transport,
  inbound_timeout/timeout and sender_quit/application, under the same ids as replay gives them.
- The Done-when flow: `setup`, `produce` a log file, `run --exit-when-idle 10` → one document per session
  behind the read alias, with the right abort fields.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import GOLDEN, KAFKA_CLIENTS, REPO, SEEDS, Stack, by_id

pytestmark = pytest.mark.integration


def run_until_idle(stack: Stack, idle: float, timeout: float = 180) -> None:
    p = stack.start(exit_when_idle=idle)
    rc = p.wait(timeout)
    assert rc == 0, f"enricher exited with {rc}:\n{p.log()[-3000:]}"


def assert_same_as_replay(stack: Stack, es: Any, expected: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    got = stack.es_docs(es)
    assert stack.es_count(es) == len(expected)
    assert set(got) == set(expected)
    for i, doc in expected.items():
        assert got[i] == doc, f"document {i} differs from replay"
    # Everything read was committed.
    assert stack.committed() == {p: off for p, off in stack.end_offsets().items() if off > 0}
    return got


def test_seed_examples_through_kafka_and_elasticsearch(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("seeds")
    expected: dict[str, dict[str, Any]] = {}
    for case, (appliance, _, _) in SEEDS.items():
        path = GOLDEN / case / "input.log"
        stats = stack.produce(path, appliance)
        assert stats["records"] > 0
        expected.update(by_id(stack.replay(path, appliance)))
    assert len(expected) == 3

    run_until_idle(stack, 5)

    got = assert_same_as_replay(stack, es_client, expected)
    by_appliance = {d["observer"]["hostname"]: d for d in got.values()}
    for appliance, reason, layer in SEEDS.values():
        doc = by_appliance[appliance]
        assert (doc["abort_reason"], doc["abort_layer"]) == (reason, layer), appliance
        assert doc["esa"]["session"]["state"] == "complete"


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_done_when_flow_from_a_fresh_start(make_stack: Callable[..., Stack], es_client: Any, client: str) -> None:
    stack = make_stack("donewhen", setup=False, kafka={"client": client})
    report = stack.setup()
    assert set(report["kafka_topics_created"]) == {stack.topic, stack.state_topic, stack.dlq}
    assert any(f"index template {stack.prefix}" in step for step in report["elasticsearch"])
    assert stack.setup()["kafka_topics_created"] == []  # idempotent

    sample = REPO / "samples" / "demo-mail_logs.log"
    produced = stack.produce(sample, "esa1.corp.example")
    expected = by_id(stack.replay(sample, "esa1.corp.example"))
    assert len(expected) == 8

    t0 = time.monotonic()
    run_until_idle(stack, 10)
    assert time.monotonic() - t0 < 60
    assert f"with the {client} client" in stack.processes[-1].log()

    got = assert_same_as_replay(stack, es_client, expected)
    assert sum(stack.end_offsets().values()) == produced["records"]
    want = Counter((d.get("abort_reason"), d.get("abort_layer")) for d in expected.values())
    assert Counter((d.get("abort_reason"), d.get("abort_layer")) for d in got.values()) == want
    assert want[("connection_lost", "transport")] >= 1 and want[("sender_quit", "application")] >= 1
    # Every document is reachable through the alias, and each sits in the monthly index of its @timestamp.
    for h in stack.es_hits(es_client):
        ts = h["_source"]["@timestamp"]
        assert h["_index"] == f"{stack.prefix}-{ts[0:4]}.{ts[5:7]}"

