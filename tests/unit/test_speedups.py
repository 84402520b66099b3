"""The compiled copies of the hot modules (enricher/accel/compiled.py) load only when built from the current source."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from enricher.accel import compiled as _speedups
from enricher.errors import ConfigError


def test_compiled_modules_in_use_when_required() -> None:
    """CI sets ESA_COMPILED=1: every module of the list must come from its compiled copy."""
    if _speedups.mode() != "required":
        pytest.skip("ESA_COMPILED is not 1 (CI sets it); the modules may be plain Python here")
    for name in _speedups.MODULES:
        mod = importlib.import_module(name)
        assert Path(mod.__file__).parent == _speedups.COMPILED_DIR, f"{name} loaded from {mod.__file__}"


def _manifest(tmp_path: Path, sha: str) -> Path:
    (tmp_path / "enricher.core.documents.so").write_bytes(b"not really a module")
    (tmp_path / _speedups.MANIFEST).write_text(
        json.dumps(
            {
                "python": sys.implementation.cache_tag,
                "modules": {"enricher.core.documents": {"file": "enricher.core.documents.so", "sha256": sha}},
            }
        )
    )
    return tmp_path


def test_a_copy_built_from_the_current_source_is_found(tmp_path: Path) -> None:
    finder = _speedups.CompiledFinder(_manifest(tmp_path, _speedups.module_digest("enricher.core.documents")))
    spec = finder.find_spec("enricher.core.documents")
    assert spec is not None and spec.origin == str(tmp_path / "enricher.core.documents.so")
    assert finder.find_spec("enricher.cli") is None  # not in the list: the normal finders' business


def test_a_stale_copy_is_not_used(tmp_path: Path) -> None:
    finder = _speedups.CompiledFinder(_manifest(tmp_path, "0" * 64))
    with pytest.warns(UserWarning, match="edited since the build"):
        assert finder.find_spec("enricher.core.documents") is None
    assert finder.stale == ["enricher.core.documents"]
    required = _speedups.CompiledFinder(_manifest(tmp_path, "0" * 64), required=True)
    with pytest.raises(ImportError, match="edited since the build"):
        required.find_spec("enricher.core.documents")


def test_a_copy_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    d = _manifest(tmp_path, _speedups.module_digest("enricher.core.documents"))
    data = json.loads((d / _speedups.MANIFEST).read_text())
    data["python"] = "cpython-27"
    (d / _speedups.MANIFEST).write_text(json.dumps(data))
    assert _speedups.CompiledFinder(d).find_spec("enricher.core.documents") is None


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESA_COMPILED", "sometimes")
    with pytest.raises(ConfigError, match="ESA_COMPILED"):
        _speedups.mode()
    monkeypatch.setenv("ESA_COMPILED", "0")
    assert _speedups.mode() == "off"


def _package(root: Path) -> Path:
    """A package `enricher` with a cdef class in `a` (a.py + a.pxd) that `b` cimports (b.pxd)."""
    pkg = root / "enricher"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("class A:\n    __slots__ = ('x',)\n")
    (pkg / "a.pxd").write_text("cdef class A:\n    cdef public object x\n")
    (pkg / "b.py").write_text("from enricher.a import A\n")
    (pkg / "b.pxd").write_text("cimport cython\n\nfrom enricher.a cimport A\n")
    (pkg / "c.py").write_text("X = 1\n")
    return pkg


def test_a_digest_covers_the_pxd_and_what_it_cimports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy built against an older layout of a cimported class must not load: editing a.py or a.pxd makes
    b's compiled copy stale too (its code reads A's fields at fixed offsets)."""
    pkg = _package(tmp_path)
    monkeypatch.setattr(_speedups, "PACKAGE_DIR", pkg)
    assert _speedups.depends_on("enricher.b") == ["enricher.b", "enricher.a"]
    assert _speedups.depends_on("enricher.c") == ["enricher.c"]
    before = {m: _speedups.module_digest(m) for m in ("enricher.a", "enricher.b", "enricher.c")}
    for path, text in ((pkg / "a.pxd", "cdef class A:\n    cdef public long x\n"), (pkg / "a.py", "class A: pass\n")):
        saved = path.read_text()
        path.write_text(text)
        assert _speedups.module_digest("enricher.a") != before["enricher.a"]
        assert _speedups.module_digest("enricher.b") != before["enricher.b"]
        assert _speedups.module_digest("enricher.c") == before["enricher.c"]
        path.write_text(saved)
    (pkg / "b.pxd").write_text("from enricher.a cimport A\ncdef int y\n")
    assert _speedups.module_digest("enricher.a") == before["enricher.a"]
    assert _speedups.module_digest("enricher.b") != before["enricher.b"]
    (pkg / "c.pxd").write_text("cdef int y\n")  # a .pxd added later counts too
    assert _speedups.module_digest("enricher.c") != before["enricher.c"]


def test_a_copy_built_against_an_older_pxd_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _package(tmp_path)
    monkeypatch.setattr(_speedups, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(_speedups, "MODULES", ("enricher.a", "enricher.b"))
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    modules = {}
    for m in ("enricher.a", "enricher.b"):
        (compiled / f"{m}.so").write_bytes(b"not really a module")
        modules[m] = {"file": f"{m}.so", "sha256": _speedups.module_digest(m)}
    (compiled / _speedups.MANIFEST).write_text(json.dumps({"python": sys.implementation.cache_tag, "modules": modules}))
    assert _speedups.CompiledFinder(compiled).find_spec("enricher.b") is not None
    (pkg / "a.pxd").write_text("cdef class A:\n    cdef public long x\n")
    finder = _speedups.CompiledFinder(compiled)
    with pytest.warns(UserWarning, match="edited since the build"):
        assert finder.find_spec("enricher.b") is None
        assert finder.find_spec("enricher.a") is None
    assert finder.stale == ["enricher.b", "enricher.a"]


def test_every_pxd_belongs_to_a_compiled_module() -> None:
    """A .pxd declares a compiled copy's layout: its module and everything it cimports must be compiled too
    (a compiled module cimporting a class that is plain Python at run time would fail to import)."""
    pxds = {
        ".".join(p.relative_to(_speedups.PACKAGE_DIR.parent).with_suffix("").parts)
        for p in _speedups.PACKAGE_DIR.rglob("*.pxd")
    }
    assert pxds <= set(_speedups.MODULES), sorted(pxds - set(_speedups.MODULES))
    for m in _speedups.MODULES:
        assert set(_speedups.depends_on(m)) <= set(_speedups.MODULES), m
