"""The compiled copies of the hot modules (enricher/_speedups.py) load only when built from the current source."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from enricher import _speedups
from enricher.errors import ConfigError


def test_compiled_modules_in_use_when_required() -> None:
    """CI sets ESA_COMPILED=1: every module of the list must come from its compiled copy."""
    if _speedups.mode() != "required":
        pytest.skip("ESA_COMPILED is not 1 (CI sets it); the modules may be plain Python here")
    for name in _speedups.MODULES:
        mod = importlib.import_module(name)
        assert Path(mod.__file__).parent == _speedups.COMPILED_DIR, f"{name} loaded from {mod.__file__}"


def _manifest(tmp_path: Path, sha: str) -> Path:
    (tmp_path / "enricher.documents.so").write_bytes(b"not really a module")
    (tmp_path / _speedups.MANIFEST).write_text(
        json.dumps(
            {
                "python": sys.implementation.cache_tag,
                "modules": {"enricher.documents": {"file": "enricher.documents.so", "sha256": sha}},
            }
        )
    )
    return tmp_path


def test_a_copy_built_from_the_current_source_is_found(tmp_path: Path) -> None:
    finder = _speedups.CompiledFinder(_manifest(tmp_path, _speedups.digest(_speedups.source_of("enricher.documents"))))
    spec = finder.find_spec("enricher.documents")
    assert spec is not None and spec.origin == str(tmp_path / "enricher.documents.so")
    assert finder.find_spec("enricher.cli") is None  # not in the list: the normal finders' business


def test_a_stale_copy_is_not_used(tmp_path: Path) -> None:
    finder = _speedups.CompiledFinder(_manifest(tmp_path, "0" * 64))
    with pytest.warns(UserWarning, match="edited since the build"):
        assert finder.find_spec("enricher.documents") is None
    assert finder.stale == ["enricher.documents"]
    required = _speedups.CompiledFinder(_manifest(tmp_path, "0" * 64), required=True)
    with pytest.raises(ImportError, match="edited since the build"):
        required.find_spec("enricher.documents")


def test_a_copy_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    d = _manifest(tmp_path, _speedups.digest(_speedups.source_of("enricher.documents")))
    data = json.loads((d / _speedups.MANIFEST).read_text())
    data["python"] = "cpython-27"
    (d / _speedups.MANIFEST).write_text(json.dumps(data))
    assert _speedups.CompiledFinder(d).find_spec("enricher.documents") is None


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESA_COMPILED", "sometimes")
    with pytest.raises(ConfigError, match="ESA_COMPILED"):
        _speedups.mode()
    monkeypatch.setenv("ESA_COMPILED", "0")
    assert _speedups.mode() == "off"
