"""The sink contract, the same assertions for every implementation (NDJSON always; Elasticsearch, the sessions
topic and the fan-out over both against the real services, see conftest.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from enricher.config import load
from enricher.edges.ports import BatchSink, Sink, SinkClosed
from tests.contract.conftest import REFUSED, SinkCase
from tests.integration.harness import REPO


@cache
def _demo() -> tuple[dict[str, Any], ...]:
    from enricher.cli import build_pipeline

    pipeline = build_pipeline(load(None, {"appliance": "esa1.corp.example", "time.reference_time": "2026-12-31T00:00:00Z"}))
    with open(REPO / "samples" / "demo-mail_logs.log", encoding="utf-8") as f:
        docs = [*pipeline.process_lines(f), *pipeline.flush()]
    return tuple(docs)


def demo_docs(case: SinkCase) -> list[dict[str, Any]]:
    """The demo sample's session documents, as replay writes them (one session is written twice), with the
    case's tag on their `event.id`."""
    return [{**d, "event": {**d["event"], "id": d["event"]["id"] + case.tag}} for d in _demo()]


def last_per_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a keyed store keeps: the last version of each `event.id`."""
    return {d["event"]["id"]: d for d in docs}


def read_all(case: SinkCase) -> list[list[dict[str, Any]]]:
    return [read() for read in case.readers]


def test_a_sink_conforms_to_its_port(sink_case: SinkCase) -> None:
    assert isinstance(sink_case.sink, Sink)
    assert isinstance(sink_case.sink, BatchSink) == (sink_case.name != "ndjson")


def test_what_is_flushed_is_read_back_once_per_add_and_the_last_version_wins(sink_case: SinkCase) -> None:
    docs = demo_docs(sink_case)
    assert len(last_per_id(docs)) < len(docs)  # the demo writes a session twice: the contract covers it
    for i, d in enumerate(docs):
        sink_case.sink.add(d, [{"topic": "t", "partition": 0, "offset": i}], owner=0)
    sink_case.sink.flush()
    for got in read_all(sink_case):
        assert last_per_id(got) == last_per_id(docs)
        assert len(last_per_id(docs)) <= len(got) <= len(docs)  # never more than once per add
    assert sink_case.letters == []


def test_flush_is_idempotent_and_an_empty_flush_writes_nothing(sink_case: SinkCase) -> None:
    sink_case.sink.flush()
    assert all(got == [] for got in read_all(sink_case))
    docs = demo_docs(sink_case)[:3]
    for d in docs:
        sink_case.sink.add(d)
    sink_case.sink.flush()
    first = read_all(sink_case)
    sink_case.sink.flush()
    sink_case.sink.flush()
    assert read_all(sink_case) == first
    assert all(last_per_id(got) == last_per_id(docs) for got in first)


def test_a_document_added_after_close_fails_clearly(sink_case: SinkCase) -> None:
    doc = demo_docs(sink_case)[0]
    sink_case.sink.add(doc)
    sink_case.sink.flush()
    sink_case.sink.close()
    with pytest.raises(SinkClosed, match="after close"):
        sink_case.sink.add(doc)
    sink_case.sink.close()  # closing again is harmless
    assert all(len(got) == 1 for got in read_all(sink_case))


def test_discard_drops_what_is_queued_for_partitions_given_up_and_counts_it(batch_sink_case: SinkCase) -> None:
    sink_case = batch_sink_case
    sink = sink_case.sink
    assert isinstance(sink, BatchSink)
    docs = list(last_per_id(demo_docs(sink_case)).values())
    for i, d in enumerate(docs):
        sink.add(d, [{"topic": "t", "partition": i % 2, "offset": i}], owner=i % 2)
    assert sink.pending() == len(docs)
    given_up = len(docs[1::2])
    assert sink.discard([1]) == given_up
    assert sink.pending() == len(docs) - given_up
    sink.flush()
    assert sink.pending() == 0
    for got in read_all(sink_case):
        assert last_per_id(got) == last_per_id(docs[0::2])
    dropped = sink_case.metrics.documents_dropped.labels(reason="revoked")._value.get()
    assert dropped == given_up * sink_case.stores


def test_a_document_the_store_refuses_for_good_is_dead_lettered_and_counted(batch_sink_case: SinkCase) -> None:
    sink_case = batch_sink_case
    sink = sink_case.sink
    good = demo_docs(sink_case)[0]
    sink.add(good, [{"topic": "t", "partition": 0, "offset": 1}], owner=0)
    refused = {**REFUSED, "event": {**REFUSED["event"], "id": REFUSED["event"]["id"] + sink_case.tag}}
    sink.add(refused, [{"topic": "t", "partition": 0, "offset": 2}], owner=0)
    sink.flush()
    assert len(sink_case.letters) == sink_case.stores  # once per store that refused it
    for doc, error, sources in sink_case.letters:
        assert doc["event"]["id"] == refused["event"]["id"] and error and sources == [{"topic": "t", "partition": 0, "offset": 2}]
    counted = sum(s.value for m in _samples(sink_case, "esa_dead_letters") for s in m.samples if s.name.endswith("_total"))
    assert counted == len(sink_case.letters)
    for got in read_all(sink_case):
        assert [d["event"]["id"] for d in got] == [good["event"]["id"]]


def _samples(case: SinkCase, family: str) -> list[Any]:
    return [m for m in case.metrics.registry.collect() if m.name == family and m.samples]

