"""Fixtures of the contract tests: every implementation of a port, each behind the same small handle.

The in-process implementations (NDJSON sink, memory state store) always run; those that talk to a service
(Elasticsearch, the sessions topic, the Kafka state store) carry the `integration` marker and run against the
real services the integration tests use (their fixtures are imported from tests/integration/conftest.py).
Every case gets its own topics and index prefix, removed afterwards.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from enricher.config import KafkaSettings, load
from enricher.edges.ports import BatchSink, Sink, StateStore
from enricher.edges.sinks.ndjson import NdjsonSink
from enricher.edges.state.memory import MemoryStateStore
from enricher.telemetry import Metrics
from tests.integration import conftest as services

# The real services, as the integration tests get them (fixtures are found by their names in a conftest).
_provider, kafka_bootstrap, es_url, es_client = services._provider, services.kafka_bootstrap, services.es_url, services.es_client

integration = pytest.mark.integration


def unique(name: str) -> str:
    """A topic or index name no other test (or earlier run) uses."""
    return f"ct-{name}-{uuid.uuid4().hex[:8]}"


def kafka_settings(bootstrap: str, **kafka: Any) -> KafkaSettings:
    """`kafka` settings against the test broker."""
    return load(None, {"kafka.bootstrap_servers": bootstrap, **{f"kafka.{k}": v for k, v in kafka.items()}}).kafka


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Remove a case's topics (best effort: the next run uses other names anyway)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="contract-cleanup")
    try:
        admin.delete_topics([t for t in topics if t in set(admin.list_topics())])
    except Exception as exc:  # noqa: BLE001
        print(f"clean-up of {topics} failed: {exc}")
    finally:
        admin.close()


# -- state stores ---------------------------------------------------------------------------------------------
@dataclass
class StoreCase:
    """A state store, how to open it again as a restarted process would (a durable store: a new client), and the
    stream names this case uses (the store's topic is shared by the module's cases)."""

    store: StateStore
    reopen: Callable[[], StateStore]
    stream: str
    other_stream: str


@pytest.fixture(scope="module")
def state_settings(kafka_bootstrap: str) -> Iterator[KafkaSettings]:
    """A state topic (3 partitions) for the module's Kafka cases."""
    from enricher.edges.kafka.kafka_python import ensure_topics

    name = unique("state")
    k = kafka_settings(
        kafka_bootstrap, topic=name, state_topic=f"{name}-state", dead_letter_topic=f"{name}-dlq", client_id=name
    )
    ensure_topics(k, partitions=3)
    yield k
    delete_topics(kafka_bootstrap, [k.topic, k.state_topic, k.dead_letter_topic])


@pytest.fixture(params=["memory", pytest.param("kafka", marks=integration)])
def store_case(request: pytest.FixtureRequest) -> Iterator[StoreCase]:
    """Each state store implementation."""
    stream = unique("group") + "/topic"
    if request.param == "memory":
        store = MemoryStateStore()
        yield StoreCase(store, lambda: store, stream, stream + "-other")  # in-process: survives as this process does
        return
    from enricher.edges.kafka.kafka_python import make_producer, make_reader
    from enricher.edges.state.kafka import KafkaStateStore

    k: KafkaSettings = request.getfixturevalue("state_settings")
    producers: list[Any] = []

    def make() -> KafkaStateStore:
        producers.append(make_producer(k, max_request_size=8 << 20))
        return KafkaStateStore(producers[-1], lambda: make_reader(k), k.state_topic)

    try:
        yield StoreCase(make(), make, stream, stream + "-other")
    finally:
        for p in producers:
            p.close()


# -- sinks ----------------------------------------------------------------------------------------------------
# The stores are shared by the cases of a module (an index, a topic: creating them is what costs), and each case
# tags the `event.id` of its documents and reads back only what carries its tag.
@dataclass
class SinkCase:
    """A sink, what reads back what it wrote (each store it writes to), and what it reported."""

    name: str
    sink: Sink
    readers: list[Callable[[], list[dict[str, Any]]]]
    metrics: Metrics
    tag: str = ""  # appended to the `event.id` of this case's documents
    letters: list[tuple[dict[str, Any], dict[str, Any], list[Any]]] = field(default_factory=list)
    stores: int = 1  # how many stores each document goes to (a fan-out: several)


def _tagged(docs: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["event"]["id"].endswith(tag)]


@pytest.fixture(scope="module")
def es_index(es_client: Any) -> Iterator[str]:
    """An index prefix with `setup`'s templates installed, for the module's cases."""
    from enricher.edges.sinks.elasticsearch.assets import install

    prefix = unique("es")
    install(es_client, prefix=prefix, ilm=False)
    yield prefix
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es_client.options(ignore_status=404).indices.delete_index_template(name=prefix)
    for n in (f"{prefix}-settings", f"{prefix}-mappings"):
        es_client.options(ignore_status=404).cluster.delete_component_template(name=n)


def _es_sink(es: Any, prefix: str, tag: str, metrics: Metrics, dead_letter: Any) -> tuple[Any, Callable[[], list[dict[str, Any]]]]:
    from elasticsearch import helpers

    from enricher.edges.sinks.elasticsearch import ElasticsearchSink

    sink = ElasticsearchSink(es, prefix, dead_letter, metrics, initial_backoff=0.05, max_backoff=0.2)

    def read() -> list[dict[str, Any]]:
        es.options(ignore_status=404).indices.refresh(index=prefix)
        hits = helpers.scan(es, index=prefix, query={"query": {"match_all": {}}}, size=1000, ignore_unavailable=True)
        docs = _tagged([h["_source"] for h in hits], tag)
        for d in docs:
            assert d["event"].pop("ingested", None) is not None, "written without event.ingested"
        return docs

    return sink, read


@pytest.fixture(scope="module")
def sessions_topic(kafka_bootstrap: str) -> Iterator[tuple[KafkaSettings, Callable[[], list[dict[str, Any]]]]]:
    """A sessions topic (64 KiB documents at most) for the module's cases, and what reads it whole."""
    from kafka import TopicPartition

    from enricher.edges.kafka.kafka_python import ensure_sessions_topic, make_reader

    name = unique("sessions")
    k = kafka_settings(kafka_bootstrap, sessions_topic=name, client_id=name, sessions_max_bytes=64 * 1024)
    ensure_sessions_topic(k)
    reader = make_reader(k)
    tps = [TopicPartition(name, p) for p in sorted(reader.partitions_for_topic(name) or ())]
    reader.assign(tps)

    def read() -> list[dict[str, Any]]:
        reader.seek_to_beginning(*tps)
        ends = reader.end_offsets(tps)
        out: list[dict[str, Any]] = []
        while any(reader.position(tp) < ends[tp] for tp in tps):
            for records in reader.poll(timeout_ms=500).values():
                out.extend(orjson.loads(r.value) for r in records)
        return out

    yield k, read
    reader.close()
    delete_topics(kafka_bootstrap, [name])


def _topic_sink(
    topic: tuple[KafkaSettings, Callable[[], list[dict[str, Any]]]], tag: str, metrics: Metrics, dead_letter: Any
) -> tuple[Any, Callable[[], list[dict[str, Any]]]]:
    from enricher.edges.kafka.confluent import make_sessions_producer
    from enricher.edges.sinks.kafka_topic import KafkaTopicSink

    k, read_all = topic
    sink = KafkaTopicSink(make_sessions_producer(k), k.sessions_topic, dead_letter, k.sessions_max_bytes, metrics)
    return sink, lambda: _tagged(read_all(), tag)


# A document each store refuses for good: Elasticsearch cannot parse its date, the sessions topic (64 KiB here)
# cannot take its size.
REFUSED = {"@timestamp": "2026-11-3xT10:00:00.000Z", "event": {"id": "refused:1", "kind": "event"}, "message": "x" * 81920}


_BATCH_SINKS = [pytest.param(name, marks=integration) for name in ("elasticsearch", "kafka_topic", "fanout")]


@pytest.fixture(params=["ndjson", *_BATCH_SINKS])
def sink_case(request: pytest.FixtureRequest) -> Iterator[SinkCase]:
    """Each sink implementation (the fan-out over Elasticsearch and the sessions topic, as `service.outputs`)."""
    yield from _sink_case(request)


@pytest.fixture(params=_BATCH_SINKS)
def batch_sink_case(request: pytest.FixtureRequest) -> Iterator[SinkCase]:
    """Each sink the service drives (`BatchSink`: partitions, back-pressure, dead letters; not replay's NDJSON)."""
    yield from _sink_case(request)


def _sink_case(request: pytest.FixtureRequest) -> Iterator[SinkCase]:
    metrics = Metrics()
    letters: list[Any] = []

    def dead_letter(doc: dict[str, Any], error: dict[str, Any], sources: list[Any]) -> None:
        letters.append((doc, error, sources))

    if request.param == "ndjson":
        out = io.BytesIO()

        def read_ndjson() -> list[dict[str, Any]]:
            return [orjson.loads(line) for line in out.getvalue().splitlines()]

        yield SinkCase("ndjson", NdjsonSink(out), [read_ndjson], metrics, letters=letters)
        return
    tag = f"#{uuid.uuid4().hex[:8]}"
    sinks: list[BatchSink] = []
    readers = []
    try:
        if request.param in ("elasticsearch", "fanout"):
            es = request.getfixturevalue("es_client")
            sink, read = _es_sink(es, request.getfixturevalue("es_index"), tag, metrics, dead_letter)
            sinks.append(sink)
            readers.append(read)
        if request.param in ("kafka_topic", "fanout"):
            sink, read = _topic_sink(request.getfixturevalue("sessions_topic"), tag, metrics, dead_letter)
            sinks.append(sink)
            readers.append(read)
        if request.param == "fanout":
            from enricher.edges.sinks.fanout import Fanout

            yield SinkCase("fanout", Fanout(sinks), readers, metrics, tag, letters, stores=2)
        else:
            yield SinkCase(request.param, sinks[0], readers, metrics, tag, letters)
    finally:
        for s in sinks:
            s.close()
