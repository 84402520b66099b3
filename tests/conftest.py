"""Shared pytest options and fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run of the suite (`make test`, CI): a result that does not
# depend on the draw. `HYPOTHESIS_PROFILE=explore` searches at random instead (new seeds find new
# counterexamples; `--hypothesis-seed=N` replays one); what it finds is kept as an explicit example or a test
# of its own.
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ROOT = Path(__file__).resolve().parent.parent
# The public sample lines the tests read, kept in the repository with their provenance (SOURCES.md there).
SAMPLES = ROOT / "tests" / "data" / "samples" / "esa"


def replay_in_process(path: Path, args: list[str] | tuple[str, ...] = ()) -> tuple[Any, list[dict[str, Any]]]:
    """`esa-enricher replay PATH ARGS` in process: the pipeline (its summary) and the documents."""
    from enricher.cli import _replay_overrides, build_parser, build_pipeline
    from enricher.config import load
    from enricher.edges.sources.files import open_input, read_lines

    a = build_parser().parse_args(["replay", str(path), *args])
    pipeline = build_pipeline(load(None, _replay_overrides(a)))
    f, _ = open_input(str(path))
    with f:
        docs = list(pipeline.process_lines(read_lines(f)))
    docs.extend(pipeline.flush())
    return pipeline, docs


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite tests/golden/*/expected.json (+ .ndjson.sha256) from the current output"
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
