"""The enriched-sessions topic (`service.outputs` with `kafka`) on the real Kafka: what a consumer of the topic
(Logstash, Splunk Connect for Kafka, a data lake) ends up with is replay's documents, one per key.

One run of both outputs (`["elasticsearch", "kafka"]`) with a small `kafka.sessions_max_bytes`, killed with
SIGKILL in the middle of the stream and restarted: for every session that fits, the latest record of its key
(`event.id`) is `replay`'s document, byte for byte as replay writes it (sorted keys, no `event.ingested`),
except the window that closed a session still open at the end (`as_replay_ends`); each session too large is
in the dead-letter topic (`too_large`, the whole document); Elasticsearch has every session; the topic is
compacted. (The kill -9 of the Elasticsearch output alone, over both clients: test_crash.py.)
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from enricher.edges.sinks.ndjson import dumps
from tests.integration.harness import PY, Stack, clean_env, generate_corpus, wait_until
from tests.integration.test_metamorphic_kafka import as_replay_ends
from tests.metamorphic import final_documents

pytestmark = pytest.mark.integration


def latest_by_key(stack: Stack, topic: str) -> tuple[dict[str, bytes], int]:
    """key → value of the last record of each key (records read in offset order per partition), and the count."""
    records = stack.read_topic(topic)
    out: dict[str, bytes] = {}
    for partition, offset, key, value in sorted((r.partition, r.offset, r.key, r.value) for r in records):
        assert key is not None, f"record without key at {partition}/{offset}"
        out[key.decode()] = value
    return out, len(records)


def topic_config(stack: Stack, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": stack.kafka})
    [future] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {name: entry.value for name, entry in future.result(timeout=30).items()}


def test_kill_9_then_restart_the_latest_record_of_every_session_is_replays_document(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    seed = random.SystemRandom().randrange(1 << 30)
    print(f"kill seed {seed}")
    rng = random.Random(seed)
    t0 = time.monotonic()
    limit = 5800  # about one document in twenty is larger (they go to the dead-letter topic)
    stack = make_stack(
        "topic",
        partitions=2,
        kafka={"client": "confluent", "sessions_max_bytes": limit},
        service={"outputs": ["elasticsearch", "kafka"]},
    )
    assert topic_config(stack, stack.sessions_topic)["cleanup.policy"] == "compact"
    corpus = stack.dir / "corpus.log"
    meta = generate_corpus(corpus, 20_000, seed=1717, appliances=4)
    # The reference (replay) runs while the enricher works and gets killed.
    reference = stack.dir / "replay.ndjson"
    replay = subprocess.Popen(
        [PY, "-m", "enricher", "replay", "-c", str(stack.config_path), "--no-progress", "-o", str(reference), str(corpus)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(), cwd=stack.dir,
    )
    producer = stack.produce_async(corpus)
    first = stack.start(tag="killed")
    wait_until(
        lambda: first.metric("esa_checkpoints_total") > 0 and first.metric("esa_topic_documents_written_total") > 0,
        120,
        "the first run's first checkpoint with documents on the topic",
    )
    time.sleep(rng.uniform(0.0, 1.0))
    read = first.metric("esa_lines_received_total")
    assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    assert producer.wait(300) == 0, producer.stderr.read().decode() if producer.stderr else ""
    print(f"killed after {read:.0f} of {meta['lines']} lines, {time.monotonic() - t0:.0f} s into the test")

    final = stack.start(exit_when_idle=3, tag="final")
    assert final.wait(300) == 0, final.log()[-3000:]
    assert "restored checkpoint" in final.log()
    assert stack.committed() == {k: v for k, v in stack.end_offsets().items() if v}

    assert replay.wait(300) == 0, replay.stderr.read().decode() if replay.stderr else ""
    expected = final_documents(map(orjson.loads, reference.read_bytes().splitlines()), (), index_only=True)
    assert len(expected) == meta["sessions"]
    large = {i for i, d in expected.items() if len(orjson.dumps(d)) > limit}
    assert 0 < len(large) < len(expected) / 5, (len(large), len(expected))
    got, records = latest_by_key(stack, stack.sessions_topic)
    print(f"{records} records for {len(got)} keys ({len(large)} sessions too large); {time.monotonic() - t0:.0f} s")
    letters: dict[str, dict[str, Any]] = {}
    for r in sorted(stack.read_topic(stack.dlq), key=lambda r: (r.partition, r.offset)):
        letter = json.loads(r.value)
        assert letter["error"]["reason"] == "too_large" and letter["error"]["max_bytes"] == limit, letter["error"]
        assert letter["sources"] and letter["sources"][0]["topic"] == stack.topic
        letters[letter["document"]["event"]["id"]] = letter["document"]
    assert all(len(v) <= limit for v in got.values())
    assert set(got) | set(letters) == set(expected)
    differ = []
    for i, want in expected.items():
        if i in large:  # its last version is too large: a dead letter, whatever an earlier version left on the topic
            if as_replay_ends(letters[i]) != want:
                differ.append(i)
            continue
        value = got[i]
        doc = as_replay_ends(orjson.loads(value))
        if doc != want:
            differ.append(i)
        elif doc == orjson.loads(value):  # not rewritten by as_replay_ends: the very bytes replay writes
            assert value == dumps(want)[:-1], i
    assert not differ, [(i, got.get(i), expected[i]) for i in differ[:3]]
    # The other output of the same run: Elasticsearch has no size limit, every session is there once.
    assert set(stack.es_docs(es_client)) == set(expected)


def test_run_creates_a_missing_sessions_topic_compacted(make_stack: Callable[..., Stack]) -> None:
    """What `run` does on start when `setup` did not make the topic (the broker's partitions and replication)."""
    from enricher.config import load
    from enricher.edges.kafka.kafka_python import ensure_sessions_topic

    stack = make_stack("topicstart", partitions=1, setup=False)
    k = load(str(stack.config_path)).kafka
    assert ensure_sessions_topic(k) == [stack.sessions_topic]
    assert ensure_sessions_topic(k) == []  # there now: left as it is
    configs = topic_config(stack, stack.sessions_topic)
    assert configs["cleanup.policy"] == "compact"
    assert int(configs["max.message.bytes"]) > k.sessions_max_bytes
