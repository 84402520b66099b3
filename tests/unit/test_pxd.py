"""The `.pxd` declarations of the compiled cdef classes match their `.py` definitions, both ways, read
without Cython: a field assigned in the `.py` but not declared raises AttributeError only when compiled, on
the one code path that assigns it; a declared field the `.py` no longer has is a stale layout."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PXDS = sorted(p for p in (ROOT / "enricher").rglob("*.pxd") if "cdef class" in p.read_text())

_CLASS = re.compile(r"^cdef class (\w+)\b.*:\s*$")
_FIELD = re.compile(r"^cdef (?:public |readonly )?(?:[\w.]+ )+(\w+)\s*(?:#.*)?$")
_FUNC = re.compile(r"^c?p?def [^(]*?\b(\w+)\s*\(")


def _pxd(path: Path) -> tuple[dict[str, tuple[set[str], set[str]]], set[str]]:
    """{class: (fields, methods)} and the module-level names a `.pxd` declares."""
    classes: dict[str, tuple[set[str], set[str]]] = {}
    module: set[str] = set()
    current: str | None = None
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith(("@", "cimport", "from ")):
            continue
        indented = line[0].isspace()
        text = line.strip()
        if not indented:
            current = None
            m = _CLASS.match(text)
            if m:
                current = m.group(1)
                classes[current] = (set(), set())
                continue
        f = _FUNC.match(text) if text.startswith(("cpdef ", "cdef ")) else None
        v = None if f else _FIELD.match(text)
        name = f.group(1) if f else v.group(1) if v else None
        assert name is not None, f"{path.name}: a declaration this test cannot read: {raw!r}"
        if indented:
            assert current is not None, f"{path.name}: indented outside a class: {raw!r}"
            classes[current][1 if f else 0].add(name)
        else:
            module.add(name)
    return classes, module


def _py(path: Path) -> tuple[dict[str, tuple[set[str] | None, set[str], set[str]]], set[str]]:
    """{class: (__slots__ or None, attributes assigned on self, methods)} and the module-level names."""
    tree = ast.parse(path.read_text())
    classes: dict[str, tuple[set[str] | None, set[str], set[str]]] = {}
    module: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            slots: set[str] | None = None
            methods: set[str] = set()
            for item in node.body:
                if isinstance(item, ast.Assign) and any(getattr(t, "id", "") == "__slots__" for t in item.targets):
                    slots = set(ast.literal_eval(item.value))
                elif isinstance(item, ast.FunctionDef):
                    methods.add(item.name)
            assigned = {
                n.attr
                for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                and isinstance(n.value, ast.Name) and n.value.id == "self"
            }
            classes[node.name] = (slots, assigned, methods)
        elif isinstance(node, ast.FunctionDef):
            module.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            module |= {t.id for t in targets if isinstance(t, ast.Name)}
    return classes, module


def test_the_compiled_classes_are_found() -> None:
    """The check below covers the cdef classes the doc names (a renamed `.pxd` must not silently drop out)."""
    found = {name for p in PXDS for name in _pxd(p)[0]}
    assert {"Session", "Stitcher", "ExpiryIndex"} <= found


@pytest.mark.parametrize("pxd", PXDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pxd_declares_exactly_the_fields_of_its_classes(pxd: Path) -> None:
    declared, module_decl = _pxd(pxd)
    defined, module_def = _py(pxd.with_suffix(".py"))
    for name, (fields, methods) in declared.items():
        assert name in defined, f"{pxd.name}: cdef class {name} is not defined in the .py"
        slots, assigned, py_methods = defined[name]
        if slots is not None:
            assert assigned <= slots, f"{name}: assigned outside __slots__: {sorted(assigned - slots)}"
            assigned = slots
        assert not assigned - fields, f"{name}: fields the .pxd does not declare: {sorted(assigned - fields)}"
        assert not fields - assigned, f"{name}: declared in the .pxd, unknown to the .py: {sorted(fields - assigned)}"
        assert methods <= py_methods, f"{name}: methods declared but not defined: {sorted(methods - py_methods)}"
    assert module_decl <= module_def, f"{pxd.name}: declared, not defined: {sorted(module_decl - module_def)}"


def test_the_check_sees_a_missing_and_a_stale_field(tmp_path: Path) -> None:
    """The reader above is not vacuous: a field added on one side only is reported."""
    (tmp_path / "m.pxd").write_text("cdef class C:\n    cdef public object a\n    cdef public long stale\n")
    (tmp_path / "m.py").write_text("class C:\n    def __init__(self):\n        self.a = 1\n        self.b = 2\n")
    declared, _ = _pxd(tmp_path / "m.pxd")
    defined, _ = _py(tmp_path / "m.py")
    assert declared["C"][0] == {"a", "stale"}
    assert defined["C"][1] == {"a", "b"}
