#!/usr/bin/env python3
"""End-to-end mutation fuzz of `replay`: hostile lines never stop the pipeline, every document fits the
index mapping, and every input line is accounted for.

    python bench/fuzz.py --lines 1000000 --seed 1            # in process, through the replay code path
    python bench/fuzz.py --lines 100000 --seed 1 --write fuzz.log   # only write the lines (for `produce`)

Input: real lines (tests/data/samples/esa, samples/demo-mail_logs.log, tests/golden inputs) and a corpus from
bench/gen_corpus.py, walked in order (so most sessions stay whole) with about one line in three mutated:
cut, two lines spliced, words reordered, numbers replaced by huge ones (20-40 digits, negative, leading
zeros, the 64-bit edges), stamps and IPs made impossible, host names of kilobytes, non-ASCII and control
characters inserted (NUL, CR, ESC, invalid UTF-8 such as
encoded lone surrogates), lines repeated, lines glued, a rare line of a few hundred KB. The same seed gives
the same bytes. Each cycle through the corpus is stamped a month later, so its appliances' clocks move on.

The lines are streamed (generated while read) through the same code as `esa-enricher replay` (lenient
UTF-8 decoding, parser, stitcher, documents, the NDJSON encoder); each document is also encoded as the
Elasticsearch sink does and checked against the strict mapping (`es_assets.misfits`); the stitcher's state
goes through a checkpoint encode/decode/restore every `--checkpoint-every` lines. Memory stays bounded by the
stitcher's own caps. One JSON summary on stdout; exit status 1 on any crash, misfit or accounting gap.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import random
import re
import resource
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from enricher.accel.gcpace import paced_collection  # noqa: E402
from enricher.cli import _replay_overrides, build_parser, build_pipeline  # noqa: E402
from enricher.config import load  # noqa: E402
from enricher.core.sessions.state import decode_state, encode_state  # noqa: E402
from enricher.core.sessions.stitcher import Stitcher  # noqa: E402
from enricher.edges.sinks.elasticsearch import assets as es_assets  # noqa: E402
from enricher.edges.sinks.ndjson import dumps as ndjson_dumps  # noqa: E402
from enricher.edges.sources.files import read_lines  # noqa: E402

REFERENCE_TIME = "2026-11-28T00:00:00Z"  # pinned: year-less stamps infer the same year on every run
_NUMBER = re.compile(rb"\d+")
_HOST = re.compile(rb"(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ([^\s:]+) ")
_IP = re.compile(rb"\d{1,3}(?:\.\d{1,3}){3}")
_INSERTS = (
    b"\x00", b"\r", b"\t", b"\x07", b"\x1b[31m", b"\x7f", b"\x0b\x0c", b"\xc2\x85", b"\xe2\x80\xa8",
    "é".encode(), "中文".encode(), "\U0001f4a9".encode(), "\ufffd".encode(), "\u202e".encode(),
    b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80",
)  # fmt: skip
_EDGES = (b"9223372036854775807", b"9223372036854775808", b"18446744073709551615", b"18446744073709551616")
_MONTHS = tuple(m.encode() for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
_NOT_IPS = (b"999.999.999.999", b"1.2.3", b"::zz", b"localhost", b"", b"1.2.3.4.5")


def real_lines() -> list[bytes]:
    """The public sample lines, the demo and the golden inputs, as bytes (invalid UTF-8 kept)."""
    paths = [
        *sorted((ROOT / "tests" / "data" / "samples" / "esa").glob("*.log")),
        *sorted((ROOT / "tests" / "data" / "samples" / "esa").glob("*.s")),
        ROOT / "samples" / "demo-mail_logs.log",
        *sorted((ROOT / "tests" / "golden").glob("*/input.log")),
    ]
    return [line for p in paths for line in p.read_bytes().split(b"\n") if line.strip()]


def corpus_lines(n: int, seed: int) -> list[bytes]:
    """`n` lines of bench/gen_corpus.py (syslog, 4 appliances), spread over days so idle sessions expire."""
    spec = importlib.util.spec_from_file_location("gen_corpus", ROOT / "bench" / "gen_corpus.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus.log"
        argv = ["--lines", str(max(n, 1000)), "--seed", str(seed), "--out", str(out), "--conn-rate", "0.2"]
        stderr, sys.stderr = sys.stderr, io.StringIO()  # its one-line report is not ours
        try:
            gen.main(argv)
        finally:
            sys.stderr = stderr
        return out.read_bytes().splitlines()


class Mutator:
    """Seeded mutations of byte lines; `lines(n)` streams `n` physical lines (no newline inside any)."""

    def __init__(self, seed: int, real: list[bytes], corpus: list[bytes], rate: float = 0.35) -> None:
        self.r = random.Random(seed)
        self.real = real
        self.corpus = corpus
        self.rate = rate
        self.counts: Counter[str] = Counter()
        self._long_hosts = [
            (self.r.choice((b"h", "é".encode(), b"\xff")) * self.r.randrange(200, 2000))[:2000] + b"%d" % i for i in range(32)
        ]
        self._ops = (
            self.cut, self.splice, self.reorder, self.huge_number, self.insert, self.insert, self.bad_ip,
            self.bad_date, self.repeat, self.glue, self.long_host,
        )  # fmt: skip

    def lines(self, n: int) -> Iterator[bytes]:
        """`n` lines: the corpus in order (renamed appliances per cycle), real lines mixed in, a share mutated."""
        r, corpus = self.r, self.corpus
        made = i = cycle = 0
        while made < n:
            if i == len(corpus):
                i, cycle = 0, cycle + 1
            if r.random() < 0.1:
                base = r.choice(self.real)
            else:
                base = corpus[i]
                i += 1
                if cycle:  # a month later per cycle: the previous cycle's sessions expire, memory stays flat
                    base = base.replace(b">Nov ", b">%s " % _MONTHS[(10 + cycle) % 12], 1)
            out = [base] if r.random() >= self.rate else self.mutate(base)
            for line in out:
                if made < n:
                    made += 1
                    yield line.replace(b"\n", b" ")

    def mutate(self, line: bytes) -> list[bytes]:
        """One to three mutations of one line; the result may be several lines (repeats)."""
        out = [line]
        for _ in range(1 + (self.r.random() < 0.3) + (self.r.random() < 0.1)):
            op = self.r.choice(self._ops)
            self.counts[op.__name__] += 1
            out = [y for x in out for y in op(x)]
        if self.r.random() < 0.00005:
            self.counts["huge_line"] += 1
            out[0] += b" " + b"A" * self.r.randrange(70_000, 400_000)
        return out

    def _other(self) -> bytes:
        return self.r.choice(self.real) if self.r.random() < 0.5 else self.r.choice(self.corpus)

    def cut(self, b: bytes) -> list[bytes]:
        i = self.r.randrange(len(b) + 1)
        if self.r.random() < 0.5:
            return [b[:i]]
        j = self.r.randrange(i, len(b) + 1)
        return [b[:i] + b[j:]]

    def splice(self, b: bytes) -> list[bytes]:
        o = self._other()
        return [b[: self.r.randrange(len(b) + 1)] + o[self.r.randrange(len(o) + 1) :]]

    def reorder(self, b: bytes) -> list[bytes]:
        w = b.split(b" ")
        if len(w) > 2:
            i = self.r.randrange(len(w) - 1)
            j = min(len(w), i + self.r.randrange(2, 6))
            part = w[i:j]
            self.r.shuffle(part)
            w[i:j] = part
        return [b" ".join(w)]

    def huge_number(self, b: bytes) -> list[bytes]:
        found = list(_NUMBER.finditer(b))
        if not found:
            return [b]
        m = self.r.choice(found)
        r = self.r
        pick = r.random()
        if pick < 0.5:
            new = str(r.randrange(1, 10)).encode() + bytes(r.choice(b"0123456789") for _ in range(r.randrange(19, 40)))
        elif pick < 0.65:
            new = b"-" + m.group()
        elif pick < 0.8:
            new = b"0" * r.randrange(1, 30) + m.group()
        else:
            new = r.choice(_EDGES)
        return [b[: m.start()] + new + b[m.end() :]]

    def insert(self, b: bytes) -> list[bytes]:
        i = self.r.randrange(len(b) + 1)
        return [b[:i] + self.r.choice(_INSERTS) * self.r.randrange(1, 4) + b[i:]]

    def bad_ip(self, b: bytes) -> list[bytes]:
        m = _IP.search(b)
        return [b[: m.start()] + self.r.choice(_NOT_IPS) + b[m.end() :]] if m else self.huge_number(b)

    def bad_date(self, b: bytes) -> list[bytes]:
        """A stamp's year, day or time replaced by another one of the same width (still a stamp to read)."""
        m = re.search(rb"\b(\d\d:\d\d:\d\d)( \d{4})?\b", b[:60])
        if not m:
            return [b]
        r = self.r
        if m.group(2) and r.random() < 0.6:
            return [b[: m.start(2)] + b" %04d" % r.choice((0, 1, 1969, 1970, 2261, 2262, 9999, r.randrange(10000))) + b[m.end(2) :]]
        return [b[: m.start(1)] + b"%02d:%02d:%02d" % (r.randrange(100), r.randrange(100), r.randrange(100)) + b[m.end(1) :]]

    def long_host(self, b: bytes) -> list[bytes]:
        """The syslog host (the appliance, part of document ids) replaced by one of a few words of 200-2000
        bytes. A few: every new host name costs the stitcher per-appliance state that is never freed (a
        known limit, not what this fuzz measures)."""
        m = _HOST.match(b)
        if not m:
            return self.insert(b)
        return [b[: m.start(1)] + self.r.choice(self._long_hosts) + b[m.end(1) :]]

    def repeat(self, b: bytes) -> list[bytes]:
        return [b] * self.r.randrange(2, 6)

    def glue(self, b: bytes) -> list[bytes]:
        return [b + self.r.choice((b" ", b"", b"\r", b"\t")) + self._other()]


class _Stream(io.RawIOBase):
    """A readable byte stream over a generator of lines (what `read_lines` gets from a file)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while len(self._buf) < len(b):
            chunk = b"\n".join(x for _, x in zip(range(2048), self._lines, strict=False))
            if not chunk:
                break
            self._buf += chunk + b"\n"
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _checkpoint_round_trip(st: Stitcher) -> None:
    """Snapshot, encode, decode and restore into a new stitcher, as `run` does across a restart."""
    Stitcher(st.config).restore(decode_state(encode_state(st.snapshot())))


def run(n: int, seed: int, corpus_n: int, checkpoint_every: int, max_examples: int = 5) -> dict[str, Any]:
    """Fuzz `n` lines through the replay path; the JSON-ready result (see the module docstring)."""
    t0, c0 = time.monotonic(), time.process_time()
    mut = Mutator(seed, real_lines(), corpus_lines(corpus_n, seed))
    a = build_parser().parse_args(["replay", "-", "--reference-time", REFERENCE_TIME])
    cfg = load(None, _replay_overrides(a))
    pipeline = build_pipeline(cfg)
    types = es_assets.leaf_types()
    docs = 0
    misfits: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    crash = None
    checkpoints = open_peak = 0
    next_checkpoint = checkpoint_every

    def check(doc: dict[str, Any]) -> None:
        nonlocal docs
        docs += 1
        ndjson_dumps(doc)  # the replay sink's encoder
        orjson.dumps(doc)  # the Elasticsearch sink's
        for path, value in es_assets.misfits(doc, types):
            misfits[path] += 1
            if len(examples) < max_examples:
                examples.append({"path": path, "value": repr(value)[:200], "event_id": doc["event"].get("id")})

    try:
        with paced_collection(cfg.service.gc_interval_seconds):
            for doc in pipeline.process_lines(read_lines(io.BufferedReader(_Stream(mut.lines(n)), 1 << 20))):
                check(doc)
                if checkpoint_every and pipeline.stats.lines >= next_checkpoint:
                    open_peak = max(open_peak, pipeline.stitcher.open_sessions())  # sampled here
                    _checkpoint_round_trip(pipeline.stitcher)
                    checkpoints += 1
                    next_checkpoint += checkpoint_every
            _checkpoint_round_trip(pipeline.stitcher)
            checkpoints += 1
            for doc in pipeline.flush():
                check(doc)
    except Exception:  # noqa: BLE001 - the finding itself
        crash = traceback.format_exc()
    s = pipeline.summary()
    read = s.get("input_lines", {"read": 0, "blank": 0, "joined": 0})
    gaps = []
    if sum(s["line_outcomes"].values()) != s["lines"]:
        gaps.append(f"line_outcomes sum to {sum(s['line_outcomes'].values())}, lines {s['lines']}")
    if crash is None and not read["read"] == n == s["lines"] + read["blank"] + read["joined"]:
        gaps.append(f"{n} lines generated, read {read}, records {s['lines']}")
    return {
        "lines": n,
        "seed": seed,
        "records": s["lines"],
        "input_lines": read,
        "documents": docs,
        "sessions": s["sessions"],
        "unparsed": s["unparsed"],
        "unparsed_by_reason": s["unparsed_by_reason"],
        "line_outcomes": s["line_outcomes"],
        "mutations": dict(sorted(mut.counts.items())),
        "checkpoints": checkpoints,
        "open_sessions_peak": open_peak,
        "crashes": 0 if crash is None else 1,
        "crash": crash,
        "misfits": dict(misfits),
        "misfit_examples": examples,
        "accounting_gaps": gaps,
        "seconds": round(time.monotonic() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: fuzz in process (default) or write the fuzzed lines to a file."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--corpus-lines", type=int, default=100_000, help="lines of generated corpus to mutate (cycled)")
    ap.add_argument("--checkpoint-every", type=int, default=250_000, help="checkpoint round trip every N lines (0: only at the end)")
    ap.add_argument("--write", metavar="FILE", help="write the fuzzed lines here instead of replaying them")
    a = ap.parse_args(argv)
    if a.write:
        mut = Mutator(a.seed, real_lines(), corpus_lines(a.corpus_lines, a.seed))
        with open(a.write, "wb") as f:
            for line in mut.lines(a.lines):
                f.write(line + b"\n")
        print(json.dumps({"lines": a.lines, "seed": a.seed, "file": a.write, "mutations": dict(sorted(mut.counts.items()))}))
        return 0
    result = run(a.lines, a.seed, a.corpus_lines, a.checkpoint_every)
    print(json.dumps(result, indent=1))
    return 1 if result["crashes"] or result["misfits"] or result["accounting_gaps"] else 0


if __name__ == "__main__":
    sys.exit(main())
