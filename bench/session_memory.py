#!/usr/bin/env python3
"""Bytes per open session of the product's stitcher, measured through its CLI.

    python bench/session_memory.py                 # N = 100000
    python bench/session_memory.py --n 200000 --with-syslog-ng

Writes N message starts (Start MID, From, To, Message-ID, Subject, ready; no `Message finished`,
all within one minute of event time, one appliance) to a temp file, runs the product's `replay`
on it with limits that keep every session open until the input ends, and takes the child's peak
RSS (VmHWM sampled every 20 ms from /proc; ru_maxrss from os.wait4 is reported too, but it never
reads below the harness's own RSS, which would hide the baseline).  The same with N = 1 is the
baseline (interpreter, imports, buffers).  Result: (peak_rss(N) - peak_rss(1)) / N bytes per open
session.

`--written` measures the other store instead: bytes per *written* session kept for late lines
(docs/decisions/late-lines.md). N complete messages (each on its own connection, 8 lines with the
connection's) are replayed twice, keeping every written session (`closed_retention_seconds` a day,
`max_closed_sessions` above N) and keeping none (`closed_retention_seconds = 0`); the peak RSS difference
divided by N is the cost of one kept session (message and connection).

`--with-syslog-ng` measures the same input in bench/syslog-ng/grouping.conf (bytes per open
grouping-by context) as a reference; its contexts keep all their log messages.

The product's CLI flags live in PRODUCT_ARGS below: adjust them there if the CLI changes.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

# ----------------------------------------------------------------------------------------------
# The product's command line, after `esa-enricher` (or `python -m enricher`).  {input} is the
# generated file.  The limits must keep every session open: no cap below N, no idle expiry.
PRODUCT_ARGS = [
    "replay",
    "{input}",
    "--output",
    "/dev/null",
    "--no-progress",
    "--max-open-sessions",
    "1000000",
    "--idle-timeout",
    "86400",
]
# ----------------------------------------------------------------------------------------------

HOST = "esa1.example.net"
DOMAINS = ("gmail.com", "outlook.com", "example.org", "partner-corp.com", "mktomail.com", "zoho.com")
SUBJECTS = (
    "Invoice 4711 for November",
    "Re: Meeting tomorrow",
    "Your order has shipped",
    "Weekly status report",
    "FW: Contract draft v3",
    "Package delivery notification",
)


def write_open_sessions(path: str, n: int, seed: int = 1) -> int:
    """N messages received but never finished, spread over one minute.  Returns the line count."""
    r = random.Random(seed)
    mid0, icid0 = 24_611_400, 60_140_000
    lines = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        buf = []
        for k in range(n):
            sec = (k * 60) // n  # all within 12:00:00 .. 12:00:59
            p = f"<22>Nov 27 12:00:{sec:02d} {HOST} mail_logs: Info: "
            mid, icid = mid0 + k, icid0 + k
            dom = r.choice(DOMAINS)
            sender = f"sender{r.randrange(100000)}@{dom}"
            buf.append(
                f"{p}Start MID {mid} ICID {icid}\n"
                f"{p}MID {mid} ICID {icid} From: <{sender}>\n"
                f"{p}MID {mid} ICID {icid} RID 0 To: <user{r.randrange(4000)}@mycompany.example>\n"
                f"{p}MID {mid} Message-ID '<{r.getrandbits(64):016x}.{k}@{dom}>'\n"
                f"{p}MID {mid} Subject '{r.choice(SUBJECTS)}'\n"
                f"{p}MID {mid} ready {r.randrange(2000, 200000)} bytes from <{sender}>\n"
            )
            lines += 6
            if len(buf) >= 10000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
    return lines


def write_written_sessions(path: str, n: int, seed: int = 1) -> int:
    """N messages received, finished and their connections closed, spread over one minute."""
    r = random.Random(seed)
    mid0, icid0 = 24_611_400, 60_140_000
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        buf = []
        for k in range(n):
            sec = (k * 60) // n
            p = f"<22>Nov 27 12:00:{sec:02d} {HOST} mail_logs: Info: "
            mid, icid = mid0 + k, icid0 + k
            dom = r.choice(DOMAINS)
            sender = f"sender{r.randrange(100000)}@{dom}"
            buf.append(
                f"{p}New SMTP ICID {icid} interface Data 1 (192.0.2.1) address 198.51.100.{k % 250} "
                f"reverse dns host mx.{dom} verified yes\n"
                f"{p}Start MID {mid} ICID {icid}\n"
                f"{p}MID {mid} ICID {icid} From: <{sender}>\n"
                f"{p}MID {mid} ICID {icid} RID 0 To: <user{r.randrange(4000)}@mycompany.example>\n"
                f"{p}MID {mid} Subject '{r.choice(SUBJECTS)}'\n"
                f"{p}MID {mid} ready {r.randrange(2000, 200000)} bytes from <{sender}>\n"
                f"{p}Message finished MID {mid} done\n"
                f"{p}ICID {icid} close\n"
            )
            if len(buf) >= 10000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
    return 8 * n


def measure_written(path: str, n: int, keep: bool, timeout: float) -> dict:
    """Peak RSS of a replay that keeps every written session (`keep`) or none."""
    conf = f"{path}.{'keep' if keep else 'none'}.toml"
    with open(conf, "w") as fh:
        retention = 86400.0 if keep else 0.0
        fh.write(f"[sessions]\nclosed_retention_seconds = {retention}\nmax_closed_sessions = {n + 1}\n")
    cmd = benchlib.product_base_cmd() + ["replay", path, "-c", conf, "--output", "/dev/null", "--no-progress"]
    with open(path + ".stderr", "wb") as err:
        res = benchlib.run_measured(cmd, stderr=err, env=benchlib.product_env({"TZ": "UTC"}), timeout=timeout)
    if res["rc"] != 0:
        res["errors"].append(f"exit {res['rc']}: {benchlib.read_text(path + '.stderr')[-800:]}")
    return res


def written_main(args: argparse.Namespace, workdir: str) -> int:
    """`--written`: bytes per written session kept for late lines."""
    path = os.path.join(workdir, f"written-{args.n}.log")
    write_written_sessions(path, args.n)
    peaks = {}
    for keep in (False, True):
        runs = [measure_written(path, args.n, keep, args.timeout) for _ in range(args.repeat)]
        if any(r["rc"] != 0 or r["errors"] for r in runs):
            print(f"written sessions: FAILED {runs[-1]['errors']}", file=sys.stderr)
            return 2
        peaks[keep] = benchlib.median([r["hwm_bytes"] or r["maxrss_bytes"] for r in runs])
    per = (peaks[True] - peaks[False]) / args.n
    print(
        f"product: {per:,.0f} bytes per written session kept (peak RSS {peaks[True] / 2**20:.1f} MiB keeping "
        f"{args.n:,} minus {peaks[False] / 2**20:.1f} MiB keeping none)",
        file=sys.stderr,
    )
    line = json.dumps({"bench": "written_session_memory", "n": args.n, "bytes_per_session": per, "peaks": peaks})
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as fh:
            fh.write(line + "\n")
    return 0


def measure_product(path: str, timeout: float) -> dict:
    cmd = benchlib.product_base_cmd() + [a.format(input=path) for a in PRODUCT_ARGS]
    errf = path + ".stderr"
    with open(errf, "wb") as err:
        res = benchlib.run_measured(cmd, stderr=err, env=benchlib.product_env({"TZ": "UTC"}), timeout=timeout)
    text = benchlib.read_text(errf)
    res["summary"] = benchlib.last_json_line(text)
    res["cmd"] = cmd
    if res["rc"] != 0:
        res["errors"].append(f"exit {res['rc']}: {text[-800:]}")
    return res


def measure_syslog_ng(path: str, workdir: str, timeout: float) -> dict:
    exe = benchlib.syslog_ng_exe()
    cmd = benchlib.syslog_ng_command(exe, benchlib.SYSLOG_NG_CONF, workdir)
    env = dict(os.environ, ESA_BENCH_OUT=os.path.join(workdir, "sng.out"), TZ="UTC")
    with open(path + ".sng.stderr", "wb") as err:
        # no sentinel: the contexts stay open until syslog-ng exits at EOF
        res = benchlib.run_measured(cmd, stdin_path=path, stderr=err, env=env, timeout=timeout)
    if res["rc"] != 0:
        res["errors"].append(f"exit {res['rc']}")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="open sessions to hold")
    ap.add_argument("--repeat", type=int, default=1, help="runs per point; the median peak RSS is used")
    ap.add_argument("--with-syslog-ng", action="store_true", help="also measure syslog-ng grouping-by contexts")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json-out", default=None, help="append the JSON result line to this file")
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs")
    ap.add_argument("--written", action="store_true", help="bytes per written session kept for late lines")
    args = ap.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="esa-session-memory-")
    if not args.keep:
        atexit.register(shutil.rmtree, workdir, True)  # also on errors
    if args.written:
        return written_main(args, workdir)
    points = {}
    for n in (1, args.n):
        path = os.path.join(workdir, f"open-{n}.log")
        points[n] = {"path": path, "lines": write_open_sessions(path, n)}

    def series(fn, label):
        out = {}
        for n, pt in points.items():
            runs = [fn(pt["path"]) for _ in range(args.repeat)]
            bad = [r for r in runs if r["rc"] != 0 or r["errors"]]
            for r in runs:
                print(
                    f"  {label:9s} N={n:<8d} peak_rss={(r['hwm_bytes'] or 0) / 2**20:8.1f} MiB (VmHWM) "
                    f"{r['maxrss_bytes'] / 2**20:8.1f} MiB (ru_maxrss) cpu={r['cpu_s']:.2f}s "
                    f"rc={r['rc']}{' ERR ' + '; '.join(r['errors'])[:300] if r['errors'] else ''}",
                    file=sys.stderr,
                )
            out[n] = {
                # VmHWM: ru_maxrss can't read below this harness's own RSS (see benchlib.run_measured),
                # which would swallow the N=1 baseline
                "peak_rss_bytes": benchlib.median([r["hwm_bytes"] or r["maxrss_bytes"] for r in runs]),
                "ru_maxrss_bytes": benchlib.median([r["maxrss_bytes"] for r in runs]),
                "failed": bool(bad),
                "summary": runs[-1].get("summary"),
            }
        base, full = out[1], out[args.n]
        ok = not base["failed"] and not full["failed"]
        per = (full["peak_rss_bytes"] - base["peak_rss_bytes"]) / args.n if ok else None
        return {
            "ok": ok,
            "bytes_per_session": per,
            "peak_rss_baseline_bytes": base["peak_rss_bytes"],
            "peak_rss_n_bytes": full["peak_rss_bytes"],
            "ru_maxrss_baseline_bytes": base["ru_maxrss_bytes"],
            "ru_maxrss_n_bytes": full["ru_maxrss_bytes"],
            "summary_n": full["summary"],
        }

    result = {
        "bench": "session_memory",
        "n": args.n,
        "lines_per_session": 6,
        "product_cmd": benchlib.product_base_cmd() + PRODUCT_ARGS,
    }
    result["product"] = series(lambda p: measure_product(p, args.timeout), "product")
    if args.with_syslog_ng:
        result["syslog_ng"] = series(lambda p: measure_syslog_ng(p, workdir, args.timeout), "syslog-ng")

    for key, label in (("product", "product"), ("syslog_ng", "syslog-ng grouping-by")):
        r = result.get(key)
        if not r:
            continue
        if r["ok"]:
            print(
                f"{label}: {r['bytes_per_session']:,.0f} bytes per open session "
                f"(peak RSS {r['peak_rss_n_bytes'] / 2**20:.1f} MiB at N={args.n:,} minus "
                f"{r['peak_rss_baseline_bytes'] / 2**20:.1f} MiB at N=1)",
                file=sys.stderr,
            )
        else:
            print(f"{label}: FAILED (see above)", file=sys.stderr)
    summ = result["product"].get("summary_n") or {}
    if summ and summ.get("sessions") not in (None, args.n):
        print(f"note: the product reported {summ.get('sessions')} sessions for N={args.n}", file=sys.stderr)

    line = json.dumps(result)
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as fh:
            fh.write(line + "\n")
    if args.keep:
        print(f"session_memory: inputs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if result["product"]["ok"] else 2


if __name__ == "__main__":
    sys.exit(main())
