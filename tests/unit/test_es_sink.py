"""The Elasticsearch sink's encoding: `event.ingested` is the time of the request that writes the document.

The sink encodes a document once, when it is queued, and each bulk request writes its own time into it; a
fake client records the bodies (the real node: tests/integration/test_sink.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from enricher.edges.sinks.elasticsearch import ElasticsearchSink
from enricher.edges.sinks.elasticsearch import encoder as es_encoder
from enricher.edges.sinks.elasticsearch.encoder import encode


class FakeBulk:
    """Answers each bulk request with the given per-item statuses (201 when none are left) and keeps the bodies."""

    def __init__(self, *statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[list[dict[str, Any]]] = []

    def bulk(self, operations: bytes, filter_path: str) -> dict[str, Any]:
        lines = [orjson.loads(x) for x in operations.splitlines()]
        docs = lines[1::2]
        self.bodies.append(docs)
        codes = self.statuses.pop(0) if self.statuses else [201] * len(docs)
        return {"items": [{"index": {"status": c, **({"error": {"type": "x"}} if c >= 400 else {})}} for c in codes]}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """`ingested_now` returns 12:00:00.000, 12:00:01.000, … (one per request); the list records them."""
    seen: list[str] = []
    start = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def now() -> str:
        seen.append((start + timedelta(seconds=len(seen))).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        return seen[-1]

    monkeypatch.setattr(es_encoder, "ingested_now", now)
    yield seen


def _doc(i: int, raw: str = "a line") -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-27T10:00:00.000Z",
        "ecs": {"version": "8.16.0"},
        "event": {"id": f"esa1:m{i}:1", "kind": "event"},
        "esa": {"raw": [raw]},
    }


def _sink(client: FakeBulk, letters: list[Any] | None = None) -> ElasticsearchSink:
    sink = ElasticsearchSink(client, "esa-sessions", lambda d, e, s: (letters if letters is not None else []).append(d))
    sink.sleep = lambda _s: None
    sink.initial_backoff = 0.0
    return sink


def test_each_request_writes_its_time_into_event_ingested(clock: list[str]) -> None:
    client = FakeBulk()
    sink = _sink(client)
    docs = [_doc(1), _doc(2)]
    before = copy.deepcopy(docs)
    for d in docs:
        sink.add(d)
    sink.flush()
    (sent,) = client.bodies
    assert docs == before  # the caller's documents are not changed
    for got, doc in zip(sent, docs, strict=True):
        assert got["event"].pop("ingested") == clock[0] == "2026-12-03T12:00:00.000Z"
        assert got == doc  # nothing else differs


def test_a_retried_document_gets_the_time_of_the_request_that_writes_it(clock: list[str]) -> None:
    client = FakeBulk([201, 429])  # the second document is refused once (back-pressure)
    sink = _sink(client)
    sink.add(_doc(1))
    sink.add(_doc(2))
    sink.flush()
    first, second = client.bodies
    assert [d["event"]["ingested"] for d in first] == [clock[0], clock[0]]
    assert [(d["event"]["id"], d["event"]["ingested"]) for d in second] == [("esa1:m2:1", clock[1])]


def test_a_dead_letter_carries_the_time_it_was_sent_with(clock: list[str]) -> None:
    letters: list[Any] = []
    sink = _sink(FakeBulk([400]), letters)
    sink.add(_doc(1))
    sink.flush()
    (letter,) = letters
    assert letter == {**_doc(1), "event": {**_doc(1)["event"], "ingested": clock[0]}}


def test_only_the_event_field_is_written_whatever_the_log_lines_hold(clock: list[str]) -> None:
    # A log line that spells the placeholder is JSON-escaped in the document: it is never the slot.
    raw = '"ingested":"' + es_encoder.INGESTED_SLOT + '"'  # the placeholder itself
    client = FakeBulk()
    sink = _sink(client)
    sink.add({"esa": {"raw": [raw]}, "event": {"id": "x"}})
    sink.add({"error": {"type": "unparsed"}})  # a document without `event` gets one
    sink.flush()
    a, b = client.bodies[0]
    assert a == {"esa": {"raw": [raw]}, "event": {"id": "x", "ingested": clock[0]}}
    assert b == {"error": {"type": "unparsed"}, "event": {"ingested": clock[0]}}


def test_encode_marks_the_slot() -> None:
    line, slot = encode(_doc(1))
    n = len(es_encoder.INGESTED_SLOT)
    assert line[slot : slot + n].decode() == es_encoder.INGESTED_SLOT
    assert line[slot - len(b'"ingested":"') : slot] == b'"ingested":"'


def test_ingested_now_is_an_utc_millisecond_timestamp() -> None:
    v = es_encoder.ingested_now()
    assert len(v) == 24 and v.endswith("Z")
    assert abs(datetime.fromisoformat(v) - datetime.now(UTC)) < timedelta(seconds=5)
