"""The harness of the metamorphic properties (tests/test_metamorphic.py, tests/integration/test_metamorphic_kafka.py).

An *input* is a list of records (a log line, wrapped continuations already joined, with its appliance and
event time) and the replay config it is read with: every golden case (`input.log` + `args`), and windows of a
small seeded corpus from bench/gen_corpus.py. *The documents* of an input are the last document written per
`event.id` (last write wins, as in Elasticsearch), compared as parsed JSON. Every property replays an input
once as it is and once transformed, in-process (the pipeline objects `replay` uses, not a subprocess), and
asserts that the documents are the same.
"""

from __future__ import annotations

import functools
import re
import shlex
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import assume
from hypothesis import strategies as st

from enricher.cli import build_parser, build_pipeline
from enricher.cli.replay import overrides as replay_overrides
from enricher.config import Config, load
from enricher.core.parsing.envelope import EnvelopeParser, is_bare_body
from enricher.core.parsing.timestamps import TimeResolver
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.state import decode_state, encode_state
from enricher.core.sessions.stitcher import remembered_by
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
# Fields a document may differ in without being a different document: none so far. `esa.session.writes`
# counts how often a session was written and is kept in the comparison on purpose: a duplicate or late line
# that makes the stitcher write a session once more is what these properties are there to catch.
IGNORED_FIELDS: tuple[str, ...] = ()
# Fields only a sink adds at write time (never in replay's output): left out of replay ≡ run.
SINK_FIELDS: tuple[str, ...] = ("event.ingested",)


@dataclass(frozen=True)
class Record:
    """One log record as the parser makes it: its text, appliance and event time (None: not stamped)."""

    raw: str
    appliance: str
    ts: float | None


@dataclass(frozen=True, repr=False)
class Input:
    """A named input: its records and the config they are replayed with."""

    name: str
    records: tuple[Record, ...]
    config: Config

    def __repr__(self) -> str:  # what hypothesis prints of a falsifying example
        return f"<input {self.name}: {len(self.records)} records>"

    def window(self, start: int, length: int) -> Input:
        """The records [start, start + length) as an input of their own."""
        return Input(f"{self.name}[{start}:{start + length}]", self.records[start : start + length], self.config)


def replay_config(args: Sequence[str] = ()) -> Config:
    """The Config `esa-enricher replay <args>` runs with (no config file)."""
    ns = build_parser().parse_args(["replay", "-", *args])
    return load(None, replay_overrides(ns))


def records_of(lines: Iterable[str], cfg: Config) -> tuple[Record, ...]:
    """Physical lines → records, through the parser `replay` builds from `cfg`."""
    return tuple(Record(ev.raw, ev.appliance, ev.ts) for ev in build_pipeline(cfg).parser.parse_lines(lines))


@functools.cache
def golden_inputs() -> tuple[Input, ...]:
    """Every golden case as an input."""
    out = []
    for case in sorted(p for p in GOLDEN.iterdir() if (p / "input.log").exists()):
        args = shlex.split((case / "args").read_text()) if (case / "args").exists() else []
        cfg = replay_config(args)
        lines = (case / "input.log").read_text(encoding="utf-8").splitlines()
        out.append(Input(case.name, records_of(lines, cfg), cfg))
    return tuple(out)


def golden_input(name: str) -> Input:
    """One golden case by name (the explicit counterexamples of the properties)."""
    return next(i for i in golden_inputs() if i.name == name)


CORPUS_LINES = 3000
CORPUS_SEED = 20261203


@functools.cache
def corpus_input(lines: int = CORPUS_LINES, seed: int = CORPUS_SEED, appliances: int = 2) -> Input:
    """A generated stream (bench/gen_corpus.py, seeded: the same records every run), two appliances
    interleaved, read as of its own year."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gen_corpus  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus.log"
        gen_corpus.main(["--lines", str(lines), "--seed", str(seed), "--appliances", str(appliances), "--out", str(out)])
        text = out.read_text(encoding="utf-8").splitlines()
    cfg = replay_config(["--reference-time", "2026-12-31T00:00:00Z"])
    return Input(f"corpus(seed={seed})", records_of(text, cfg), cfg)


# -- replaying -----------------------------------------------------------------------------------------------
def _drop(doc: dict[str, Any], dotted: str) -> None:
    *path, last = dotted.split(".")
    node: Any = doc
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(last, None)


def _as_multisets(node: Any) -> Any:
    """`node` with every array sorted (by its elements' JSON): arrays compared as multisets."""
    if isinstance(node, dict):
        return {k: _as_multisets(v) for k, v in node.items()}
    if isinstance(node, list):
        return sorted((_as_multisets(v) for v in node), key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return node


def final_documents(
    docs: Iterable[dict[str, Any]],
    ignore: Sequence[str] = IGNORED_FIELDS,
    lists_in_any_order: bool = False,
    index_only: bool = False,
) -> dict[str, dict[str, Any]]:
    """The last document written per `event.id` (as Elasticsearch keeps them), `ignore`d fields left out;
    with `lists_in_any_order`, every array read as a multiset (see test_metamorphic.py, property b); with
    `index_only`, what `run` indexes: no error documents (they go to the dead-letter topic, at least once)."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        if index_only and d["event"].get("kind") == "pipeline_error":
            continue
        out[d["event"]["id"]] = d
    for i, d in out.items():
        for f in ignore:
            _drop(d, f)
        if lists_in_any_order:
            out[i] = _as_multisets(d)
    return out


def lines_of(records: Iterable[Record]) -> list[str]:
    """Records as the lines of a file."""
    return [r.raw for r in records]


def pipeline(cfg: Config) -> Pipeline:
    """A fresh pipeline as `replay` builds it."""
    return build_pipeline(cfg)


def replay(records: Sequence[Record], cfg: Config) -> list[dict[str, Any]]:
    """Every document `replay` writes for these records, in order."""
    p = pipeline(cfg)
    return [*p.process_lines(lines_of(records)), *p.flush()]


def replay_files(parts: Sequence[Sequence[Record]], cfg: Config) -> list[dict[str, Any]]:
    """`replay f1 f2 …`: one pipeline reads the files in order, then flushes (as cmd_replay does)."""
    p = pipeline(cfg)
    docs: list[dict[str, Any]] = []
    for part in parts:
        docs += p.process_lines(lines_of(part))
    return [*docs, *p.flush()]


def replay_with_restarts(
    records: Sequence[Record], cfg: Config, restarts: Sequence[tuple[int, int, int]]
) -> list[dict[str, Any]]:
    """The records read by processes that are killed and restarted. At each (snap, killed, resume) the
    running process checkpoints its pipeline (`Pipeline.snapshot`, as `run` does) after record `snap` (through the encoding of the durable state
    topic), reads on to record `killed` (its documents are kept: they may have reached the index) and dies;
    a new process (new parser and pipeline, as `run` builds one per partition) restores the checkpoint and
    reads from record `resume` ≤ `snap` (the records in between are read twice). Points must not go back
    before the previous resume."""
    docs: list[dict[str, Any]] = []
    p = pipeline(cfg)
    pos = 0
    for snap, killed, resume in restarts:
        docs += p.process_lines(lines_of(records[pos:snap]))
        blob = encode_state(p.snapshot())
        docs += p.process_lines(lines_of(records[snap:killed]))
        p = pipeline(cfg)
        p.restore(decode_state(blob))
        pos = resume
    docs += p.process_lines(lines_of(records[pos:]))
    return [*docs, *p.flush()]


# -- transformations and their strategies -----------------------------------------------------------------
@st.composite
def inputs(draw: st.DrawFn) -> Input:
    """A golden input, or a window of the generated corpus (long enough to hold whole sessions)."""
    if draw(st.booleans()):
        return draw(st.sampled_from(golden_inputs()))
    corpus = corpus_input()
    length = draw(st.integers(50, 600))
    start = draw(st.integers(0, len(corpus.records) - length))
    return corpus.window(start, length)


def lateness(inp: Input) -> float:
    """L: how late the stitcher promises a line may come (its grace period)."""
    return inp.config.stitch_config().grace_seconds


def clocks(records: Sequence[Record]) -> list[float]:
    """Each record's appliance clock as the stitcher sees it: the newest stamp of that appliance so far."""
    wm: dict[str, float] = {}
    out = []
    for r in records:
        t = wm.get(r.appliance, float("-inf"))
        if r.ts is not None and r.ts > t:
            t = wm[r.appliance] = r.ts
        out.append(t)
    return out


def latest_slot(records: Sequence[Record], i: int, window: float) -> int:
    """The last position after record i where a copy of it is still within `window` of its own clock:
    just before the first later record of the same appliance whose clock is beyond it."""
    clock = clocks(records)
    limit = clock[i] + window
    app = records[i].appliance
    for j in range(i + 1, len(records)):
        if records[j].appliance == app and clock[j] > limit:
            return j
    return len(records)


def copied_order(n: int, copies: Sequence[tuple[int, int]]) -> list[int]:
    """Which record is at each position of `n` records with a copy of record i inserted before position p,
    for each (p, i)."""
    at: dict[int, list[int]] = {}
    for pos, i in copies:
        at.setdefault(pos, []).append(i)
    out: list[int] = []
    for pos in range(n + 1):
        out += at.get(pos, ())
        if pos < n:
            out.append(pos)
    return out


def with_copies(records: Sequence[Record], copies: Sequence[tuple[int, int]]) -> list[Record]:
    """The records with a copy of record i inserted before position p, for each (p, i)."""
    return [records[i] for i in copied_order(len(records), copies)]


def joins_another_record(inp: Input, order: Sequence[int], split: bool = False) -> bool:
    """Whether a record without header, in this order of `inp`'s records, follows another record than its
    own predecessor and the parser joins it onto that one. With `split`, a join the pipeline undoes is not
    counted: onto a copy (a record already earlier in `order`) of a line the stitcher remembers
    (`remembered_by`: message and connection lines; the copy is a duplicate and the join is split again)."""
    for k in range(1, len(order)):
        i, before = order[k], order[k - 1]
        if before == i - 1 or _has_header(inp.records[i].raw):
            continue
        if len(records_of([inp.records[before].raw, inp.records[i].raw], inp.config)) != 1:
            continue
        if split and before in order[: k - 1] and _remembered(inp.records[before].raw, inp.config):
            continue
        return True
    return False


def redates_a_record_without_stamp(inp: Input, order: Sequence[int]) -> bool:
    """Whether a record without a stamp of its own meets another appliance clock in this order than in `inp`.
    Such a record is dated by its appliance's clock on arrival (`Parser._inferred`): the stamped records before
    it are all that dates it. No rule can hide a delay that moves one past it: the stream `36, U, 37, 38` is
    both itself (U follows 36) and `36, 37, U, 38` with 37 delayed by 1 s (U follows 37). Pinned by
    test_a_record_late_past_a_line_without_stamp_changes_nothing."""
    records = inp.records
    own = [r if _stamped(r.raw) else Record(r.raw, r.appliance, None) for r in records]  # its stamp is inferred
    before = clocks(own)
    after = clocks([own[i] for i in order])
    return any(before[i] != after[k] for k, i in enumerate(order) if own[i].ts is None)


@functools.lru_cache(maxsize=4096)
def _stamped(raw: str) -> bool:
    """Whether a record has a stamp of its own (read alone, by a fresh parser: no clock to date it by)."""
    return all(r.ts is not None for r in records_of([raw], _default_config()))


@functools.lru_cache(maxsize=1)
def _default_config() -> Config:
    return replay_config()


def _remembered(raw: str, cfg: Config) -> bool:
    """Whether the stitcher keeps a duplicate memory for this record's line (`remembered_by`)."""
    (ev,) = build_pipeline(cfg).parser.parse_lines([raw])
    return remembered_by(ev) is not None


@functools.lru_cache(maxsize=4096)
def _has_header(raw: str) -> bool:
    """A record the parser never joins onto the one before it (a pre-check: the parser decides)."""
    return _ENVELOPES.parse(raw, "esa") is not None or is_bare_body(raw.lstrip())


_ENVELOPES = EnvelopeParser(TimeResolver())


@st.composite
def duplications(draw: st.DrawFn) -> tuple[Input, list[tuple[int, int]]]:
    """An input and where copies of its records arrive: (before position, original), each within L; never
    where a line without header would join a copy the stitcher cannot recognise as one (a system, DCID,
    DHAP or ICID 0 line: it keeps no duplicate memory for them, and the join stays). A copy that may land
    right before a record without header does so half of the time (few inputs have one: found otherwise
    once in hundreds of examples)."""
    inp = draw(inputs())
    n = len(inp.records)
    originals = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(12, n)))
    bare = [p for p in range(1, n) if not _has_header(inp.records[p].raw)]
    copies = []
    for i in originals:
        last = latest_slot(inp.records, i, lateness(inp))
        near = [p for p in bare if i < p <= last]
        pos = draw(st.sampled_from(near)) if near and draw(st.booleans()) else draw(st.integers(i + 1, last))
        copies.append((pos, i))
    assume(not joins_another_record(inp, copied_order(n, copies), split=True))
    return inp, copies


def with_moves(records: Sequence[Record], moves: Sequence[tuple[int, int]]) -> list[Record]:
    """The records with, for each (i, j) in turn, the record at position i moved to position j, past
    records of other appliances only (a move that would pass one of its own appliance stops there)."""
    out = list(records)
    for i, j in moves:
        r = out.pop(i)
        step = 1 if j > i else -1
        k = i
        while k != j:
            nxt = k if step > 0 else k - 1
            if nxt >= len(out) or nxt < 0 or out[nxt].appliance == r.appliance:
                break
            k += step
        out.insert(k, r)
    return out


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[Input, list[tuple[int, int]]]:
    """An input of several appliances and moves that merge their streams in another way."""
    inp = draw(inputs().filter(lambda i: len({r.appliance for r in i.records}) > 1))
    n = len(inp.records)
    return inp, draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=1, max_size=12))


def delayed_order(records: Sequence[Record], delays: dict[int, float]) -> list[int]:
    """The order (record indices) in which the records arrive with record i delayed by delays[i] seconds of its
    appliance's clock: after every record of its appliance whose clock is at most its own + d (ties keep the
    original order); each appliance's slots in the stream stay where they were."""
    clock = clocks(records)
    by_app: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_app.setdefault(r.appliance, []).append(i)
    out = list(range(len(records)))
    for idx in by_app.values():
        order = sorted(idx, key=lambda i: (clock[i] + delays.get(i, 0.0), i))
        for slot, i in zip(idx, order, strict=True):
            out[slot] = i
    return out


def with_delays(records: Sequence[Record], delays: dict[int, float]) -> list[Record]:
    """The records in `delayed_order`."""
    return [records[i] for i in delayed_order(records, delays)]


_LEVEL = re.compile(r"\b(?:Info|Warning|Debug|Trace|Critical|Notice|Error|Alert|Emergency):")


def swaps_relay_copies(records: Sequence[Record], order: Sequence[int]) -> bool:
    """Whether `order` puts a record after another copy of it that came through another relay (same appliance,
    second and body, another header; the input holds both, as in dedup-duplicated-lines): the copy applied
    first is the one whose text is kept, the other is a duplicate that changes nothing (item 1)."""
    seen: dict[tuple[str, float | None, str], int] = {}
    pos = {i: k for k, i in enumerate(order)}
    for i, r in enumerate(records):
        m = _LEVEL.search(r.raw)
        key = (r.appliance, r.ts, r.raw[m.start() :] if m else r.raw)
        j = seen.setdefault(key, i)
        if j != i and records[j].raw != r.raw and pos[j] > pos[i]:
            return True
    return False


def reclocks_the_very_late(records: Sequence[Record], moved: Sequence[Record], window: float) -> bool:
    """Whether a record already later than `window` in `records` (stamped more than that before its
    appliance's clock on arrival: the late-line goldens) meets another clock in `moved`. What such a line
    does depends on that clock by design (beyond the retention its session is forgotten), so delaying
    other records changes how late it is, which the grace period does not promise to hide."""
    very_late = {id(r): c for r, c in zip(records, clocks(records), strict=True) if r.ts is not None and c - r.ts > window}
    if not very_late:
        return False
    return any(id(r) in very_late and very_late[id(r)] != c for r, c in zip(moved, clocks(moved), strict=True))


@st.composite
def delays(draw: st.DrawFn) -> tuple[Input, dict[int, float]]:
    """An input and delays (0 < d ≤ L) of some of its records."""
    inp = draw(inputs())
    n = len(inp.records)
    late = st.tuples(st.integers(0, n - 1), st.floats(0.0, lateness(inp), exclude_min=True))
    return inp, dict(draw(st.lists(late, min_size=1, max_size=min(12, n))))


@st.composite
def streams(draw: st.DrawFn) -> Input:
    """An input as it is, or as a transport may deliver it (copies, appliances interleaved, late records): the
    restart and file properties hold for any stream, whatever its own documents are."""
    inp = draw(inputs())
    how = draw(st.sampled_from(["as is", "copies", "moves", "delays"]))
    n = len(inp.records)
    if how == "copies":
        change: Any = [(draw(st.integers(i + 1, n)), i) for i in draw(st.lists(st.integers(0, n - 1), max_size=8))]
        records = with_copies(inp.records, change)
    elif how == "moves":
        change = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=8))
        records = with_moves(inp.records, change)
    elif how == "delays":
        late = st.tuples(st.integers(0, n - 1), st.floats(0.0, lateness(inp), exclude_min=True))
        change = dict(draw(st.lists(late, max_size=8)))
        records = with_delays(inp.records, change)
    else:
        return inp
    return Input(f"{inp.name} {how} {change}", tuple(records), inp.config)


@st.composite
def restarts(draw: st.DrawFn, rewind: bool) -> tuple[Input, list[tuple[int, int, int]]]:
    """An input and the (snapshot, killed at, resumed from) points of the processes that read it.

    Without `rewind` each new process reads on from its snapshot; with it, possibly from an earlier record
    (those in between are read twice), no further back than L of their appliance's clock."""
    inp = draw(streams())
    n = len(inp.records)
    clock = clocks(inp.records)
    window = lateness(inp)
    out: list[tuple[int, int, int]] = []
    pos = 0
    for _ in range(draw(st.integers(1, 4))):
        if pos > n:
            break
        snap = draw(st.integers(pos, n))
        killed = draw(st.integers(snap, min(n, snap + 40)))
        resume = snap
        if rewind and snap > pos:
            # Read again from a record still within L of its appliance's clock at the snapshot.
            now = {r.appliance: c for r, c in zip(inp.records[:snap], clock, strict=False)}
            first = snap
            while first > pos and now[inp.records[first - 1].appliance] - clock[first - 1] <= window:
                first -= 1
            resume = draw(st.integers(first, snap))
        out.append((snap, killed, resume))
        pos = resume
    return inp, out



# -- explaining a difference ---------------------------------------------------------------------------------
def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: node}


def difference(want: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]], limit: int = 4) -> str:
    """A short account of how two sets of documents differ (ids only on one side, fields that differ)."""
    lines = []
    only_want = sorted(set(want) - set(got))
    only_got = sorted(set(got) - set(want))
    if only_want:
        lines.append(f"missing ids: {only_want[:limit]}")
    if only_got:
        lines.append(f"extra ids: {only_got[:limit]}")
    for i in sorted(set(want) & set(got)):
        if want[i] != got[i]:
            a, b = _flat(want[i]), _flat(got[i])
            fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in fields[:limit])
            lines.append(f"{i}: {shown}")
            if len(lines) >= limit:
                break
    return "\n".join(lines)


def assert_same(
    want_docs: Iterable[dict[str, Any]],
    got_docs: Iterable[dict[str, Any]],
    what: str,
    ignore: Sequence[str] = IGNORED_FIELDS,
    lists_in_any_order: bool = False,
    index_only: bool = False,
) -> None:
    """The final documents per id are equal (with an account of the difference when not)."""
    want = final_documents(want_docs, ignore, lists_in_any_order, index_only)
    got = final_documents(got_docs, ignore, lists_in_any_order, index_only)
    assert want == got, f"{what}:\n{difference(want, got)}"


