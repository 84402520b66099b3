"""The end-to-end mutation fuzz (bench/fuzz.py) on one million lines, in the default test run: no crash,
every document fits the index mapping, every line accounted for. Also: the generator is reproducible."""

from __future__ import annotations

from tests.fuzzlib import load_fuzz

fuzz = load_fuzz()


def test_fuzz_lines_are_reproducible_and_single_lines() -> None:
    real, corpus = fuzz.real_lines(), fuzz.corpus_lines(2000, 5)
    a = list(fuzz.Mutator(5, real, corpus).lines(20_000))
    b = list(fuzz.Mutator(5, real, corpus).lines(20_000))
    assert a == b and len(a) == 20_000
    assert not any(b"\n" in line for line in a)
    assert any(b"\x00" in line for line in a) and any(len(line) > 60 and line[:60].isascii() for line in a)
    assert list(fuzz.Mutator(6, real, corpus).lines(20_000)) != a


def test_fuzz_one_million_lines_through_replay() -> None:
    result = fuzz.run(1_000_000, seed=20261203, corpus_n=100_000, checkpoint_every=250_000)
    assert result["crashes"] == 0, result["crash"]
    assert result["misfits"] == {}, result["misfit_examples"]
    assert result["accounting_gaps"] == []
    assert result["input_lines"]["read"] == 1_000_000
    # The fuzz reaches what it is for: out-of-range numbers, unparsed lines, and still many sessions.
    assert result["unparsed_by_reason"]["number_out_of_range"] > 1000
    assert result["sessions"] > 50_000 and result["checkpoints"] >= 4
