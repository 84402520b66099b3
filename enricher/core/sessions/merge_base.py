"""Building blocks of the merge rules (`merge`, `merge_delivery`): capped lists, the earliest line's value,
and rule factories that store event fields. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from enricher.core.event import Event
from enricher.core.sessions.session import Session

# Lists that a hostile or broken sender could grow without end are capped.
LIST_CAP = 50

# The rules read `ev.data` directly (`f.get`), not through `Event.get`: one method call less per field on
# the hottest path of the stitcher. Never written to.
NO_FIELDS: dict[str, Any] = {}

Merge = Callable[[Session, Event], None]


_INF = float("inf")


def keep_earliest(d: dict[str, Any], key: str, ts: float | None, value: Any) -> None:
    """Set `d[key]` to `value` unless it holds one of an earlier line (by stamp, then by value): not the first
    to arrive, as a line late within the grace period must not change the choice. The chosen line's stamp
    is kept beside it (`<key>_ts`, in no document)."""
    key_ts = key + "_ts"
    if key in d:
        kept = d.get(key_ts)
        if (_INF if ts is None else ts, value) >= (_INF if kept is None else kept, d[key]):
            return
    d[key] = value
    d[key_ts] = ts  # None (a line without a stamp) sorts last; JSON has no infinity


def append(d: dict[str, Any], key: str, value: Any) -> None:
    """Append to the list under `key`, up to LIST_CAP items (the ones beyond are counted in `<key>_dropped`)."""
    lst = d.get(key)
    if lst is None:
        d[key] = [value]
    elif len(lst) < LIST_CAP:
        lst.append(value)
    else:
        d[key + "_dropped"] = d.get(key + "_dropped", 0) + 1


def set_fields(key: str, *names: str) -> Merge:
    """A rule that stores some event fields under one key (a dict)."""

    def rule(s: Session, ev: Event) -> None:
        src = ev.data or {}
        s.data[key] = {n: src[n] for n in names if n in src}

    return rule


def append_fields(key: str, *names: str) -> Merge:
    """A rule that appends an object of some event fields to a list under one key."""

    def rule(s: Session, ev: Event) -> None:
        src = ev.data or {}
        append(s.data, key, {n: src[n] for n in names if n in src})

    return rule


def append_value(key: str, name: str) -> Merge:
    """A rule that appends one event field's value to a list of plain values (never mixed with objects)."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        v = f.get(name)
        if v is not None:
            append(s.data, key, v)

    return rule


def store_value(key: str) -> Merge:
    """A rule that stores the event's `value` field under one key."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        v = f.get("value")
        if v is not None:
            s.data[key] = v

    return rule


def flag(key: str, field: str | None = None) -> Merge:
    """A rule that stores one event field (or True) under one key: the latest line's."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        s.data[key] = f.get(field, True) if field else True

    return rule


def earliest(key: str, field: str, default: str) -> Merge:
    """Keep the value of the earliest line (see `keep_earliest`): later lines of the same kind add detail, not
    a new verdict."""

    def rule(s: Session, ev: Event) -> None:
        f = ev.data or NO_FIELDS
        keep_earliest(s.data, key, ev.ts, f.get(field) or default)

    return rule
