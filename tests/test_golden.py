"""Golden cases: tests/golden/<case>/input.log → expected.json (+ the digest of the exact NDJSON), through the real CLI.

Storage: tests/goldens.py. A case may add `args` (extra `replay` flags, one per line) and `expected-summary.json` (the stderr
summary). Regenerate with `pytest tests/test_golden.py --update-golden` and review the diff.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from enricher.accel import native
from enricher.cli import main
from tests.goldens import expected_digest, load_expected, ndjson_digest, write_expected

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.log").exists())
# Both parsers must give the goldens: the Python one (the reference) and the native core where installed
# (CI requires it, see tests/unit/test_native.py).
MODES = ["python", "native"] if native.module() is not None else ["python"]


def run_replay(case_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], dict]:
    out = tmp_path / "out.ndjson"
    extra = shlex.split((case_dir / "args").read_text()) if (case_dir / "args").exists() else []
    rc = main(["replay", str(case_dir / "input.log"), "-o", str(out), "--no-progress", *extra])
    assert rc == 0
    err = capsys.readouterr().err.strip().splitlines()
    summary = json.loads(err[-1])
    return out.read_text().splitlines(), summary


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_golden(
    case: str, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], update_golden: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESA_NATIVE", "1" if mode == "native" else "0")
    case_dir = GOLDEN / case
    lines, summary = run_replay(case_dir, tmp_path, capsys)
    summary_path = case_dir / "expected-summary.json"
    ndjson = "".join(line + "\n" for line in lines)
    if update_golden:
        write_expected(case_dir, ndjson)
        summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    expected = load_expected(case_dir)
    assert len(lines) == len(expected), f"{case}: {len(lines)} documents, expected {len(expected)}"
    for i, (got, want) in enumerate(zip(lines, expected, strict=True)):
        assert json.loads(got) == want, f"{case}: document {i} differs"
    assert ndjson_digest(ndjson) == expected_digest(case_dir), f"{case}: same documents but not byte-identical (key order?)"
    if summary_path.exists():
        assert summary == json.loads(summary_path.read_text())


def _replay_cases_elsewhere(tmp_path: Path, env: dict[str, str], prelude: str) -> None:
    """Every case in a fresh process (`prelude` runs first); the documents must be the golden ones."""
    script = prelude + (
        "import sys, shlex\n"
        "from pathlib import Path\n"
        "from enricher.cli import main\n"
        "golden, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "for case in sys.argv[3:]:\n"
        "    d = golden / case\n"
        "    extra = shlex.split((d / 'args').read_text()) if (d / 'args').exists() else []\n"
        "    assert main(['replay', str(d / 'input.log'), '-o', str(out / (case + '.ndjson')), '--no-progress', *extra]) == 0\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(GOLDEN), str(tmp_path), *CASES], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for case in CASES:
        got = (tmp_path / f"{case}.ndjson").read_text()
        assert ndjson_digest(got) == expected_digest(GOLDEN / case), f"{case}: output differs"


def test_goldens_in_pure_python(tmp_path: Path) -> None:
    """The reference: every case again in a process with neither the native core nor compiled modules."""
    prelude = (
        "import enricher.core.documents, enricher.core.parsing.parser, enricher.core.sessions.session\n"
        "assert enricher.core.documents.__file__.endswith('.py') and enricher.core.parsing.parser.Parser()._typer is None\n"
        "assert enricher.core.sessions.session.__file__.endswith('.py')\n"
    )
    _replay_cases_elsewhere(tmp_path, {**os.environ, "ESA_NATIVE": "0", "ESA_COMPILED": "0"}, prelude)


def test_goldens_with_compiled_classes_used_from_python(tmp_path: Path) -> None:
    """Session and ExpiryIndex compiled (cdef classes, session.pxd / expiry.pxd), the modules that use them
    interpreted: what runs when one of those modules was edited since the build (it is imported from its .py)."""
    from enricher.accel import compiled as _speedups

    finder = _speedups.install()
    if finder is None or "enricher.core.sessions.session" not in finder.loaded:
        pytest.skip("the compiled modules are not in use here (ESA_COMPILED=0 or not built)")
    prelude = (
        "from enricher.accel import compiled as _speedups\n"
        "_speedups.MODULES = ('enricher.core.sessions.session', 'enricher.core.sessions.expiry')\n"
        "import enricher.core.sessions.stitcher as st, enricher.core.sessions.session as se, enricher.core.documents as d\n"
        "assert st.__file__.endswith('.py') and d.__file__.endswith('.py') and not se.__file__.endswith('.py')\n"
    )
    _replay_cases_elsewhere(tmp_path, {**os.environ, "ESA_COMPILED": "auto"}, prelude)
