"""Paced garbage collection: automatic collection is off inside the block, cycles are still reclaimed."""

from __future__ import annotations

import gc
import time
import weakref

from enricher.accel.gcpace import paced_collection


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_cycles_are_collected_by_the_pacer_not_automatically() -> None:
    assert gc.isenabled()
    with paced_collection(0.05):
        assert not gc.isenabled()
        ref = _cycle()
        deadline = time.monotonic() + 5
        while ref() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ref() is None  # reclaimed by the pacer's collection, within its interval
    assert gc.isenabled()


def test_collection_is_restored_after_an_error() -> None:
    try:
        with paced_collection(10):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_zero_keeps_automatic_collection() -> None:
    with paced_collection(0):
        assert gc.isenabled()


def test_nested_use_leaves_the_outer_pacer_in_charge() -> None:
    with paced_collection(10):
        with paced_collection(10):  # already paced: no second thread, nothing re-enabled on exit
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_survives_the_block_is_old_afterwards() -> None:
    """The survivors are not left to the young generation (whose first collection would walk all of them)."""
    with paced_collection(10):
        kept = [[] for _ in range(1000)]
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(x) in oldest for x in kept)


def test_the_console_script_leaves_the_heap_to_the_exit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`esa-enricher` (console) freezes what is alive when the command returns: the interpreter's exit-time
    collection then walks none of it (at the end of a replay, every session kept for late lines)."""
    import subprocess
    import sys
    from pathlib import Path

    log = Path(__file__).parents[1] / "golden" / "seed-sender-quit" / "input.log"
    script = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), file=sys.stderr))\n"
        "from enricher.cli import console\n"
        f"sys.argv = ['esa-enricher', 'replay', {str(log)!r}, '-o', {str(tmp_path / 'out.ndjson')!r}, '--no-progress']\n"
        "sys.exit(console())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    frozen = int(proc.stderr.rsplit("frozen ", 1)[1].split()[0])
    assert frozen > 1000  # every module, class and function object at least; 0 if nothing was frozen
    assert (tmp_path / "out.ndjson").read_text().count("\n") >= 1
