#!/usr/bin/env python3
"""Check the invariants of a corpus written by gen_corpus.py against its sidecar.

    python bench/check_corpus.py bench/.data/corpus.log [--meta bench/.data/corpus.meta.json]

Checks: every line has a known envelope; time never goes backwards per appliance; every MID has
exactly one `Start MID` and one `Message finished`; every ICID and DCID exactly one `New SMTP ...`
and one `close`; MIDs start in increasing order per appliance; the counts match the sidecar.
Works on --format syslog (one file) and --format native (the files listed in the sidecar).
Exit status 0 when everything holds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys

SYSLOG = re.compile(r"^<\d+>(\w{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\S+) mail_logs: (?:Info|Warning): (.*)$")
NATIVE = re.compile(r"^\w{3} (\w{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) \d{4} (?:Info|Warning): (.*)$")
MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
}
START = re.compile(r"^Start MID (\d+) ICID (\d+)")
FINISHED = re.compile(r"^Message finished MID (\d+) (done|aborted)$")
NEW_ICID = re.compile(r"^New SMTP ICID (\d+) ")
ICID_CLOSE = re.compile(r"^ICID (\d+) close$")
NEW_DCID = re.compile(r"^New SMTP DCID (\d+) ")
DCID_CLOSE = re.compile(r"^DCID (\d+) close$")


def check(paths: list[tuple[str, str | None]], meta: dict) -> list[str]:
    problems = []
    last_t: dict = {}
    mids = collections.defaultdict(lambda: [0, 0])
    icids = collections.defaultdict(lambda: [0, 0])
    dcids = collections.defaultdict(lambda: [0, 0])
    last_mid: dict = {}
    finished = collections.Counter()
    lines = 0
    for path, fixed_host in paths:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                lines += 1
                line = line.rstrip("\n")
                if fixed_host is None:
                    m = SYSLOG.match(line)
                    host = m.group(6) if m else None
                    body = m.group(7) if m else None
                else:
                    m = NATIVE.match(line)
                    host, body = fixed_host, (m.group(6) if m else None)
                if not m:
                    problems.append(f"{path}:{n}: unknown envelope: {line[:120]}")
                    continue
                t = (MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
                if t < last_t.get(host, t):
                    problems.append(f"{path}:{n}: time goes backwards on {host}")
                last_t[host] = t
                if x := START.match(body):
                    mid = int(x.group(1))
                    mids[(host, mid)][0] += 1
                    if mid <= last_mid.get(host, -1):
                        problems.append(f"{path}:{n}: MID {mid} started after a higher MID on {host}")
                    last_mid[host] = mid
                elif x := FINISHED.match(body):
                    mids[(host, int(x.group(1)))][1] += 1
                    finished[x.group(2)] += 1
                elif x := NEW_ICID.match(body):
                    icids[(host, x.group(1))][0] += 1
                elif x := ICID_CLOSE.match(body):
                    icids[(host, x.group(1))][1] += 1
                elif x := NEW_DCID.match(body):
                    dcids[(host, x.group(1))][0] += 1
                elif x := DCID_CLOSE.match(body):
                    dcids[(host, x.group(1))][1] += 1
    for name, table in (("MID", mids), ("ICID", icids), ("DCID", dcids)):
        bad = [k for k, v in table.items() if v != [1, 1]]
        if bad:
            problems.append(f"{len(bad)} {name}s without exactly one start and one end, e.g. {bad[:3]}")
    expect = {
        "lines": (lines, meta["lines"]),
        "message_sessions": (len(mids), meta["message_sessions"]),
        "connections": (len(icids), meta["connections"]),
        "dcids": (len(dcids), meta["dcids"]),
        "finished aborted": (finished["aborted"], sum(meta["receiving_aborted"].values())),
    }
    for k, (got, want) in expect.items():
        if got != want:
            problems.append(f"{k}: corpus has {got}, sidecar says {want}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", help="the --out path given to gen_corpus.py")
    ap.add_argument("--meta", default=None)
    args = ap.parse_args(argv)
    stem = args.corpus[:-4] if args.corpus.endswith(".log") else args.corpus
    with open(args.meta or stem + ".meta.json", encoding="utf-8") as fh:
        meta = json.load(fh)
    d = os.path.dirname(os.path.abspath(args.corpus))
    if meta["format"] == "native":
        paths = [(os.path.join(d, f), h) for f, h in zip(meta["files"], meta["hosts"], strict=True)]
    else:
        paths = [(args.corpus, None)]
    problems = check(paths, meta)
    for p in problems[:50]:
        print(p, file=sys.stderr)
    print(
        f"check_corpus: {'OK' if not problems else f'{len(problems)} problem(s)'} ({meta['lines']} lines)",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
