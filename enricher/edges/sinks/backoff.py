"""Waiting between retries of a sink: capped exponential back-off with jitter, keeping the consumer alive."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): doubling from `initial` up to `cap`, with jitter
    (many consumers must not retry in step)."""
    delay = min(cap, initial * float(1 << min(attempt - 1, 16)))
    return delay * (0.5 + random.random() / 2)


def wait_alive(delay: float, keep_alive: Callable[[], None] | None, sleep: Callable[[float], None]) -> None:
    """Back off for `delay` seconds, running `keep_alive` (the consumer's pause-and-poll) at least every second."""
    end = time.monotonic() + delay
    while True:
        if keep_alive is not None:
            keep_alive()
        left = end - time.monotonic()
        if left <= 0:
            return
        sleep(min(left, 1.0))
