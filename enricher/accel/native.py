"""The optional native typing core (`native/`, Rust): loading it, and the tables it is built from.

The Python parser is the reference. The native `Typer` types only the lines it is sure to type exactly as
`Parser._fast` would (printable ASCII, the two common envelopes, a body some rule types) and declines the
rest, which the Python parser then handles. Everything it routes by is handed over as data by
`rule_tables()` (patterns, dispatch words, level and month names, declined bodies), so a shape or a routing
word is defined once, in Python; `docs/decisions/native-core.md` lists what is shared and what is not. Tests
compare both on the golden cases, the samples and random input; `dialect.py` checks every pattern against
the core's regex dialect without it.

`ESA_NATIVE=0` turns it off; `ESA_NATIVE=1` makes its absence, or a table it cannot compile, an error (CI
sets it, so a broken build cannot silently fall back); unset, it is used when installed (`make install`
builds it when cargo exists) and a table it cannot compile is a warning, the Python parser then typing
every line.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from enricher.accel.compiled import env_switch
from enricher.core.parsing import envelope, shapes, timestamps

log = logging.getLogger(__name__)


def _specs(rules: list[shapes.Rule]) -> list[tuple[str, str, int, list[tuple[str, int]]]]:
    return [(r.kind, r.pattern, r.flags, r.groups()) for r in rules]  # no pattern compiled in Python


def rule_tables() -> dict[str, Any]:
    """Everything the native `Typer` is built from, as data: the body rules of `shapes.py` keyed by their
    dispatch words, the level and month names, the fast envelopes it implements, and the declined bodies."""
    return {
        "mid": {word: _specs(rules) for word, rules in shapes._MID_RULES.items()},
        "icid_routes": {word: _specs(rules) for word, rules in shapes._ICID_ROUTES.items()},
        "icid": _specs(shapes._ICID_RULES),
        "dcid": _specs(shapes._DCID_RULES),
        # File headers are left to the parser: they do not move its clock (`Parser.clocks`).
        "other": {
            word: _specs(kept)
            for word, rules in shapes._OTHER_RULES.items()
            if (kept := [r for r in rules if r.kind not in shapes.HEADER_KINDS])
        },
        "int_fields": sorted(shapes._INT_FIELDS),
        "quoted": sorted(shapes._QUOTED),
        # `MID n <rest>` that no rule types: its kind, and the field that keeps <rest>.
        "mid_fallback": (shapes.MID_UNRECOGNIZED, shapes.DETAIL),
        # In the order of `Event.level`'s values as the core indexes them (interned once).
        "levels": list(envelope.LEVEL_NAMES),
        "months": list(timestamps.MONTHS),
        # The two envelopes the core matches by hand (a regex engine there costs more than the rest of the
        # typing): the patterns it implements, compared with its own copy when it is built, so an edit here
        # makes the core refuse the tables (auto mode: the Python parser takes over) instead of disagreeing.
        "envelopes": {"bsd": envelope.FAST_BSD_SHAPE, "native": envelope.FAST_NATIVE_SHAPE},
        # Bodies whose record the parser must see itself, by prefix (a header whose offset applies first).
        "declined_bodies": [envelope.OFFSET_HEADER],
    }


def mode() -> str:
    """`off`, `required` or `auto`, from ESA_NATIVE."""
    return env_switch("ESA_NATIVE")


_UNSET = object()
_module: Any = _UNSET


def module(want: bool | None = None) -> Any:
    """The extension module, or None when it is off or not installed (an error when required).

    `want` overrides ESA_NATIVE: False never loads it, True requires it."""
    global _module
    m = mode() if want is None else "required" if want else "off"
    if m == "off":
        return None
    if _module is _UNSET:
        try:
            import esa_enricher_native

            _module = esa_enricher_native
        except ImportError as exc:
            _module = None
            log.debug("native typing core not installed (%s); the Python parser types every line", exc)
    if _module is None and m == "required":
        raise RuntimeError("the native typing core is required (ESA_NATIVE=1) but not installed: make install builds it")
    return _module


_local = threading.local()


def make_typer(event_cls: type, limit: int, want: bool | None = None) -> Any:
    """A native Typer for a parser, or None (see `module`); shared by the parsers of one thread (a Typer
    holds no parser state, and compiling the rules costs milliseconds)."""
    m = module(want)
    if m is None:
        return None
    cache = _local.__dict__.setdefault("typers", {})
    key = (event_cls, limit)
    typer = cache.get(key)
    if typer is None:
        try:
            typer = m.Typer(event_cls, rule_tables(), limit)
        except ValueError as exc:  # a pattern its regex dialect refuses, an envelope it does not implement
            typer = exc
            if (mode() if want is None else "required") != "required":
                log.warning("the native typing core cannot be built from the rule tables (%s): the Python parser "
                            "types every line", exc)
        cache[key] = typer
    if isinstance(typer, ValueError):
        if (mode() if want is None else "required") == "required":
            raise RuntimeError(f"the native typing core is required (ESA_NATIVE=1) but refuses the rule tables: {typer}") from typer
        return None
    return typer
