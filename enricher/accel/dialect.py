"""Which Python regex constructs the native core's regex dialect (Rust's `regex` crate) refuses or reads
differently, checked in Python, so that a machine without cargo (and the unit tests) sees it.

The core compiles every body pattern of `shapes.py` with `regex::bytes` and Unicode off (`native/src/lib.rs`,
`compile_rule`). A construct that crate refuses makes the core unbuildable for those rules (auto mode then
falls back to the Python parser, see `native.make_typer`); one it reads differently would type lines
differently. `problems()` names both kinds; `REFUSED` and `READ_DIFFERENTLY` list what is looked for.

Python's own parser (`re._parser`, the stdlib's; stable across 3.11-3.13) gives the tree for the structural
constructs; the rest is spelling, found by scanning the pattern text.
"""

from __future__ import annotations

import re
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

# Flags the core maps onto the crate's (re.I, re.S; re.U is implied for str patterns): the others refuse a rule.
CORE_FLAGS = re.IGNORECASE | re.DOTALL | re.UNICODE
# Inline flag letters with the same meaning in both dialects (global ones are also checked as flags).
_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z-]+)[:)]")

# What is looked for. Refused by the crate (the core then refuses the tables):
REFUSED = (
    "look-ahead and look-behind, positive or negative: (?=…) (?!…) (?<=…) (?<!…)",
    "backreferences: \\1 … \\99, (?P=name)",
    "conditional groups: (?(1)yes|no), (?(name)yes|no)",
    "atomic groups (?>…)",
    "\\Z (the crate spells the end of text \\z)",
    "octal escapes \\0, \\012",
    "named characters \\N{…}",
    "\\b inside a class (Python: a backspace)",
    "comments (?#…)",
    "flags other than re.I, re.S, re.U (as arguments or global (?…)), inline flag letters other than i, s, m "
    "((?u) included: Unicode classes are off in the core)",
    "an unescaped { that is not a repetition (`a{`, `{x}`), and {,n} (Python: 0 to n)",
    "a non-ASCII character inside a class (the core compiles with Unicode off)",
)
# Compiled by the crate but read differently (the core would type lines differently):
READ_DIFFERENTLY = (
    "possessive repeats *+ ++ ?+ {m,n}+ (the crate: a repeat of a repeat)",
    "\\< and \\> (the crate: word boundaries; Python: the characters < and >)",
    "an unescaped [ inside a class, and &&, --, ~~ inside a class (the crate: nested classes, POSIX classes "
    "and set operations; Python: the characters)",
)

_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")


def problems(pattern: str, flags: int = 0) -> list[str]:
    """What in `pattern` (compiled with `flags`) the core's regex dialect refuses or reads differently."""
    out: list[str] = []
    try:
        tree = sre_parse.parse(pattern, flags)
    except re.error as exc:
        return [f"not a Python pattern: {exc}"]
    bad = tree.state.flags & ~CORE_FLAGS  # the argument's and the pattern's own global `(?…)` flags
    if bad:
        out.append(f"flags {re.RegexFlag(bad)!r} beyond re.I, re.S, re.U")
    _walk(tree, out)
    _scan(pattern, out)
    return out


def _walk(tree: Any, out: list[str]) -> None:
    for op, av in tree:
        if op in (sre.ASSERT, sre.ASSERT_NOT):
            out.append("look-ahead or look-behind")
            _walk(av[1], out)
        elif op in (sre.GROUPREF, sre.GROUPREF_IGNORE, sre.GROUPREF_LOC_IGNORE, sre.GROUPREF_UNI_IGNORE):
            out.append("a backreference")
        elif op is sre.GROUPREF_EXISTS:
            out.append("a conditional group")
            _walk(av[1], out)
            if av[2] is not None:
                _walk(av[2], out)
        elif op is sre.ATOMIC_GROUP:
            out.append("an atomic group")
            _walk(av, out)
        elif op is sre.POSSESSIVE_REPEAT:
            out.append("a possessive repeat")
            _walk(av[2], out)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            _walk(av[2], out)
        elif op is sre.SUBPATTERN:
            _walk(av[3], out)
        elif op is sre.BRANCH:
            for alt in av[1]:
                _walk(alt, out)
        elif op is sre.AT and av is sre.AT_END_STRING:
            out.append("\\Z")


def _scan(p: str, out: list[str]) -> None:
    """The spellings the tree no longer shows (escapes, literal braces and brackets, comments)."""
    i, n = 0, len(p)
    in_class = False
    first = 0  # index of a class's first member (a `]` there is a literal)
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            e = p[i + 1]
            if e.isdigit():
                out.append(f"\\{e}: a backreference or an octal escape")
            elif e == "N":
                out.append("a named character \\N{…}")
            elif e in "<>":
                out.append(f"\\{e}: a word boundary in the crate")
            elif e == "b" and in_class:
                out.append("\\b inside a class")
            i += 2
            continue
        if in_class:
            if c == "]" and i > first:
                in_class = False
            elif c == "[":
                out.append("[ inside a class (a nested class in the crate)")
            elif p[i : i + 2] in ("&&", "--", "~~"):
                out.append(f"{p[i : i + 2]} inside a class (a set operation in the crate)")
                i += 1
            elif not c.isascii():
                out.append("a non-ASCII character inside a class")
        elif c == "[":
            in_class = True
            first = i + 2 if p[i + 1 : i + 2] == "^" else i + 1
        elif p.startswith("(?#", i):
            out.append("a comment (?#…)")
        elif (f := _INLINE_FLAGS.match(p, i)) and set(f.group(1)) - set("ism-"):
            out.append(f"inline flags ({f.group(0)}): letters other than i, s, m")
        elif c == "{":
            m = _REPEAT.match(p, i)
            if m is None or not (m.group(1) or m.group(3)):
                out.append("an unescaped { that is not a repetition")
            elif not m.group(1) and m.group(2):
                out.append("{,n}")
        i += 1
