"""File and stdin source: physical lines from log files (plain or gzip), decoded leniently."""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from enricher.errors import InputError


def open_input(path: str) -> tuple[BinaryIO, int | None]:
    """Open a file (or `-` for stdin) for binary reading; returns it and its size when known."""
    if path == "-":
        return sys.stdin.buffer, None
    try:
        f: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a directory, expected a log file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    size = os.fstat(f.fileno()).st_size
    head = f.peek(2)[:2] if hasattr(f, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb"), size  # type: ignore[return-value]
    return f, size


class _CountingReader(io.RawIOBase):
    """A raw reader that reports how many bytes went through (for the progress bar), chunk by chunk."""

    def __init__(self, f: BinaryIO, on_bytes: Callable[[int], None]) -> None:
        self._f = f
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._f.read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self._on_bytes(n)
        return n


def read_lines(f: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Decoded lines; invalid UTF-8 becomes U+FFFD instead of an error (the line is still kept).

    Decoding and line splitting happen in C (TextIOWrapper), not per line in Python.
    """
    src: Any = f
    if on_bytes is not None:
        src = io.BufferedReader(_CountingReader(f, on_bytes), 1 << 20)
    return io.TextIOWrapper(src, encoding="utf-8", errors="replace", newline="\n")
