"""Paced cyclic garbage collection for the commands that hold many objects for a while (`run`, `replay`).

Sessions, events and documents are acyclic: reference counting frees them. Python's cyclic collector still
walks every container object that lives through one of its young-generation collections, and this
pipeline keeps many alive for a while (open sessions, a poll's records, documents waiting for a bulk
request). Measured on 1M corpus lines (`gc.callbacks`), even with raised thresholds it cost 12–16 % of the
service's CPU and 6 % of replay's, to collect a few thousand objects. So while a command runs, automatic collection
is off and one full collection runs every `interval` seconds on a small background thread: reference
cycles (from libraries: exceptions, clients) are still reclaimed, within a bounded delay, at a cost of one
heap walk per interval. `interval <= 0` keeps Python's automatic collection.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paced_collection(interval: float) -> Iterator[None]:
    """Within the block: no automatic cyclic collection, a full one every `interval` seconds (≤ 0: unchanged)."""
    if interval <= 0 or not gc.isenabled():
        yield
        return
    stop = threading.Event()

    def collect() -> None:
        while not stop.wait(interval):
            gc.collect()

    gc.disable()
    thread = threading.Thread(target=collect, name="gc-pacer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        # Everything that survived the block is old by now: hand it to the oldest generation (freeze, then
        # unfreeze: two list splices) rather than let the first young collection after enable() walk all of
        # it. At the end of a replay that walk covered every session still held (open, and written ones kept
        # for late lines): 8 % of a 400k-line replay's CPU.
        gc.freeze()
        gc.unfreeze()
        gc.enable()
