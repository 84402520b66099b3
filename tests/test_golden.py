"""Golden cases: tests/golden/<case>/input.log → expected.ndjson (sorted keys), through the real CLI.

A case may add `args` (extra `replay` flags, one per line) and `expected-summary.json` (the stderr
summary). Regenerate with `pytest tests/test_golden.py --update-golden` and review the diff.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from enricher.cli import main
from enricher.parsing import native

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
    expected_path = case_dir / "expected.ndjson"
    summary_path = case_dir / "expected-summary.json"
    if update_golden:
        expected_path.write_text("".join(line + "\n" for line in lines))
        summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    expected = expected_path.read_text().splitlines()
    assert len(lines) == len(expected), f"{case}: {len(lines)} documents, expected {len(expected)}"
    for i, (got, want) in enumerate(zip(lines, expected, strict=False)):
        assert json.loads(got) == json.loads(want), f"{case}: document {i} differs"
    assert lines == expected, f"{case}: same documents but not byte-identical (key order?)"
    if summary_path.exists():
        assert summary == json.loads(summary_path.read_text())
