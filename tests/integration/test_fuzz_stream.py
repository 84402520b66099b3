"""Fuzzed lines (bench/fuzz.py) through the streaming chain: `produce` → Kafka → `run` → Elasticsearch.

`run` does not crash or stop, exits cleanly, commits every offset, and accounts for every record it read
(`esa_lines_accounted_total` by outcome sums to `esa_lines_received_total`, and its `summary` log line says
the same); no document is refused by Elasticsearch (every dead letter is an unparsed line). 20,000 lines by
default; ESA_FUZZ_STREAM_LINES sets another size (the issue's manual run: 100,000).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.fuzzlib import load_fuzz
from tests.integration.harness import Stack, wait_until

pytestmark = pytest.mark.integration


def test_fuzzed_lines_through_kafka_into_elasticsearch(make_stack: Callable[..., Stack], es_client: Any, capsys: Any) -> None:
    n = int(os.environ.get("ESA_FUZZ_STREAM_LINES", "20000"))
    stack = make_stack("fuzz", partitions=2)
    path = stack.dir / "fuzz.log"
    assert load_fuzz().main(["--lines", str(n), "--seed", "9", "--corpus-lines", "20000", "--write", str(path)]) == 0
    capsys.readouterr()
    produced = stack.produce(path, "esa-fuzz.example")
    total = sum(stack.end_offsets().values())
    assert total == produced["records"] and 0.8 * n < total <= n

    p = stack.start(exit_when_idle=10)
    wait_until(lambda: p.metric("esa_lines_received_total") >= total, 60 + n / 500, "every record read")
    accounted = {lab["outcome"]: v for name, lab, v in p.metrics() if name == "esa_lines_accounted_total"}
    assert sum(accounted.values()) == p.metric("esa_lines_received_total") == total, accounted
    assert accounted["session"] > 0 and accounted["error_document"] > 0
    assert p.wait(120 + n / 500) == 0, p.log()[-3000:]

    log = p.log()
    assert "Traceback" not in log, log[-3000:]
    summary = json.loads(re.findall(r" summary (\{.*\})", log)[-1])
    assert summary["lines"] == total == sum(summary["line_outcomes"].values()), summary
    assert stack.committed() == {k: v for k, v in stack.end_offsets().items() if v > 0}
    letters = [json.loads(r.value) for r in stack.read_topic(stack.dlq)]
    assert {lt["error"]["type"] for lt in letters} == {"unparsed"}, [lt["error"] for lt in letters if lt["error"]["type"] != "unparsed"][:3]
    assert len(letters) == summary["line_outcomes"]["error_document"]
    assert stack.es_count(es_client) > 0
    print(json.dumps({"lines": n, "records": total, "summary": summary, "dead_letters": len(letters), "indexed": stack.es_count(es_client)}))
