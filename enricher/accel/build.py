"""Build the compiled copies of the hot modules (see `enricher/accel/compiled.py`): `python -m enricher.accel.build`.

Needs Cython and a C compiler (the `speedups` extra; `make install` installs it and runs this)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from enricher.accel.compiled import COMPILED_DIR, MANIFEST, MODULES, PACKAGE_DIR, module_digest, source_of


def fresh(out_dir: Path = COMPILED_DIR) -> bool:
    """True when every module of `MODULES` has a compiled copy built from its current source."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    built = manifest.get("modules", {})
    return manifest.get("python") == sys.implementation.cache_tag and all(
        m in built and built[m]["sha256"] == module_digest(m) and (out_dir / built[m]["file"]).exists()
        for m in MODULES
    )


def build(out_dir: Path = COMPILED_DIR) -> dict[str, Any]:
    """Compile `MODULES` with Cython into `out_dir` and write the manifest (needs Cython and a C compiler).

    A module's `.pxd`, when it has one, declares its compiled layout (Cython's "pure Python mode"); the
    package root is on the include path, so one `.pxd` can cimport another's classes."""
    import shutil
    import sysconfig
    import tempfile

    from Cython.Build import cythonize
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    digests = {m: module_digest(m) for m in MODULES}  # of the sources as they are when the build starts
    with tempfile.TemporaryDirectory() as tmp:
        exts = [Extension(m, [str(source_of(m))]) for m in MODULES]
        modules = cythonize(  # type: ignore[no-untyped-call]
            exts, build_dir=tmp, quiet=True, include_path=[str(PACKAGE_DIR.parent)], language_level=3, compiler_directives={"binding": True}, nthreads=os.cpu_count() or 1
        )
        dist = Distribution({"ext_modules": modules})
        cmd = build_ext(dist)
        cmd.build_lib = os.path.join(tmp, "lib")
        cmd.build_temp = os.path.join(tmp, "tmp")
        cmd.parallel = os.cpu_count() or 1
        cmd.ensure_finalized()
        cmd.run()
        manifest: dict[str, Any] = {"python": sys.implementation.cache_tag, "modules": {}}
        for m in MODULES:
            name = m + suffix
            shutil.copyfile(os.path.join(cmd.build_lib, *m.split(".")) + suffix, out_dir / name)
            manifest["modules"][m] = {"file": name, "sha256": digests[m]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


if __name__ == "__main__":  # python -m enricher.accel.build [--force]
    if "--force" not in sys.argv[1:] and fresh():
        print(f"compiled modules in {COMPILED_DIR} are up to date")
    else:
        made = build()
        print(f"compiled {len(made['modules'])} modules into {COMPILED_DIR}")
