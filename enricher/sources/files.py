"""File and stdin source: physical lines from log files (plain or gzip), decoded leniently."""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

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


def read_lines(f: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> Iterator[str]:
    """Yield decoded lines; invalid UTF-8 becomes U+FFFD instead of an error (the line is still kept)."""
    n = 0
    for bline in f:
        if on_bytes is not None:
            n += len(bline)
            if n >= 1 << 20:
                on_bytes(n)
                n = 0
        try:
            yield bline.decode("utf-8")
        except UnicodeDecodeError:
            yield bline.decode("utf-8", errors="replace")
    if on_bytes is not None and n:
        on_bytes(n)
