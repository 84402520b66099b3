"""The line key (`session.sum_key`) is durable state: the compiled copy converts the stamp with a C cast and
packs the bytes with `struct`, so it is held here to its definition (`body ^ (second * spread mod 2**32)`,
4 bytes little-endian, the second as Python's `int(ts) & 0xFFFFFFFF`) on stamps at and past the edges of
that fast path."""

from __future__ import annotations

import pytest

from enricher.core.sessions.session import sum_key

_STAMPS = (0.0, 0.5, 1.0, 1795780800.4, 4294967295.9, 4294967296.0, 4294967297.5, 1e12, -0.5, -1.0, -86400.25)


def _defined(body: int, ts: float) -> bytes:
    sec = int(ts) & 0xFFFFFFFF
    return (body ^ ((sec * 0x9E3779B1) & 0xFFFFFFFF)).to_bytes(4, "little")


@pytest.mark.parametrize("ts", _STAMPS)
@pytest.mark.parametrize("body", (0, 1, 0x12345678, 0xFFFFFFFF))
def test_sum_key_is_its_definition(body: int, ts: float) -> None:
    assert sum_key(body, ts) == _defined(body, ts)


def test_sum_key_refuses_a_stamp_that_is_no_time() -> None:
    with pytest.raises((ValueError, OverflowError)):
        sum_key(1, float("nan"))
