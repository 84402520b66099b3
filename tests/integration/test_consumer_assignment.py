"""The librdkafka adapter against the real broker: what the service asks for inside the assignment callback.

With librdkafka the service restores a partition's state inside the callback (run on the polling thread) and
seeks it to its checkpoint's offset, which may be ahead of the group's committed offset (a kill between
snapshot and commit). librdkafka refuses a seek of a partition it has not started fetching ("Erroneous
state"), so the adapter applies the callback's seeks and pauses with the assignment. The first records must
come from the offsets asked for, and from the committed offset elsewhere. (kafka-python: the service pauses in
the callback and seeks from its main loop; the kill -9 test covers that path.)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from enricher.config import KafkaSettings
from enricher.edges.kafka import make_consumer
from enricher.edges.kafka.kafka_python import ensure_topics, make_admin, make_producer

pytestmark = pytest.mark.integration

PER_PARTITION = 300


def test_seeks_and_pauses_asked_for_in_the_assignment_callback_take_effect(kafka_bootstrap: str) -> None:
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata, TopicPartition

    client = "confluent"
    tag = uuid.uuid4().hex[:8]
    k = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic=f"esa-assign-{tag}", state_topic=f"esa-assign-{tag}-state",
        dead_letter_topic=f"esa-assign-{tag}-dlq", group_id=f"esa-assign-{tag}", client=client,
    )
    ensure_topics(k, 3)
    producer = make_producer(k)
    try:
        for p in range(3):
            for i in range(PER_PARTITION):
                producer.send(k.topic, value=f"{p}:{i}".encode(), partition=p)
        producer.flush()

        # The group has committed 10 on every partition.
        committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=k.group_id, enable_auto_commit=False)
        tps = [TopicPartition(k.topic, p) for p in range(3)]
        committer.assign(tps)
        committer.commit({tp: OffsetAndMetadata(10, "", -1) for tp in tps})
        committer.close(autocommit=False)

        consumer: Any = make_consumer(k, 10_000)
        asked: list[Any] = []

        class Listener:
            def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            def on_partitions_assigned(self, assigned: Any) -> None:
                asked.extend(assigned)
                for tp in assigned:
                    if tp.partition == 0:
                        consumer.seek(tp, 200)  # a checkpoint ahead of the committed offset
                    elif tp.partition == 1:
                        consumer.pause(tp)  # restored later, from the main loop

        consumer.subscribe([k.topic], listener=Listener())
        firsts: dict[int, int] = {}
        resumed = False
        deadline = time.monotonic() + 60
        while (len(firsts) < 3 or not resumed) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200, max_records=1000).items():
                if records:
                    firsts.setdefault(tp.partition, records[0].offset)
            if asked and not resumed and len(firsts) >= 2:
                assert 1 not in firsts, "a partition paused in the callback was read"
                consumer.resume(TopicPartition(k.topic, 1))
                resumed = True
        consumer.close(autocommit=False)
        assert sorted(tp.partition for tp in asked) == [0, 1, 2]
        assert firsts == {0: 200, 1: 10, 2: 10}, firsts
    finally:
        producer.close()
        admin = make_admin(k)
        try:
            admin.delete_topics([k.topic, k.state_topic, k.dead_letter_topic])
        finally:
            admin.close()
