"""NDJSON sink: one document per line, keys sorted (byte-stable output for golden files and diffs)."""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def dumps(doc: dict[str, Any]) -> bytes:
    """One document as a sorted-key JSON line."""
    return orjson.dumps(doc, option=_OPTS)


class NdjsonSink:
    """Buffers encoded lines and writes them in large chunks."""

    def __init__(self, out: BinaryIO, buffer_bytes: int = 1 << 20) -> None:
        self.out = out
        self.buffer_bytes = buffer_bytes
        self._buf: list[bytes] = []
        self._size = 0
        self.written = 0

    def write(self, doc: dict[str, Any]) -> None:
        """Queue one document."""
        b = orjson.dumps(doc, option=_OPTS)
        self._buf.append(b)
        self._size += len(b)
        self.written += 1
        if self._size >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        """Write what is queued."""
        if self._buf:
            self.out.write(b"".join(self._buf))
            self._buf.clear()
            self._size = 0
        self.out.flush()
