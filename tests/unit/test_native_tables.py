"""The tables the native core is built from: every pattern in its regex dialect (checked without cargo),
and what happens when the core refuses the tables (auto mode: a warning and the Python parser; required: an
error). The tests marked `needs_native` check the same against the real core where it is installed (CI)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from enricher.accel import dialect, native
from enricher.core.event import Event
from enricher.core.parsing import shapes
from enricher.core.parsing.parser import Parser
from tests.unit.test_native import needs_native


def _patterns(tables: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(kind, pattern, flags) of every rule the core compiles."""
    specs: list[Any] = [*tables["icid"], *tables["dcid"]]
    for key in ("mid", "icid_routes", "other"):
        for rules in tables[key].values():
            specs += rules
    return [(kind, pattern, flags) for kind, pattern, flags, _groups in specs]


def test_every_pattern_the_core_compiles_is_in_its_dialect() -> None:
    patterns = _patterns(native.rule_tables())
    assert len(patterns) > 100  # every table, not an empty one
    bad = {(kind, pattern): found for kind, pattern, flags in patterns if (found := dialect.problems(pattern, flags))}
    assert not bad


def test_the_tables_carry_the_groups_and_flags_python_compiles_each_pattern_with() -> None:
    # The tables are read from the pattern text (`shapes.Rule.groups`: start-up compiles no pattern); `re`
    # is the reference for what each group's number is.
    specs: list[Any] = []
    tables = native.rule_tables()
    for key in ("mid", "icid_routes", "other"):
        for rules in tables[key].values():
            specs += rules
    specs += [*tables["icid"], *tables["dcid"]]
    for kind, pattern, flags, groups in specs:
        rx = re.compile(pattern, flags)
        assert (rx.flags, groups) == (flags, sorted(rx.groupindex.items(), key=lambda kv: kv[1])), (kind, pattern)


@pytest.mark.parametrize(
    "pattern",
    [r"(?P<a>x)(y)(?:z)(?P<b>[(\]])", r"[]()](?P<a>\()", r"[^]](?P<a>a)(?=b)(?P<c>\\)(?P<d>d)", r"\((?P<a>[\[(])"],
)
def test_group_numbers_read_from_the_text_are_those_re_gives(pattern: str) -> None:
    rx = re.compile(pattern)
    assert shapes.Rule("k", pattern).groups() == sorted(rx.groupindex.items(), key=lambda kv: kv[1])


# One example per check (dialect.REFUSED, dialect.READ_DIFFERENTLY), with what the check must say.
REFUSED = [
    (r"(?<=ICID )\d+", "look-ahead or look-behind"),
    (r"MID (?!0)\d+", "look-ahead or look-behind"),
    (r"(\d+) \1", "a backreference"),
    (r"(?P<q>'|\")(?P<v>.*)(?P=q)", "a backreference"),
    (r"(<)?\d+(?(1)>)", "a conditional group"),
    (r"(?>\d+)", "an atomic group"),
    (r"close\Z", "\\Z"),
    (r"\0", "\\0: a backreference or an octal escape"),
    (r"a\N{HYPHEN-MINUS}b", "a named character \\N{…}"),
    (r"[\b]", "\\b inside a class"),
    (r"ready(?# size)", "a comment (?#…)"),
    (r"(?x) ready", "flags re.VERBOSE beyond re.I, re.S, re.U"),
    (r"(?a:\w+)", "inline flags ((?a:): letters other than i, s, m"),
    (r"(?u)\w", "inline flags ((?u)): letters other than i, s, m"),
    (r"a{b", "an unescaped { that is not a repetition"),
    (r"\d{,3}", "{,n}"),
    (r"[a[b]", "[ inside a class (a nested class in the crate)"),
    (r"[^é]", "a non-ASCII character inside a class"),
]
READ_DIFFERENTLY = [
    (r"\d++ bytes", "a possessive repeat"),
    (r"From: \<", "\\<: a word boundary in the crate"),
    (r"[a&&b]", "&& inside a class (a set operation in the crate)"),
    (r"[[:alpha:]]", "[ inside a class (a nested class in the crate)"),
]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # Python's own warning for `[a[b]` and `&&`
@pytest.mark.parametrize(("pattern", "problem"), REFUSED + READ_DIFFERENTLY)
def test_the_dialect_check_names_each_construct(pattern: str, problem: str) -> None:
    assert problem in dialect.problems(pattern)


@pytest.mark.parametrize(
    "pattern", [r"a{2,3}", r"[]a]", r"[^]a]", r"[\[\]]", r"\{x\}", r"(?i)icid", r"(?s:.)", r"\d+\s*$", "café", r"(?P<q1>x)"]
)
def test_the_dialect_check_passes_what_both_read_alike(pattern: str) -> None:
    assert dialect.problems(pattern) == []


def test_the_dialect_check_lists_the_flags_the_core_accepts() -> None:
    assert dialect.problems("a", re.I | re.S) == []
    assert dialect.problems("a", re.M) != []


def _tables_with(pattern: str) -> dict[str, Any]:
    tables = native.rule_tables()
    rx = re.compile(pattern, re.S)
    tables["other"]["Zzz"] = [("zzz", rx.pattern, rx.flags, sorted(rx.groupindex.items(), key=lambda kv: kv[1]))]
    return tables


class _RefusingCore:
    """A core whose Typer refuses its tables, as the real one does with a pattern it cannot compile."""

    class Typer:
        def __init__(self, *_args: Any) -> None:
            raise ValueError("zzz: regex parse error: look-around is not supported")


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_module", _RefusingCore)
    monkeypatch.setattr(native._local, "typers", {}, raising=False)


def test_auto_mode_warns_and_lets_python_type_when_the_core_refuses(
    refusing: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("ESA_NATIVE", raising=False)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        parser = Parser()
        again = Parser()
    assert parser._typer is None and again._typer is None
    assert [r.getMessage() for r in caplog.records if "cannot be built" in r.getMessage()] == [
        "the native typing core cannot be built from the rule tables (zzz: regex parse error: look-around is not "
        "supported): the Python parser types every line"
    ]  # once, not per parser
    ev = parser.parse_record("Nov 27 12:00:00 esa1 mail_logs: Info: MID 7 ICID 3 From: <a@b.example>")
    assert (ev.kind, ev.mid, ev.icid) == ("mail_from", 7, 3)


def test_required_mode_is_an_error_when_the_core_refuses(refusing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESA_NATIVE", "1")
    with pytest.raises(RuntimeError, match="refuses the rule tables: zzz: regex parse error"):
        Parser()
    monkeypatch.delenv("ESA_NATIVE")
    assert Parser()._typer is None  # the same refusal, remembered, in auto mode
    with pytest.raises(RuntimeError, match="refuses the rule tables"):
        Parser(native=True)


@needs_native
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("pattern", [p for p, _ in REFUSED])
def test_the_real_core_refuses_what_the_check_says_it_refuses(pattern: str) -> None:
    m = native.module(True)
    with pytest.raises(ValueError, match="zzz"):
        m.Typer(Event, _tables_with(pattern), 4096)


@needs_native
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("pattern", [p for p, _ in READ_DIFFERENTLY] + ["café", r"Start MID (?P<mid>\d+) ICID (?P<icid>\d+)\s*$"])
def test_the_real_core_compiles_what_it_reads_differently(pattern: str) -> None:
    """These compile (so only the check catches them); a non-ASCII literal outside a class compiles and
    never matches a typed line (the core types printable ASCII only), so it is no problem."""
    native.module(True).Typer(Event, _tables_with(pattern), 4096)


@needs_native
def test_the_real_core_refuses_an_envelope_it_does_not_implement(monkeypatch: pytest.MonkeyPatch) -> None:
    """An envelope edited in Python (here: a tag of any characters) makes the core step aside, not split lines
    the old way."""
    from enricher.core.parsing import envelope

    monkeypatch.setattr(envelope, "FAST_BSD_SHAPE", envelope.FAST_BSD_SHAPE.replace(r"([^\s:\[\]]+)", r"(\S+)"))
    with pytest.raises(ValueError, match="the bsd envelope is now"):
        native.module(True).Typer(Event, native.rule_tables(), 4096)


@needs_native
def test_the_real_core_takes_its_level_names_from_the_tables() -> None:
    """Levels are data: a table without `Trace` makes the core decline trace lines (Python types them)."""
    tables = native.rule_tables()
    tables["levels"] = [lv for lv in tables["levels"] if lv != "Trace"]
    typer = native.module(True).Typer(Event, tables, 4096)
    parser = Parser(native=False)
    info = "Nov 27 12:00:00 esa1 mail_logs: Info: MID 7 queued for delivery"
    assert typer.one(parser, info, "esa").kind == "queued"
    assert typer.one(parser, info.replace("Info:", "Trace:"), "esa") is None
