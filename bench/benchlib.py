"""Small helpers shared by bench/replay_bench.py and bench/session_memory.py (stdlib only)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
SYSLOG_NG_CONF = os.path.join(BENCH_DIR, "syslog-ng", "grouping.conf")
SENTINEL_HOST = "bench-flush"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RFC3164 = re.compile(rb"^(?:<\d{1,3}>)?([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")


def product_base_cmd() -> list[str]:
    """The product's CLI: `esa-enricher` when on PATH, else `python -m enricher`."""
    exe = shutil.which("esa-enricher")
    if exe:
        return [exe]
    return [sys.executable, "-m", "enricher"]


def product_env(extra: dict | None = None) -> dict:
    """Environment for the product: the repo on PYTHONPATH so `-m enricher` works from a checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if extra:
        env.update(extra)
    return env


def syslog_ng_exe() -> str:
    """An installed syslog-ng, else bench/syslog-ng.sh (Debian's package unpacked under bench/.data: installing
    syslog-ng-core would remove rsyslog, which the tests need)."""
    return shutil.which("syslog-ng") or os.path.join(BENCH_DIR, "syslog-ng.sh")


def syslog_ng_command(exe: str, conf: str, workdir: str) -> list[str]:
    """syslog-ng in the foreground on `conf`, its persist/pid/control files in `workdir`."""
    return [
        exe, "-F", "--no-caps", "-f", conf,
        "-R", os.path.join(workdir, "sng.persist"),
        "-p", os.path.join(workdir, "sng.pid"),
        "-c", os.path.join(workdir, "sng.ctl"),
    ]  # fmt: skip


def syslog_ng_version(exe: str = "syslog-ng") -> str | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^syslog-ng \S+ \(([^)]+)\)", out, re.M)
    return m.group(1) if m else out.splitlines()[0] if out else None


_HOST = re.compile(rb"(?:<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+) ")


def sentinel_line(corpus: str, after_s: int = 7200) -> bytes | None:
    """An RFC 3164 line dated `after_s` after the latest timestamp near the end of the corpus.

    Fed to syslog-ng after the corpus, it advances grouping-by()'s event clock past every
    timeout, so contexts that are still open are emitted before stdin ends.  None if the corpus
    does not look like RFC 3164."""
    size = os.path.getsize(corpus)
    with open(corpus, "rb") as fh:
        fh.seek(max(0, size - 262144))
        tail = fh.read().splitlines()[1:]
    best = None
    for line in tail:
        m = _RFC3164.match(line)
        if not m:
            continue
        mon = _MONTHS.index(m.group(1).decode()) + 1
        # year 2000 is a leap year: Feb 29 stays valid; only month/day/time matter here
        t = dt.datetime(2000, mon, int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
        if best is None or t > best:
            best = t
    if best is None:
        return None
    t = best + dt.timedelta(seconds=after_s)
    stamp = f"{_MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
    return f"<22>{stamp} {SENTINEL_HOST} mail_logs: Info: Message finished MID 0 done\n".encode()


def closing_lines(corpus: str, after_s: int = 7200) -> bytes:
    """One appliance-level line per appliance seen near the end of the corpus, dated `after_s` after its
    latest stamp: appended to the input, they advance each appliance's event clock past every window, so
    the product writes every session by event time (no wait for `--exit-when-idle`). They open no session
    (`CASE cache status`, a system line)."""
    size = os.path.getsize(corpus)
    with open(corpus, "rb") as fh:
        fh.seek(max(0, size - (1 << 20)))
        tail = fh.read().splitlines()[1:]
    stamp = sentinel_line(corpus, after_s)
    if stamp is None:
        return b""
    when = stamp[4:19].decode()  # the sentinel's `Mmm dd hh:mm:ss`
    hosts = sorted({m.group(1).decode() for line in tail if (m := _HOST.match(line))})
    return b"".join(
        f"<22>{when} {h} mail_logs: Info: CASE cache status: end of bench input\n".encode() for h in hosts
    )


def _feed(pipe, path: str, extra: bytes | None, errors: list):
    """Copy `path` (then `extra`) into the child's stdin pipe, with sendfile where possible."""
    fd = pipe.fileno()
    try:
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            off = 0
            try:
                while off < size:
                    n = os.sendfile(fd, src.fileno(), off, min(1 << 22, size - off))
                    if n == 0:
                        break
                    off += n
            except OSError as e:
                if e.errno not in (22, 38):  # EINVAL / ENOSYS: no sendfile to this fd
                    raise
                src.seek(off)
                shutil.copyfileobj(src, pipe, 1 << 20)
        if extra:
            pipe.write(extra)
    except BrokenPipeError:
        errors.append("child closed stdin early")
    except OSError as e:  # pragma: no cover - reported, not raised
        errors.append(f"feeding stdin failed: {e}")
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _read_hwm(pid: int) -> int | None:
    """VmHWM (peak RSS of the current address space) of `pid`, in bytes."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sample_hwm(pid: int, stop: threading.Event, out: list, interval: float):
    while not stop.is_set():
        v = _read_hwm(pid)
        if v is not None and v > out[0]:
            out[0] = v
        stop.wait(interval)


def run_measured(
    cmd: list[str],
    *,
    stdin_path: str | None = None,
    stdin_extra: bytes | None = None,
    stdout=subprocess.DEVNULL,
    stderr=None,
    env: dict | None = None,
    timeout: float | None = None,
    hwm_interval: float = 0.02,
) -> dict:
    """Run `cmd`, return its own rusage (os.wait4): CPU user/sys seconds, peak RSS, wall time.

    Two peak-RSS figures:
    - `maxrss_bytes`: ru_maxrss from wait4.  Exact for the child's lifetime, but Linux carries the
      RSS of the *parent at spawn time* into it (exec keeps the larger of the old and new address
      space's peak), so it never reads below this harness's own RSS (15-40 MiB).
    - `hwm_bytes`: VmHWM of the exec'd program, sampled every `hwm_interval` s from /proc; not
      inflated, but growth in the last interval before exit can be missed.

    With `stdin_path`, the file is streamed into the child's stdin through a pipe by a thread of
    this process (so the copying is not charged to the child)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin_path else subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        close_fds=True,
    )
    feeder = None
    errors: list[str] = []
    if stdin_path:
        feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin_path, stdin_extra, errors), daemon=True)
        feeder.start()
    hwm = [0]
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_hwm, args=(proc.pid, stop, hwm, hwm_interval), daemon=True)
    sampler.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            errors.append(f"killed after {timeout} s")
            break
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if feeder:
        feeder.join(timeout=30)
    return {
        "rc": proc.returncode,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "maxrss_bytes": ru.ru_maxrss * 1024,  # Linux reports KiB
        "hwm_bytes": hwm[0] or None,
        "wall_s": wall,
        "errors": errors,
    }


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def load_json(path: str):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def last_json_line(text: str) -> dict | None:
    """The last line of `text` that parses as a JSON object (the product's summary on stderr)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None
