"""Storage of the golden cases: tests/golden/<case>/expected.json and expected.ndjson.sha256.

The expected documents are stored pretty-printed with sorted keys (`expected.json`, a JSON array), so a
change shows as the fields it changes in a review. The product's exact NDJSON bytes (its key order and
number forms included) are pinned by `expected.ndjson.sha256`, the SHA-256 of the whole output: the golden
test compares documents first (a readable diff), then bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden"
EXPECTED = "expected.json"
DIGEST = "expected.ndjson.sha256"


def ndjson_digest(text: str) -> str:
    """SHA-256 of an NDJSON output, as stored in `expected.ndjson.sha256`."""
    return hashlib.sha256(text.encode()).hexdigest()


def load_expected(case_dir: Path) -> list[dict[str, Any]]:
    """The expected documents of a case."""
    docs: list[dict[str, Any]] = json.loads((case_dir / EXPECTED).read_text())
    return docs


def expected_digest(case_dir: Path) -> str:
    """The stored digest of the exact NDJSON output of a case."""
    return (case_dir / DIGEST).read_text().split()[0]


def write_expected(case_dir: Path, ndjson: str) -> None:
    """Store an NDJSON output as the case's expectation (pretty documents + digest of the bytes)."""
    docs = [json.loads(line) for line in ndjson.splitlines()]
    (case_dir / EXPECTED).write_text(json.dumps(docs, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    (case_dir / DIGEST).write_text(f"{ndjson_digest(ndjson)}  expected.ndjson\n")


def all_expected_documents() -> list[dict[str, Any]]:
    """Every expected document of every case, in case order."""
    return [d for case in sorted(p for p in GOLDEN.iterdir() if (p / EXPECTED).exists()) for d in load_expected(case)]


def array_paths(value: Any, path: str, out: set[str]) -> None:
    """Add to `out` the dotted path of every array in a document (arrays of objects and of values alike)."""
    if isinstance(value, dict):
        for k, v in value.items():
            array_paths(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        out.add(path)
        for item in value:
            array_paths(item, path, out)
