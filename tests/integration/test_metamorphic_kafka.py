"""Metamorphic property (d): through Kafka and `run`, the last document per `event.id` in Elasticsearch is
replay's (issue 9, item 7; the in-process properties are tests/test_metamorphic.py).

A run of the real service costs seconds, so the examples are not one run each: hypothesis draws
EXAMPLES inputs (golden inputs and windows of the generated corpus, each left as it is or with copies,
moved records or late records, the transformations of the in-process properties), every example's
appliances are renamed apart (`x<k>-<appliance>`: the examples share nothing), all of them are produced
into one topic keyed by appliance, and one `run --exit-when-idle` reads them. Each example's documents in
the index must then equal what `replay` of that example's records writes with the same config, except the
fields only the sink adds (`SINK_FIELDS`), the error documents (`run` sends those to the dead-letter topic)
and the window that closed a session still open at the end (`as_replay_ends`).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from enricher.cli import build_pipeline
from enricher.config import Config, load
from enricher.edges.kafka.kafka_python import records_from_lines
from tests.integration.harness import Stack, wait_until
from tests.metamorphic import (
    SINK_FIELDS,
    Input,
    Record,
    corpus_input,
    delays,
    difference,
    duplications,
    final_documents,
    golden_inputs,
    inputs,
    interleavings,
    lines_of,
    records_of,
    replay,
    with_copies,
    with_delays,
    with_moves,
)

pytestmark = pytest.mark.integration

EXAMPLES = 30  # ~8,000 records, one run: ~35 s on the lab machine


def transformed(cfg: Config) -> st.SearchStrategy[tuple[str, list[Record]]]:
    """An input read with `cfg` (the stack's), as it is or transformed: (description, records)."""

    def reread(inp: Input) -> Input:
        return Input(inp.name, records_of([r.raw for r in inp.records], cfg), cfg)

    plain = inputs().map(lambda i: (i.name, list(reread(i).records)))
    copied = duplications().map(lambda c: (f"{c[0].name} copies {c[1]}", with_copies(reread(c[0]).records, c[1])))
    moved = interleavings().map(lambda c: (f"{c[0].name} moves {c[1]}", with_moves(reread(c[0]).records, c[1])))
    late = delays().map(lambda c: (f"{c[0].name} delays {c[1]}", with_delays(reread(c[0]).records, c[1])))
    return st.one_of(plain, copied, moved, late)


def renamed(records: list[Record], k: int) -> list[Record]:
    """The records with every appliance called `x<k>-<name>` (in the line's envelope when it names one)."""
    out = []
    for r in records:
        new = f"x{k}-{r.appliance}"
        raw = r.raw.replace(f" {r.appliance} ", f" {new} ", 1)
        out.append(Record(raw, new, r.ts))
    return out


@pytest.mark.parametrize("killed", [False, True], ids=["one-run", "killed-and-restarted"])
def test_run_through_kafka_writes_what_replay_writes(
    make_stack: Callable[..., Stack], es_client: Any, killed: bool
) -> None:
    """One run reads every example; or (`killed`) a first run is killed with SIGKILL a moment after it starts
    reading and a second one restores its checkpoint and finishes: the index must be the same."""
    # Checkpoints every half second: the killed run has written some (the next one restores, then re-reads).
    stack = make_stack("metamorphic", partitions=3, service={"checkpoint_interval_seconds": 0.5})
    cfg = load(str(stack.config_path))
    golden_inputs(), corpus_input()  # built before hypothesis times anything
    examples: list[tuple[str, list[Record]]] = []

    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(transformed(cfg), st.floats(0.0, 1.5))
    def collect(example: tuple[str, list[Record]], delay: float) -> None:
        examples.append(example)
        delays.append(delay)

    delays: list[float] = []
    collect()
    assert len(examples) == EXAMPLES
    print(*(f"{k}: {what} ({len(r)} records)" for k, (what, r) in enumerate(examples)), sep="\n")

    expected: dict[int, dict[str, dict[str, Any]]] = {}
    producer = stack.producer(linger_ms=20)
    for k, (_, records) in enumerate(examples):
        recs = renamed(records, k)
        # Lines without a host take the replay's default appliance; in Kafka the record key names it.
        own = replace_appliance(cfg, f"x{k}-{cfg.appliance}")
        expected[k] = final_documents(replay(recs, own), SINK_FIELDS, index_only=True)
        # What `esa-enricher produce` makes of these lines (wrapped lines joined as replay joins them).
        for key, value in records_from_lines(build_pipeline(own).parser, lines_of(recs)):
            producer.send(stack.topic, key=key.encode(), value=value.encode())
    producer.flush()
    producer.close()

    if killed:
        first = stack.start(tag="killed")
        wait_until(lambda: first.metric("esa_checkpoints_total") > 0, 120, "the first run's first checkpoint")
        time.sleep(delays[-1])  # drawn with the examples
        print(f"killed after {first.metric('esa_lines_received_total'):.0f} lines")
        assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    p = stack.start(exit_when_idle=5)
    rc = p.wait(300)
    assert rc == 0, f"enricher exited with {rc}:\n{p.log()[-3000:]}"
    if killed:
        assert "restored checkpoint" in p.log(), p.log()[-2000:]

    got = final_documents(map(as_replay_ends, stack.es_docs(es_client).values()), SINK_FIELDS)
    failures = []
    for k, (what, _) in enumerate(examples):
        want = expected[k]
        mine = {i: d for i, d in got.items() if d["observer"]["hostname"].startswith(f"x{k}-")}
        if mine != want:
            failures.append(f"example {k} ({what}):\n{difference(want, mine)}")
    assert not failures, f"{len(failures)} of {EXAMPLES} examples differ:\n" + "\n".join(failures[:5])
    assert len(got) == sum(len(w) for w in expected.values()) > 10 * EXAMPLES


def as_replay_ends(doc: dict[str, Any]) -> dict[str, Any]:
    """A session still open when the run stopped was written with `closed_by: batch_end` (it stays open: a later
    line updates it), where replay, whose input ends there, says `end_of_input`: the one field in which they
    may differ, and only in this way."""
    evidence = (doc.get("esa") or {}).get("abort", {}).get("evidence") or {}
    if evidence.get("closed_by") == "batch_end":
        evidence["closed_by"] = "end_of_input"
    return doc


def replace_appliance(cfg: Config, appliance: str) -> Config:
    """`cfg` with another default appliance (what `replay --appliance` sets)."""
    return cfg.model_copy(update={"appliance": appliance})
