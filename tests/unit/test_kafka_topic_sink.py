"""The sessions-topic sink: last version per key, dead letters, retries that never let an older version win.

The producer here is a stand-in that records what it is given and answers with real librdkafka error objects;
tests/integration/test_sessions_topic.py runs the sink against the real Kafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from enricher.config import KafkaSettings, load
from enricher.edges.kafka.options import sessions_topic_configs
from enricher.edges.sinks.elasticsearch import FlushDeadline
from enricher.edges.sinks.fanout import Fanout
from enricher.edges.sinks.kafka_topic import KafkaTopicSink
from enricher.edges.sinks.ndjson import dumps
from enricher.errors import ConfigError


class Producer:
    """Queues produce() calls; flush (and poll, when `eager`) delivers them, each with the error `answer(key, n)`
    gives (or None)."""

    def __init__(self, answer: Callable[[bytes, int], int | None] = lambda key, n: None, eager: bool = True) -> None:
        self.answer = answer
        self.eager = eager
        self.queue: list[tuple[bytes, bytes, Any]] = []
        self.written: list[tuple[bytes, bytes]] = []
        self.calls: dict[bytes, int] = {}
        self.purged = 0

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.queue.append((key, value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return self.deliver() if self.eager else 0

    def deliver(self) -> int:
        queue, self.queue = self.queue, []
        for key, value, cb in queue:
            n = self.calls[key] = self.calls.get(key, 0) + 1
            code = self.answer(key, n)
            if code is None:
                self.written.append((key, value))
            cb(None if code is None else KafkaError(code), None)
        return len(queue)

    def flush(self, timeout: float = 0) -> int:
        self.deliver()
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        queue, self.queue = self.queue, []
        self.purged += len(queue)
        for _key, _value, cb in queue:
            cb(KafkaError(KafkaError._PURGE_QUEUE), None)

    def __len__(self) -> int:
        return len(self.queue)


def doc(i: str, lines: int = 1, raw: str = "") -> dict[str, Any]:
    return {"event": {"id": i, "kind": "event"}, "esa": {"session": {"lines": lines}, "raw": [raw] if raw else []}}


def sink(producer: Producer, letters: list[Any], max_bytes: int = KafkaSettings().sessions_max_bytes) -> KafkaTopicSink:
    return KafkaTopicSink(producer, "esa-sessions", lambda d, e, s: letters.append((d, e, s)), max_bytes)


def test_last_version_of_a_session_is_produced_keyed_by_event_id_as_replay_writes_it() -> None:
    p, letters = Producer(), []
    s = sink(p, letters)
    s.add(doc("a", 1), [{"offset": 1}], owner=0)
    s.add(doc("b", 1), [{"offset": 2}], owner=0)
    s.add(doc("a", 2), [{"offset": 3}], owner=0)
    assert s.pending() == 2
    s.flush()
    assert sorted(p.written) == [(b"a", dumps(doc("a", 2))[:-1]), (b"b", dumps(doc("b", 1))[:-1])]
    assert s.pending() == s.in_flight() == 0 and not letters
    assert s.metrics.topic_documents_written._value.get() == 2


def test_a_document_too_large_is_a_dead_letter_and_its_older_queued_version_is_not_written() -> None:
    p, letters = Producer(), []
    s = sink(p, letters, max_bytes=1024)
    s.add(doc("a", 1), [{"offset": 1}], owner=0)
    s.add(doc("a", 2, raw="x" * 2000), [{"offset": 2}], owner=0)
    s.flush()
    assert p.written == []
    [(d, error, sources)] = letters
    assert d["esa"]["session"]["lines"] == 2
    assert error["reason"] == "too_large" and error["bytes"] > 2000 and error["max_bytes"] == 1024
    assert sources == [{"offset": 1}, {"offset": 2}]


def test_a_refused_record_is_a_dead_letter_and_a_passing_failure_is_produced_again() -> None:
    answers = {(b"big", 1): KafkaError.MSG_SIZE_TOO_LARGE, (b"slow", 1): KafkaError._MSG_TIMED_OUT}
    p, letters = Producer(lambda key, n: answers.get((key, n))), []
    s = sink(p, letters)
    s.add(doc("big"), [{"offset": 1}], owner=0)
    s.add(doc("slow"), [{"offset": 2}], owner=0)
    s.flush()
    assert p.written == [(b"slow", dumps(doc("slow"))[:-1])]
    assert p.calls == {b"big": 1, b"slow": 2}
    [(d, error, _)] = letters
    assert d == doc("big") and error["reason"] == "MSG_SIZE_TOO_LARGE"
    assert s.metrics.topic_retries.labels(reason="msg_timed_out")._value.get() == 1


def test_an_older_version_that_failed_is_never_produced_after_a_newer_one() -> None:
    p = Producer(lambda key, n: KafkaError._MSG_TIMED_OUT if n == 1 else None, eager=False)
    s = sink(p, [])
    s.add(doc("a", 1), owner=0)
    s.submit()  # version 1 handed to the producer (its report not served yet)
    s.add(doc("a", 2), owner=0)
    s.submit()  # version 2 too; then version 1's report says it failed
    s.flush()
    assert p.written == [(b"a", dumps(doc("a", 2))[:-1])]
    assert p.calls == {b"a": 2}  # version 1 was not produced again


def test_discard_drops_a_given_up_partition_and_produces_again_what_the_purge_took_from_the_others() -> None:
    p = Producer(eager=False)
    s = sink(p, [])
    s.add(doc("mine"), owner=0)
    s.add(doc("gone"), owner=1)
    s.submit()  # both in the producer's queue, not sent
    s.add(doc("gone-queued"), owner=1)
    assert s.discard([1]) == 1
    assert p.purged == 2
    s.flush()
    assert [k for k, _ in p.written] == [b"mine"]
    # Both documents of the partition given up are counted: the queued one at discard, the purged one when its
    # report comes back (it is not produced again).
    assert s.metrics.documents_dropped.labels(reason="revoked")._value.get() == 2


def test_a_document_without_event_id_is_a_counted_dead_letter() -> None:
    p, letters = Producer(), []
    s = sink(p, letters)
    s.add({"error": {"type": "unparsed"}}, [{"offset": 4}], owner=0)
    s.flush()
    [(_, error, sources)] = letters
    assert error["reason"] == "no event.id" and sources == [{"offset": 4}] and p.written == []
    assert s.metrics.dead_letters.labels(reason="no_event_id")._value.get() == 1


def test_flush_with_a_deadline_that_passes_raises_flush_deadline() -> None:
    p = Producer(lambda key, n: KafkaError._MSG_TIMED_OUT)
    s = sink(p, [])
    s.add(doc("a"), owner=0)
    with pytest.raises(FlushDeadline):
        s.flush(deadline=0.0)


def test_fanout_gives_every_sink_each_document_and_settles_only_those_with_an_answer() -> None:
    a, b = Producer(eager=False), Producer(eager=False)
    sa, sb = sink(a, []), sink(b, [])
    f = Fanout([sa, sb])
    f.add(doc("x"), owner=0)
    assert f.pending() == 1 and not f.full()
    f.submit()
    assert f.in_flight() == 2 and f.in_flight_done()
    f.settle()  # reports not in yet: nothing settled, nothing waited for
    assert f.in_flight() == 2 and a.written == []
    f.flush()
    assert a.written == b.written == [(b"x", dumps(doc("x"))[:-1])] and f.in_flight() == 0


def test_outputs_and_the_topic_settings_are_validated_by_key() -> None:
    cfg = load(None, {"service.outputs": ["kafka"]})
    assert cfg.service.outputs == ["kafka"] and cfg.kafka.sessions_topic == "esa-sessions"
    assert load(None, {}).service.outputs == ["elasticsearch"]
    assert sessions_topic_configs(cfg.kafka)["cleanup.policy"] == "compact"
    for bad, key in (
        ({"service.outputs": ["kafka", "kafka"]}, "service.outputs"),
        ({"service.outputs": []}, "service.outputs"),
        ({"service.outputs": ["splunk"]}, "service.outputs"),
        ({"kafka.sessions_max_bytes": 10}, "kafka.sessions_max_bytes"),
    ):
        with pytest.raises(ConfigError, match=key):
            load(None, bad)
