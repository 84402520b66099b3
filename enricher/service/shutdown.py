"""Bounded shutdown: on SIGTERM/SIGINT the loop stops reading, flushes and checkpoints for at most
`service.shutdown_timeout_seconds`, then the process exits without committing what is not safe; a second
signal exits at once. A checkpoint is made durable before its offsets are committed, so an exit at any moment
is as safe as a kill -9: the last checkpoint covers what was not written."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("esa_enricher.service")

EXIT_STOPPED_UNSAFE = 1  # stopped with documents not written: they are re-read from the last checkpoint


class Shutdown:
    """The stop requests of one run, and the watchdog that ends the process when the deadline passes."""

    def __init__(self, timeout: float, exit_now: Callable[[int], Any] = os._exit) -> None:
        self.timeout = timeout
        self.exit_now = exit_now  # how a second signal or an overdue shutdown ends the process
        self.requested = False
        self._now = False
        self._deadline: float | None = None
        self._watchdog: threading.Timer | None = None

    def request(self, signum: int = signal.SIGTERM, *_: Any) -> None:
        """The signal handler: the first signal starts the bounded stop, a second one exits at once."""
        if self.requested:
            self._now = True
            log.warning("second stop signal: exiting at once; the last checkpoint covers what was not written")
            _flush_logs()
            self.exit_now(128 + int(signum))
            return
        self.requested = True
        self._deadline = time.monotonic() + self.timeout
        log.info("stop requested: flushing and checkpointing for at most %g s", self.timeout)
        self._watchdog = threading.Timer(self.timeout, self._overdue)
        self._watchdog.daemon = True
        self._watchdog.start()

    def now(self) -> bool:
        """True when a stop must not wait for the sinks any more (a second signal, or the deadline passed)."""
        return self._now or (self._deadline is not None and time.monotonic() >= self._deadline)

    def done(self) -> None:
        """The run has ended by itself: the watchdog is not needed any more."""
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _overdue(self) -> None:
        """The deadline passed with the loop still busy (e.g. a request hanging on an unreachable node)."""
        log.error(
            "shutdown did not finish within %g s: exiting without a last checkpoint (the previous one covers it)",
            self.timeout,
        )
        _flush_logs()
        self.exit_now(EXIT_STOPPED_UNSAFE)


def _flush_logs() -> None:
    """Before os._exit (which skips the interpreter's clean-up): the last lines logged reach their files."""
    for handler in logging.getLogger().handlers:
        handler.flush()
