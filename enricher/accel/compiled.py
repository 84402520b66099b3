"""Optional compiled copies of the hot modules (Cython, from the unchanged .py sources).

`make install` runs `python -m enricher.accel.build` where Cython and a C compiler are available: the
modules in `MODULES` are compiled into `enricher/_compiled/`, next to a manifest of their sources' SHA-256.
Some modules have a `.pxd` beside their `.py` (Cython's "pure Python mode": cdef classes, typed fields and
locals for the compiled copy; the `.py` stays plain Python and is what runs without it). A module's digest
covers its `.py`, its `.pxd` and those of every module its `.pxd` cimports (`module_digest`).
`install()` (called by `enricher/__init__.py`) puts a finder in front of the import system that loads a
module from its compiled copy only when that copy was built from the sources as they are now; a module
edited since the build (or one whose cimported declarations were) is imported from its .py as usual (with
one warning), so a stale build never shadows an edit. Nothing in the source tree is shadowed: without
`_compiled/` everything is plain Python.

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
import re
import sys
import warnings
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # the `enricher` package
PACKAGE = "enricher"
COMPILED_DIR = PACKAGE_DIR / "_compiled"
MANIFEST = "manifest.json"
# The per-line and per-document path of replay and of the service, measured as worth compiling
# (callgrind, replay of 100k corpus lines). Session, the expiry index and the stitcher pay only with their
# `.pxd` (cdef classes, typed fields and locals): compiled as plain classes they were slower, their
# __slots__ attributes then going through the generic attribute lookup.
MODULES = (
    "enricher.core.parsing.parser",
    "enricher.core.parsing.timestamps",
    "enricher.core.sessions.session",
    "enricher.core.sessions.expiry",
    "enricher.core.sessions.stitcher",
    "enricher.core.sessions.merge",
    "enricher.core.sessions.merge_base",
    "enricher.core.sessions.merge_delivery",
    "enricher.core.classify.rules",
    "enricher.core.classify.verdict",
    "enricher.core.classify.messages",
    "enricher.core.classify.connections",
    "enricher.core.classify.recipients",
    "enricher.core.documents",
    "enricher.core.ecs",  # the ECS copies: called for every document
    "enricher.core.pipeline",
)


def source_of(module: str) -> Path:
    return PACKAGE_DIR.parent.joinpath(*module.split(".")).with_suffix(".py")


def declarations_of(module: str) -> Path:
    """The module's Cython declarations (`.pxd` next to its `.py`; "pure Python mode"), which may not exist."""
    return source_of(module).with_suffix(".pxd")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_CIMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+cimport\b|cimport[ \t]+([\w.]+))", re.M)


def depends_on(module: str) -> list[str]:
    """The module and every module of this package whose declarations its `.pxd` cimports, transitively."""
    found = [module]
    for name in found:  # grows while it is read
        pxd = declarations_of(name)
        if pxd.exists():
            for a, b in _CIMPORT.findall(pxd.read_text()):
                dep = a or b
                if dep.startswith(PACKAGE + ".") and dep not in found:
                    found.append(dep)
    return found


def module_digest(module: str) -> str:
    """SHA-256 of what a compiled copy is built from: the module's `.py` and `.pxd` and those of every module
    it cimports (a compiled module uses the C layout of the classes it cimports, so a copy built against an
    older Session is stale as soon as session.py or session.pxd changes)."""
    h = hashlib.sha256()
    for name in [module, *sorted(depends_on(module)[1:])]:
        for path in (source_of(name), declarations_of(name)):
            h.update(f"{name}{path.suffix}:{digest(path) if path.exists() else '-'}\n".encode())
    return h.hexdigest()


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
        elif entry["sha256"] != module_digest(fullname):
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
