"""The Elasticsearch sink on its own, against real endpoints: a port where nothing listens, then the node.

What a rebalance during an outage relies on: a flush with a deadline gives up in time and keeps what it
could not write; the documents of partitions given up are discarded, and the rest is written later. The same
holds for a batch sent in the background (`submit`), and a newer version queued meanwhile is written after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from enricher.edges.sinks.elasticsearch import ElasticsearchSink, FlushDeadline
from tests.integration.harness import REPO, Stack

pytestmark = pytest.mark.integration



def last_per_id(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replay's documents as Elasticsearch keeps them: the last write of each id (a session written again, as
    the demo's MID 9001 is when its bounce's link arrives, is one document)."""
    return list({d["event"]["id"]: d for d in docs}.values())

def test_flush_deadline_keeps_the_documents_and_discard_drops_a_partitions(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("sink", partitions=1)
    docs = last_per_id(stack.replay(REPO / "samples" / "demo-mail_logs.log", "esa1.corp.example"))
    assert len(docs) == 8
    letters: list[Any] = []
    nowhere = Elasticsearch("http://127.0.0.1:9", request_timeout=2, max_retries=0)  # discard port: refused
    sink = ElasticsearchSink(
        nowhere, stack.prefix, lambda d, e, s: letters.append((d, e, s)), initial_backoff=0.2, max_backoff=0.5
    )
    for i, d in enumerate(docs):
        sink.add(d, [{"topic": "t", "partition": i % 2, "offset": i}], owner=i % 2)

    t0 = time.monotonic()
    with pytest.raises(FlushDeadline):
        sink.flush(None, deadline=time.monotonic() + 1.5)
    assert time.monotonic() - t0 < 5
    assert sink.pending() == 8  # nothing lost
    assert sink.metrics.bulk_failures.labels(reason="ConnectionError")._value.get() >= 1

    assert sink.discard([1]) == 4  # partition 1 was given up
    assert sink.pending() == 4
    sink.client = es_client
    sink.flush()
    assert sink.pending() == 0 and letters == []
    kept = {d["event"]["id"] for i, d in enumerate(docs) if i % 2 == 0}
    assert set(stack.es_docs(es_client)) == kept


def test_a_batch_in_flight_is_settled_in_order_and_kept_when_refused(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("sinkbg", partitions=1)
    docs = last_per_id(stack.replay(REPO / "samples" / "demo-mail_logs.log", "esa1.corp.example"))
    letters: list[Any] = []
    nowhere = Elasticsearch("http://127.0.0.1:9", request_timeout=2, max_retries=0)
    sink = ElasticsearchSink(
        nowhere, stack.prefix, lambda d, e, s: letters.append((d, e, s)), initial_backoff=0.2, max_backoff=0.5
    )
    for i, d in enumerate(docs):
        sink.add(d, [{"topic": "t", "partition": i % 2, "offset": i}], owner=i % 2)
    sink.submit()  # sent in the background: refused there
    assert (sink.in_flight(), sink.pending()) == (8, 0)
    with pytest.raises(FlushDeadline):
        sink.flush(None, deadline=time.monotonic() + 1.5)
    assert (sink.in_flight(), sink.pending()) == (0, 8)  # the refused batch is queued again, nothing lost
    assert sink.discard([1]) == 4

    # A newer version of a document queued while the older one is in flight is written after it.
    sink.client = es_client
    sink.submit()
    assert sink.in_flight() == 4
    first = docs[0]
    newer = {**first, "esa": {**first["esa"], "session": {**first["esa"]["session"], "state": "newer"}}}
    sink.add(newer, [], owner=0)
    assert sink.pending() == 1
    sink.flush()
    assert (sink.in_flight(), sink.pending()) == (0, 0) and letters == []
    got = stack.es_docs(es_client)
    assert set(got) == {d["event"]["id"] for i, d in enumerate(docs) if i % 2 == 0}
    assert got[first["event"]["id"]]["esa"]["session"]["state"] == "newer"
    assert sink.metrics.documents_written._value.get() == 5
    sink.close()


def test_indexed_documents_carry_event_ingested_as_a_date(make_stack: Callable[..., Stack], es_client: Any) -> None:
    """The sink stamps `event.ingested` when it writes; the node maps it as a date (a range query finds it)."""
    stack = make_stack("ingested", partitions=1)
    docs = last_per_id(stack.replay(REPO / "samples" / "demo-mail_logs.log", "esa1.corp.example"))
    assert all("ingested" not in d["event"] for d in docs)  # not in replay's documents
    sink = ElasticsearchSink(es_client, stack.prefix, lambda d, e, s: pytest.fail(f"dead letter: {e}"))
    before = datetime.now(UTC) - timedelta(seconds=1)
    for d in docs:
        sink.add(d)
    sink.flush()
    after = datetime.now(UTC) + timedelta(seconds=1)
    hits = stack.es_hits(es_client)
    assert len(hits) == len(docs)
    for h in hits:
        stamp = datetime.fromisoformat(h["_source"]["event"]["ingested"])
        assert before <= stamp <= after
    index = next(iter(es_client.indices.get_mapping(index=stack.prefix).body.values()))
    assert index["mappings"]["properties"]["event"]["properties"]["ingested"] == {"type": "date"}
    window = {"range": {"event.ingested": {"gte": before.isoformat(), "lte": after.isoformat()}}}
    assert es_client.count(index=stack.prefix, query=window)["count"] == len(docs)
    assert stack.es_docs(es_client) == {d["event"]["id"]: d for d in docs}  # nothing else differs from replay
    sink.close()
