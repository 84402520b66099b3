"""The state store contract, the same assertions for every implementation (memory always; Kafka against the real
broker, see conftest.py)."""

from __future__ import annotations

import os

import orjson
import pytest

from enricher.config import load
from enricher.edges.ports import Checkpoint, StateStore
from tests.contract.conftest import StoreCase
from tests.integration.harness import REPO


def test_a_store_conforms_to_its_port(store_case: StoreCase) -> None:
    assert isinstance(store_case.store, StateStore)


def test_nothing_saved_loads_as_none(store_case: StoreCase) -> None:
    assert store_case.store.load(store_case.stream, 0) is None
    assert store_case.store.load_many(store_case.stream, [0, 1]) == {0: None, 1: None}
    assert store_case.store.load_many(store_case.stream, []) == {}


def test_what_is_saved_is_read_back_after_a_restart_and_the_latest_wins(store_case: StoreCase) -> None:
    store = store_case.store
    state = {"version": 4, "sessions": [{"mid": 1, "raw": ["é ü \u2028 \x00"]}], "seq": 7, "nested": {"a": [1.5, None]}}
    store.save(store_case.stream, 0, 1, 100, {"version": 4, "old": True})
    store.save(store_case.stream, 0, 2, 250, state)
    got = store_case.reopen().load(store_case.stream, 0)
    assert got == Checkpoint(2, 250, state)


def test_partitions_and_streams_are_kept_apart(store_case: StoreCase) -> None:
    store = store_case.store
    store.save(store_case.stream, 0, 1, 10, {"p": 0})
    store.save(store_case.stream, 1, 5, 20, {"p": 1})
    store.save(store_case.other_stream, 0, 9, 30, {"p": "other"})
    again = store_case.reopen()
    assert again.load_many(store_case.stream, [0, 1, 2]) == {
        0: Checkpoint(1, 10, {"p": 0}),
        1: Checkpoint(5, 20, {"p": 1}),
        2: None,
    }
    assert again.load(store_case.other_stream, 0) == Checkpoint(9, 30, {"p": "other"})


def test_a_state_larger_than_a_record_is_read_back_whole(store_case: StoreCase) -> None:
    state = {"blob": os.urandom(700_000).hex()}  # ~1.4 MB, ~0.8 MB compressed: more than one Kafka chunk
    store_case.store.save(store_case.stream, 0, 3, 1, state)
    got = store_case.reopen().load(store_case.stream, 0)
    assert got is not None and got.state == state


def test_a_loaded_state_is_a_copy(store_case: StoreCase) -> None:
    store_case.store.save(store_case.stream, 0, 1, 1, {"sessions": [1, 2]})
    first = store_case.store.load(store_case.stream, 0)
    assert first is not None
    first.state["sessions"].append(3)
    assert store_case.store.load(store_case.stream, 0) == Checkpoint(1, 1, {"sessions": [1, 2]})


def test_a_state_that_cannot_be_encoded_fails_and_keeps_the_previous_checkpoint(store_case: StoreCase) -> None:
    store_case.store.save(store_case.stream, 0, 1, 5, {"ok": True})
    with pytest.raises(TypeError):  # orjson.JSONEncodeError is a TypeError
        store_case.store.save(store_case.stream, 0, 2, 9, {"bad": {1, 2}})
    assert store_case.reopen().load(store_case.stream, 0) == Checkpoint(1, 5, {"ok": True})


def test_a_stitchers_snapshot_restores_into_a_pipeline_that_writes_the_same_documents(store_case: StoreCase) -> None:
    """What the service does with a store: snapshot a pipeline mid-stream, restore it elsewhere, go on."""
    from enricher.cli import build_pipeline

    cfg = load(None, {"appliance": "esa1.corp.example", "time.reference_time": "2026-12-31T00:00:00Z"})
    lines = (REPO / "samples" / "demo-mail_logs.log").read_text(encoding="utf-8").splitlines(keepends=True)
    cut = len(lines) // 2
    before = build_pipeline(cfg)
    head = list(before.process_lines(lines[:cut]))
    store_case.store.save(store_case.stream, 0, 1, cut, before.snapshot())
    loaded = store_case.reopen().load(store_case.stream, 0)
    assert loaded is not None and loaded.offset == cut
    after = build_pipeline(cfg)
    after.restore(loaded.state)
    tail = [*after.process_lines(lines[loaded.offset :]), *after.flush()]
    straight = build_pipeline(cfg)
    expected = [*straight.process_lines(lines), *straight.flush()]
    assert [orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in head + tail] == [
        orjson.dumps(d, option=orjson.OPT_SORT_KEYS) for d in expected
    ]
