"""Optional compiled copies of the hot modules (Cython, from the unchanged .py sources).

`make install` runs `python -m enricher._build_speedups` where Cython and a C compiler are available: the
modules in `MODULES` are compiled into `enricher/_compiled/`, next to a manifest of their sources' SHA-256.
`install()` (called by `enricher/__init__.py`) puts a finder in front of the import system that loads a
module from its compiled copy only when that copy was built from the source as it is now; a module edited
since the build is imported from its .py as usual (with one warning), so a stale build never shadows an
edit. Nothing in the source tree is shadowed: without `_compiled/` everything is plain Python.

`ESA_COMPILED=0` turns the compiled copies off; `ESA_COMPILED=1` makes a missing or stale copy an error
(CI). The sources are the single definition; the test suite runs on whichever form is loaded, and
tests/unit/test_speedups.py checks the loading rules.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
COMPILED_DIR = PACKAGE_DIR / "_compiled"
MANIFEST = "manifest.json"
# The per-line and per-document path of replay and of the service, measured as worth compiling
# (callgrind, replay of 100k corpus lines). Left out on purpose: the stitcher, Session and the expiry
# index, whose work is mostly attribute access on __slots__ objects — compiled, that goes through the
# generic attribute lookup and is slower than the interpreter's specialised instructions.
MODULES = (
    "enricher.parsing.parser",
    "enricher.parsing.timestamps",
    "enricher.sessions.merge",
    "enricher.classify.rules",
    "enricher.documents",
    "enricher.pipeline",
)


def source_of(module: str) -> Path:
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_switch(name: str) -> str:
    """`off`, `required` or `auto` from an optional-speedup variable (ESA_COMPILED, ESA_NATIVE)."""
    v = os.environ.get(name, "").strip().lower()
    if v in ("0", "off", "false", "no"):
        return "off"
    if v in ("1", "on", "true", "yes", "required"):
        return "required"
    if v in ("", "auto"):
        return "auto"
    from enricher.errors import ConfigError

    raise ConfigError(name, f"expected 0, 1 or auto, got {v!r}")


def mode() -> str:
    """`off`, `required` or `auto`, from ESA_COMPILED."""
    return env_switch("ESA_COMPILED")


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Finds the fresh compiled copy of a module of `MODULES`; defers to the normal finders otherwise."""

    def __init__(self, compiled_dir: Path, required: bool = False) -> None:
        self.dir = compiled_dir
        self.required = required
        try:
            manifest = json.loads((compiled_dir / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = {}
        self.built: dict[str, dict[str, str]] = manifest.get("modules", {})
        if manifest.get("python") != sys.implementation.cache_tag:
            self.built = {}  # built for another interpreter
        self.loaded: list[str] = []
        self.stale: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        entry = self.built.get(fullname)
        problem = None
        if entry is None:
            problem = "not built"
        elif entry["sha256"] != digest(source_of(fullname)):
            problem = "edited since the build"
            self.stale.append(fullname)
        else:
            so = self.dir / entry["file"]
            if so.exists():
                self.loaded.append(fullname)
                loader = importlib.machinery.ExtensionFileLoader(fullname, str(so))
                return importlib.util.spec_from_file_location(fullname, so, loader=loader)
            problem = "its compiled file is missing"
        if self.required:
            raise ImportError(f"ESA_COMPILED=1 but the compiled {fullname} is {problem}: run make install")
        if problem == "edited since the build":
            warnings.warn(
                f"{fullname}: {problem}; imported from its .py (make install rebuilds the compiled copies)",
                stacklevel=2,
            )
        return None


def install() -> CompiledFinder | None:
    """Put the finder first on sys.meta_path (once), unless ESA_COMPILED=0 or nothing was built."""
    m = mode()
    for f in sys.meta_path:
        if isinstance(f, CompiledFinder):
            return f
    if m == "off" or (m == "auto" and not (COMPILED_DIR / MANIFEST).exists()):
        return None
    finder = CompiledFinder(COMPILED_DIR, required=m == "required")
    sys.meta_path.insert(0, finder)
    return finder
