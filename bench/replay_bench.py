#!/usr/bin/env python3
"""Replay throughput: the product's `replay` against syslog-ng grouping-by() on the same corpus.

    python bench/replay_bench.py                      # 1M-line corpus (generated if missing), 3 runs each
    python bench/replay_bench.py --runs 5 --corpus bench/.data/corpus.log
    python bench/replay_bench.py --product-cmd 'cat {corpus}'     # harness check with a stand-in

Both tools run N times in the same invocation, alternating which goes first.  For every run the
child's own CPU time (user + sys, from os.wait4) and peak RSS (ru_maxrss) are recorded.  The report
gives median lines per CPU-second of each tool, the ratio replay / syslog-ng, and the peak RSS, as a
table on stderr and one JSON line on stdout (also appended to --json-out if given).

Exit status: 0 all runs succeeded and syslog-ng emitted the expected number of sessions;
1 syslog-ng failed or its session count is wrong; 2 the product failed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

DEFAULT_CORPUS = os.path.join(benchlib.BENCH_DIR, ".data", "corpus.log")


def ensure_corpus(args) -> None:
    if os.path.exists(args.corpus):
        return
    cmd = [
        sys.executable,
        os.path.join(benchlib.BENCH_DIR, "gen_corpus.py"),
        "--lines",
        str(args.gen_lines),
        "--appliances",
        str(args.gen_appliances),
        "--seed",
        str(args.gen_seed),
        "--out",
        args.corpus,
    ]
    print(f"replay_bench: generating {args.corpus}: {shlex.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True)


def count_lines(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        while True:
            b = fh.read(1 << 22)
            if not b:
                return n
            n += b.count(b"\n")


def run_syslog_ng(args, workdir: str, sentinel: bytes | None, i: int) -> dict:
    out = os.path.join(workdir, f"syslog-ng-{i}.ndjson")
    if os.path.exists(out):
        os.unlink(out)
    cmd = benchlib.syslog_ng_command(args.syslog_ng, args.conf, workdir)
    env = dict(os.environ, ESA_BENCH_OUT=out)
    if args.tz:
        env["TZ"] = args.tz
    errf = os.path.join(workdir, f"syslog-ng-{i}.stderr")
    with open(errf, "wb") as err:
        res = benchlib.run_measured(
            cmd, stdin_path=args.corpus, stdin_extra=sentinel, stderr=err, env=env, timeout=args.timeout
        )
    sessions = aborted = 0
    try:
        with open(out, "rb") as fh:
            for line in fh:
                if b'"host":"' + benchlib.SENTINEL_HOST.encode() + b'"' in line:
                    continue
                sessions += 1
                if b'"abort":"Info: Message aborted' in line and b"Receiving aborted" in line:
                    aborted += 1
    except FileNotFoundError:
        res["errors"].append("no output file")
    res["sessions"] = sessions
    res["receiving_aborted"] = aborted
    if res["rc"] != 0:
        res["errors"].append(f"exit {res['rc']}: " + benchlib.read_text(errf)[-800:])
    if not args.keep:
        for p in (out,):
            if os.path.exists(p):
                os.unlink(p)
    return res


def run_product(args, workdir: str, i: int, native: str = "auto") -> dict:
    if args.product_cmd:
        cmd = [a.format(corpus=args.corpus) for a in shlex.split(args.product_cmd)]
    else:
        cmd = benchlib.product_base_cmd() + ["replay", args.corpus, "--output", "/dev/null"]
    extra = {"ESA_NATIVE": native}
    if args.tz:
        extra["TZ"] = args.tz
    env = benchlib.product_env(extra)
    errf = os.path.join(workdir, f"product-{native}-{i}.stderr")
    with open(errf, "wb") as err:
        res = benchlib.run_measured(cmd, stderr=err, env=env, timeout=args.timeout)
    text = benchlib.read_text(errf)
    res["summary"] = benchlib.last_json_line(text)
    res["cmd"] = cmd
    if res["rc"] != 0:
        res["errors"].append(f"exit {res['rc']}: " + text[-800:])
    return res


def summarize(name: str, runs: list[dict], lines: int) -> dict:
    ok = [r for r in runs if r["rc"] == 0 and not r["errors"]]
    lps = [lines / r["cpu_s"] for r in ok if r["cpu_s"] > 0]
    return {
        "tool": name,
        "runs": len(runs),
        "ok_runs": len(ok),
        "median_lines_per_cpu_s": benchlib.median(lps),
        "min_lines_per_cpu_s": min(lps) if lps else None,
        "max_lines_per_cpu_s": max(lps) if lps else None,
        "median_cpu_s": benchlib.median([r["cpu_s"] for r in ok]),
        "median_cpu_user_s": benchlib.median([r["cpu_user_s"] for r in ok]),
        "median_cpu_sys_s": benchlib.median([r["cpu_sys_s"] for r in ok]),
        "median_wall_s": benchlib.median([r["wall_s"] for r in ok]),
        "peak_rss_bytes": max((r["maxrss_bytes"] for r in ok), default=None),
        "median_peak_rss_bytes": benchlib.median([r["maxrss_bytes"] for r in ok]),
        "peak_hwm_bytes": max((r["hwm_bytes"] or 0 for r in ok), default=None) or None,
        "per_run_lines_per_cpu_s": [round(x) for x in lps],
    }


def fmt(x, spec=",.0f", none="n/a"):
    return none if x is None else format(x, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="RFC 3164 corpus (generated if missing)")
    ap.add_argument("--meta", default=None, help="sidecar of gen_corpus.py (default: next to the corpus)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gen-lines", type=int, default=1_000_000)
    ap.add_argument("--gen-appliances", type=int, default=4)
    ap.add_argument("--gen-seed", type=int, default=42)
    ap.add_argument(
        "--product-cmd",
        default=None,
        help="override the product command; {corpus} is replaced (default: esa-enricher replay "
        "CORPUS --output /dev/null, or python -m enricher ...)",
    )
    ap.add_argument("--only", choices=("syslog-ng", "product"), default=None)
    ap.add_argument(
        "--parser",
        choices=("auto", "native", "python", "both"),
        default="auto",
        help="the product's parser: the native core where installed (auto), required (native), off (python), "
        "or both side by side (rows `product` = native and `product-py` = Python only)",
    )
    ap.add_argument("--syslog-ng", default=benchlib.syslog_ng_exe())
    ap.add_argument("--conf", default=benchlib.SYSLOG_NG_CONF)
    ap.add_argument("--tz", default="UTC", help="TZ for both children (saves glibc's per-call tz checks); '' = inherit")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    ap.add_argument("--json-out", default=None, help="append the JSON result line to this file")
    ap.add_argument("--keep", action="store_true", help="keep syslog-ng outputs and stderr files")
    args = ap.parse_args(argv)

    ensure_corpus(args)
    meta_path = args.meta or ((args.corpus[:-4] if args.corpus.endswith(".log") else args.corpus) + ".meta.json")
    meta = benchlib.load_json(meta_path) if os.path.exists(meta_path) else None
    lines = meta["lines"] if meta else count_lines(args.corpus)
    expected_sng = meta["syslog_ng_expected"]["total"] if meta else None

    tools = ["syslog-ng", "product"] if args.only is None else [args.only]
    if args.parser == "both" and "product" in tools:
        tools.append("product-py")
    product_native = {"auto": "auto", "native": "1", "python": "0", "both": "1"}[args.parser]
    sentinel = None
    if "syslog-ng" in tools:
        if not os.path.exists(args.syslog_ng):
            print(
                f"replay_bench: syslog-ng not found ({args.syslog_ng}); bench/syslog-ng.sh fetches one",
                file=sys.stderr,
            )
            return 1
        sentinel = benchlib.sentinel_line(args.corpus)
        if sentinel is None:
            print("replay_bench: the corpus is not RFC 3164; syslog-ng needs --format syslog", file=sys.stderr)
            return 1

    workdir = tempfile.mkdtemp(prefix="esa-replay-bench-")
    if not args.keep:
        atexit.register(shutil.rmtree, workdir, True)  # also on errors
    results = {t: [] for t in tools}
    load_before = benchlib.loadavg()
    t_start = time.time()
    for i in range(args.runs):
        order = tools if i % 2 == 0 else list(reversed(tools))
        for tool in order:
            if tool == "syslog-ng":
                r = run_syslog_ng(args, workdir, sentinel, i)
            else:
                r = run_product(args, workdir, i, "0" if tool == "product-py" else product_native)
            results[tool].append(r)
            extra = ""
            if tool == "syslog-ng":
                extra = f" sessions={r['sessions']}" + (f" (expected {expected_sng})" if expected_sng else "")
            elif r.get("summary"):
                s = r["summary"]
                extra = f" summary lines={s.get('lines')} sessions={s.get('sessions')} unparsed={s.get('unparsed')}"
            print(
                f"  run {i + 1}/{args.runs} {tool:9s} cpu={r['cpu_s']:.2f}s (user {r['cpu_user_s']:.2f} sys "
                f"{r['cpu_sys_s']:.2f}) wall={r['wall_s']:.2f}s rss={r['maxrss_bytes'] / 2**20:.0f}MiB rc={r['rc']}"
                f"{extra}{' ERR ' + '; '.join(r['errors'])[:300] if r['errors'] else ''}",
                file=sys.stderr,
            )

    summ = {t: summarize(t, results[t], lines) for t in tools}
    status = 0
    checks = {}
    if "syslog-ng" in tools:
        counts = sorted({r["sessions"] for r in results["syslog-ng"]})
        checks["syslog_ng_sessions"] = counts
        checks["syslog_ng_sessions_expected"] = expected_sng
        checks["syslog_ng_sessions_ok"] = (expected_sng is None or counts == [expected_sng]) and summ["syslog-ng"][
            "ok_runs"
        ] == args.runs
        if not checks["syslog_ng_sessions_ok"]:
            status = 1
    if "product" in tools:
        sums = [r.get("summary") for r in results["product"]]
        last = next((s for s in reversed(sums) if s), None)
        checks["product_summary"] = last
        if meta and last:
            checks["product_lines_match"] = last.get("lines") == lines
            checks["product_sessions_vs_meta"] = {"product": last.get("sessions"), "meta_sessions": meta["sessions"]}
            # informational: the generator's expected abort_reason counts vs the product's summary
            got = last.get("aborted") or {}
            want = meta.get("abort_reason") or {}
            diff = {
                k: {"product": got.get(k, 0), "meta": want.get(k, 0)}
                for k in sorted(set(got) | set(want))
                if got.get(k, 0) != want.get(k, 0)
            }
            checks["product_abort_reasons_match_meta"] = not diff
            if diff:
                checks["product_abort_reason_diff"] = diff
        if any(summ[t]["ok_runs"] != args.runs for t in tools if t.startswith("product")) and status == 0:
            status = 2
    def ratios(product: str) -> tuple[float | None, float | None]:
        if not ("syslog-ng" in tools and product in tools):
            return None, None
        if not (summ[product]["median_lines_per_cpu_s"] and summ["syslog-ng"]["median_lines_per_cpu_s"]):
            return None, None
        pairs = [
            s["cpu_s"] / p["cpu_s"]
            for p, s in zip(results[product], results["syslog-ng"], strict=True)
            if p["rc"] == 0 and s["rc"] == 0 and not p["errors"] and not s["errors"]
        ]
        return (
            summ[product]["median_lines_per_cpu_s"] / summ["syslog-ng"]["median_lines_per_cpu_s"],
            benchlib.median(pairs),
        )

    ratio, paired = ratios("product")
    ratio_py, paired_py = ratios("product-py")

    # ---------------------------------------------------------------- report
    print("", file=sys.stderr)
    print(
        f"corpus {args.corpus}: {lines:,} lines; {args.runs} runs each, alternating order; "
        f"load avg before {load_before} after {benchlib.loadavg()}",
        file=sys.stderr,
    )
    hdr = (
        f"{'tool':10s} {'lines/CPU-s (median)':>21s} {'min..max':>21s} {'CPU s':>7s} {'wall s':>7s} "
        f"{'peak RSS MiB':>13s} {'VmHWM MiB':>10s}"
    )
    print(hdr, file=sys.stderr)
    print("-" * len(hdr), file=sys.stderr)
    for t in tools:
        s = summ[t]
        rng = f"{fmt(s['min_lines_per_cpu_s'])}..{fmt(s['max_lines_per_cpu_s'])}"
        rss = None if s["peak_rss_bytes"] is None else s["peak_rss_bytes"] / 2**20
        hwm = None if s["peak_hwm_bytes"] is None else s["peak_hwm_bytes"] / 2**20
        print(
            f"{t:10s} {fmt(s['median_lines_per_cpu_s']):>21s} {rng:>21s} {fmt(s['median_cpu_s'], '.2f'):>7s} "
            f"{fmt(s['median_wall_s'], '.2f'):>7s} {fmt(rss, '.0f'):>13s} {fmt(hwm, '.0f'):>10s}",
            file=sys.stderr,
        )
    print(
        "(peak RSS = ru_maxrss from wait4, never below this harness's own RSS; VmHWM = sampled from /proc)",
        file=sys.stderr,
    )
    if ratio is not None:
        print(
            f"ratio replay/syslog-ng (lines per CPU-second): {ratio:.3f} (median of medians); "
            f"{paired:.3f} (median of per-run pairs)",
            file=sys.stderr,
        )
    if ratio_py is not None:
        print(
            f"ratio replay with the Python parser only/syslog-ng: {ratio_py:.3f} (median of medians); "
            f"{paired_py:.3f} (median of per-run pairs)",
            file=sys.stderr,
        )
    for k, v in checks.items():
        print(f"check {k}: {v}", file=sys.stderr)

    result = {
        "bench": "replay_vs_syslog_ng",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "corpus": os.path.abspath(args.corpus),
        "lines": lines,
        "runs": args.runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "syslog_ng": benchlib.syslog_ng_version(args.syslog_ng) if "syslog-ng" in tools else None,
            "loadavg_before": load_before,
            "loadavg_after": benchlib.loadavg(),
        },
        "tools": summ,
        "ratio_replay_over_syslog_ng": ratio,
        "paired_ratio_replay_over_syslog_ng": paired,
        "parser": args.parser,
        "ratio_python_parser_over_syslog_ng": ratio_py,
        "paired_ratio_python_parser_over_syslog_ng": paired_py,
        "checks": checks,
        "product_cmd": results["product"][0]["cmd"] if "product" in tools and results["product"] else None,
        "status": status,
    }
    line = json.dumps(result, sort_keys=False)
    print(line)
    if args.json_out:
        with open(args.json_out, "a") as fh:
            fh.write(line + "\n")
    if args.keep:
        print(f"replay_bench: outputs kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
