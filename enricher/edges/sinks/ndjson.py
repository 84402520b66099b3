"""NDJSON sink: one document per line, keys sorted (byte-stable output for golden files and diffs)."""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson

from enricher.edges.ports import KeepAlive, SinkClosed

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps(doc: dict[str, Any]) -> bytes:
    """One document as a sorted-key JSON line."""
    return orjson.dumps(doc, option=_OPTS)


class NdjsonSink:
    """Buffers encoded lines and writes them in large chunks (a `Sink`; the caller owns the file)."""

    def __init__(self, out: BinaryIO, buffer_bytes: int = 1 << 20) -> None:
        self.out = out
        self.buffer_bytes = buffer_bytes
        self._buf: list[bytes] = []
        self._size = 0
        self._closed = False
        self.written = 0

    def add(self, doc: dict[str, Any], sources: list[Any] | None = None, owner: Any = None) -> None:
        """Queue one document (`sources` and `owner` are for sinks that retry or dead-letter: not needed here)."""
        if self._closed:
            raise SinkClosed("a document was added to the NDJSON sink after close()")
        b = orjson.dumps(doc, option=_OPTS)
        self._buf.append(b)
        self._size += len(b)
        self.written += 1
        if self._size >= self.buffer_bytes:
            self.flush()

    def flush(self, keep_alive: KeepAlive | None = None, deadline: float | None = None) -> None:
        """Write what is queued (a file does not refuse writes: nothing to wait for, no deadline to miss)."""
        if self._buf:
            self.out.write(b"".join(self._buf))
            self._buf.clear()
            self._size = 0
        self.out.flush()

    def close(self) -> None:
        """Write what is queued and take no more documents (the file stays open: it is the caller's)."""
        if not self._closed:
            self.flush()
            self._closed = True
