"""Duplicated and late lines through Kafka → enricher → Elasticsearch.

- A late line (an `ICID lost` delivered after its message's document was indexed, by a second `run` that
  restores the first one's checkpoint) updates that document in place: same id, reclassified, every raw line.
- Lines delivered twice (two relays, one with another syslog header) add no document: the index holds
  exactly replay's documents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import GOLDEN, Stack, by_id

pytestmark = pytest.mark.integration

APPLIANCE = "esa1.example.com"


def run_until_idle(stack: Stack, idle: float, timeout: float = 180) -> None:
    p = stack.start(exit_when_idle=idle)
    rc = p.wait(timeout)
    assert rc == 0, f"enricher exited with {rc}:\n{p.log()[-3000:]}"


def test_late_line_updates_the_indexed_document(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("lateline")
    lines = (GOLDEN / "late-line-merge" / "input.log").read_text().splitlines(keepends=True)
    late = next(i for i, x in enumerate(lines) if x.rstrip().endswith("ICID 10293 lost"))
    before, after = stack.dir / "before.log", stack.dir / "after.log"
    before.write_text("".join(lines[:late]))
    after.write_text("".join(lines[late:]))

    stack.produce(before, APPLIANCE)
    run_until_idle(stack, 5)
    first = {i: d for i, d in stack.es_docs(es_client).items() if d.get("email", {}).get("local_id") == "1404"}
    ((doc_id, doc),) = first.items()
    assert doc["abort_reason"] == "receiving_aborted_unexplained" and len(doc["esa"]["raw"]) == 8

    stack.produce(after, APPLIANCE)  # the late line, then more traffic
    run_until_idle(stack, 5)  # restores the first run's checkpoint: the written session is in it
    docs = stack.es_docs(es_client)
    merged = docs[doc_id]
    assert (merged["abort_reason"], merged["abort_layer"]) == ("connection_lost", "transport")
    assert set(doc["esa"]["raw"]) < set(merged["esa"]["raw"]) and len(merged["esa"]["raw"]) == 9
    assert [d for d in docs.values() if d.get("email", {}).get("local_id") == "1404"] == [merged]
    # The index holds what replay of the whole input ends with (last write per id).
    assert docs == by_id(stack.replay(GOLDEN / "late-line-merge" / "input.log", APPLIANCE))


def test_duplicated_lines_add_no_document(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("duplines")
    path = GOLDEN / "dedup-duplicated-lines" / "input.log"
    stack.produce(path, APPLIANCE)
    expected = by_id(stack.replay(path, APPLIANCE))
    assert len(expected) == 3
    run_until_idle(stack, 5)
    assert stack.es_count(es_client) == 3
    assert stack.es_docs(es_client) == expected
