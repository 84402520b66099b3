"""What cannot become an indexed session document is counted and kept, and processing goes on.

- Malformed records (garbage bytes, invalid UTF-8, a 1,000,000-byte line) in the raw topic: counted in
  `esa_lines_unparsed`, kept in the dead-letter topic with the original line (exact bytes when it is not
  UTF-8) and its source offset; the sessions after them are indexed.
- Documents Elasticsearch refuses item by item (here: a monthly index whose mapping makes `email.local_id` a
  boolean, so every message document is refused and the connection documents are not): in the dead-letter topic with the document, the error and the source offsets; the rest is indexed
  and the offsets are committed past them.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import GOLDEN, REPO, Stack, by_id, wait_until

pytestmark = pytest.mark.integration


def test_malformed_lines_are_counted_kept_and_skipped(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("malformed", partitions=1)
    app = "esa-bad.example"
    lost = GOLDEN / "seed-connection-lost" / "input.log"
    quit_ = GOLDEN / "seed-sender-quit" / "input.log"
    combined = stack.dir / "good.log"
    combined.write_bytes(lost.read_bytes() + quit_.read_bytes())
    expected = by_id(stack.replay(combined, app))
    assert {d["abort_reason"] for d in expected.values()} == {"connection_lost", "sender_quit"}

    rng = random.Random(20261127)
    bad = {
        "garbage": b"\x00\xfe\xff" + bytes(rng.randrange(256) for _ in range(400)),
        "invalid_utf8": b"Thu Aug 14 11:06:00 2014 Info: \xff\xfe broken \xc3\x28 record \xed\xa0\x80 end",
        "huge": b"Thu Aug 14 11:06:01 2014 Info: " + b"A" * (1_000_000 - 31),
    }
    assert len(bad["huge"]) == 1_000_000
    stack.produce(lost, app)
    prod = stack.producer(max_request_size=2 << 20)
    where: dict[str, tuple[int, int]] = {}
    for name, value in bad.items():
        md = prod.send(stack.topic, key=app.encode(), value=value).get(timeout=30)
        where[name] = (md.partition, md.offset)
    prod.flush()
    prod.close()
    stack.produce(quit_, app)
    total = sum(stack.end_offsets().values())

    p = stack.start(exit_when_idle=15)
    wait_until(lambda: p.metric("esa_lines_received_total") >= total, 60, "every record read")
    unparsed = {lab["reason"]: v for n, lab, v in p.metrics() if n == "esa_lines_unparsed_total"}
    assert sum(unparsed.values()) >= 3, unparsed
    assert p.healthz()[0] == 200
    assert p.wait(90) == 0, p.log()[-3000:]

    # The pipeline went on: both sessions are indexed, the one after the bad records included.
    got = stack.es_docs(es_client)
    assert got == expected
    assert stack.committed() == stack.end_offsets()

    letters = [json.loads(r.value) for r in stack.read_topic(stack.dlq)]
    assert len(letters) == 3, [lt["error"] for lt in letters]
    by_offset = {(lt["sources"][0]["partition"], lt["sources"][0]["offset"]): lt for lt in letters}
    for name, value in bad.items():
        part, off = where[name]
        letter = by_offset[(part, off)]
        assert letter["sources"] == [{"topic": stack.topic, "partition": part, "offset": off}]
        assert letter["error"]["type"] == "unparsed"
        assert unparsed.get(letter["error"]["reason"], 0) >= 1, (letter["error"], unparsed)
        doc = letter["document"]
        assert doc["event"]["kind"] == "pipeline_error"
        assert doc["event"]["original"] == value.decode("utf-8", "replace"), name  # kept whole, 1 MB included
        try:
            value.decode("utf-8")
            assert "original_base64" not in letter["error"]
        except UnicodeDecodeError:
            assert base64.b64decode(letter["error"]["original_base64"]) == value, name  # the exact bytes


def test_documents_elasticsearch_refuses_go_to_the_dead_letter_topic(
    make_stack: Callable[..., Stack], es_client: Any
) -> None:
    stack = make_stack("refused")
    sample, app = REPO / "samples" / "demo-mail_logs.log", "esa1.corp.example"
    expected = by_id(stack.replay(sample, app))
    months = {f"{stack.prefix}-{d['@timestamp'][0:4]}.{d['@timestamp'][5:7]}" for d in expected.values()}
    assert len(months) == 1
    (month,) = months
    # The month's index exists already, with a mapping (merged over the template's) that some documents break.
    es_client.indices.create(index=month, mappings={"properties": {"email": {"properties": {"local_id": {"type": "boolean"}}}}})
    assert month in es_client.indices.get_alias(name=stack.prefix)
    refused = {i for i, d in expected.items() if (d.get("email") or {}).get("local_id")}
    assert 0 < len(refused) < len(expected)

    stack.produce(sample, app)
    p = stack.start(exit_when_idle=5)
    assert p.wait(120) == 0, p.log()[-3000:]

    got = stack.es_docs(es_client)
    assert set(got) == set(expected) - refused
    for i, doc in got.items():
        assert doc == expected[i]
    ends = stack.end_offsets()
    assert stack.committed() == {k: v for k, v in ends.items() if v > 0}

    raw = stack.read_topic(stack.topic)
    where = {r.value.decode(): (r.partition, r.offset) for r in raw}
    letters = stack.read_topic(stack.dlq)
    # Every refused write is a letter: a session written twice (the demo's MID 9001, rewritten when its bounce's
    # link arrives) is refused twice, and its last letter carries the last document.
    assert {r.key.decode() for r in letters} == refused
    last = {r.key.decode(): json.loads(r.value)["document"] for r in letters}
    for key, doc in last.items():
        assert doc["event"].pop("ingested")  # the document as the refused request carried it
        assert doc == expected[key]
    for r in letters:
        letter = json.loads(r.value)
        doc = letter["document"]
        assert doc["event"]["id"] == r.key.decode()
        err = letter["error"]
        assert err["status"] == 400 and err["index"] == month
        assert "parsing_exception" in err["error"]["type"] and "email.local_id" in err["error"]["reason"], err
        (src,) = letter["sources"]
        lines = [where[line] for line in doc["esa"]["raw"]]
        assert {part for part, _ in lines} == {src["partition"]} and src["topic"] == stack.topic
        # The offset of the record whose reading emitted the document: after the session's last line.
        assert max(off for _, off in lines) <= src["offset"] < ends[src["partition"]]
