"""bench/fuzz.py, imported by path (bench/ is scripts, not a package) for the tests that run it."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.conftest import ROOT


def load_fuzz() -> ModuleType:
    """The bench/fuzz.py module."""
    spec = importlib.util.spec_from_file_location("esa_bench_fuzz", ROOT / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
