"""The parser: physical lines → records (joining wrapped lines) → typed `Event`s. Pure, never raises."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from enricher.accel import native as native_core
from enricher.core.event import Event
from enricher.core.parsing.envelope import (
    _FAST_BSD,
    _FAST_NATIVE,
    OFFSET_HEADER,
    Envelope,
    EnvelopeParser,
    is_bare_body,
)
from enricher.core.parsing.shapes import HEADER_KINDS, UNRECOGNIZED_KINDS, type_body, untyped_kind
from enricher.core.parsing.timestamps import MONTHS, TimeResolver
from enricher.core.sessions.stitcher import StitchConfig

DEFAULT_MAX_RECORD_CHARS = 65536
_CHUNK_LINES = 1024
_OFFSET = re.compile(r"Time offset from UTC: (-?\d{1,6}) seconds")
# Unstamped records remembered per appliance (see `Parser._inferred`): a bound against a flood of them.
_MAX_UNSTAMPED = 1024
# `given` of `_inferred` (a float or None otherwise): none, the record did not grow from an unstamped one.
_NO_STAMP: Any = object()


class Parser:
    """Turns raw log text into events, with per-appliance time state.

    `default_appliance` names the appliance of records whose envelope has no host (native files,
    `<PRI>Mmm dd hh:mm:ss mail_logs: …`); the Kafka source passes the message key instead. `native`:
    use the native typing core (True: required, False: never, None: as ESA_NATIVE says, see `native.py`).

    A record without a stamp of its own (no header, or a stamp that reads as no time) is dated by its
    appliance's clock (`clocks`), with one exception for copies; see `_inferred`.

    The native core reads and updates the parser through public names only: `clocks` (updated in place),
    `default_appliance`, and `times` (`TimeResolver.stamp_cache`, `bsd_stamp`, `native_stamp`). `lateness`: the window in which a
    copy of such a record is recognised as one (the stitcher's `grace_seconds`, the lateness it promises).
    """

    def __init__(
        self,
        times: TimeResolver | None = None,
        default_appliance: str = "esa",
        max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
        native: bool | None = None,
        lateness: float = StitchConfig.grace_seconds,
    ) -> None:
        self.times = times or TimeResolver()
        self.envelopes = EnvelopeParser(self.times)
        self.default_appliance = default_appliance
        self.max_record_chars = max_record_chars
        self.lateness = lateness
        # Per appliance: its clock, the NEWEST stamp read so far (not the last one: a copy or a late line does
        # not move it back; file headers do not move it, as the stitcher's watermark). Public: the native core
        # updates it in place, by the same rule (native/src/lib.rs); it declines headers and unstamped records.
        self.clocks: dict[str, float] = {}
        # Per appliance: digest of an unstamped record's text → the stamp it was given, oldest first.
        self._unstamped: dict[str, dict[str, float | None]] = {}
        self._typer = native_core.make_typer(Event, max_record_chars, native)
        # Physical lines of `parse_batches` that are not a record of their own: read = records + blank + joined.
        self.lines_read = 0
        self.blank_lines = 0
        self.joined_lines = 0  # continuations of a wrapped record
        # Joins made onto a stamped record, by id of the joined event: (joined, head alone, continuation
        # alone). The pipeline splits one again when the stitcher has applied its head already: the head was a
        # copy, not a wrap (`Pipeline.process_joined`). Only the batch being read (and the pending record) is
        # kept; lines that are not joined never touch it.
        self.loose_joins: dict[int, tuple[Event, Event, Event]] = {}

    # -- durable state ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The time state learnt from the stream so far (see `TimeResolver.state`), JSON-ready."""
        unstamped = {app: dict(seen) for app, seen in self._unstamped.items() if seen}
        return {"times": self.times.state(), "last_ts": dict(self.clocks), "unstamped": unstamped}

    def load_state(self, state: dict[str, Any]) -> None:
        """Apply a `state()` to this (fresh) parser."""
        self.times.load_state(state.get("times", {}))
        self.clocks.update(state.get("last_ts", {}))  # in place: the native core holds this dict
        for app, seen in state.get("unstamped", {}).items():
            self._unstamped[app] = dict(seen)

    # -- one record -------------------------------------------------------------------------------------
    def parse_record(self, text: str, appliance: str | None = None) -> Event:
        """Parse one complete record (a Kafka message, a syslog datagram); inner newlines are wraps."""
        if "\n" in text or "\r" in text:
            parts = [p.strip() for p in text.replace("\r", "\n").split("\n")]
            text = " ".join(p for p in parts if p)
        elif len(text) <= self.max_record_chars:
            default = appliance or self.default_appliance
            ev = self._typer.one(self, text, default) if self._typer is not None else None
            if ev is None:
                ev = self._fast(text, default)
            if ev is not None:
                return ev
        return self._make(text, self._envelope(text, appliance or self.default_appliance), appliance)

    def parse_records(self, texts: list[str], keys: list[str | None]) -> list[Event]:
        """`parse_record(text, key)` for each pair (a poll of Kafka records), one native call per run of
        records the core types; the others (and all, without the core) through `parse_record`."""
        typer = self._typer
        if typer is None:
            return [self.parse_record(t, k) for t, k in zip(texts, keys, strict=True)]
        out: list[Event] = []
        i, n = 0, len(texts)
        while i < n:
            typed, i = typer.run_records(self, texts, keys, i)
            out += typed
            if i < n:
                out.append(self.parse_record(texts[i], keys[i]))
                i += 1
        return out

    # -- a stream of physical lines ---------------------------------------------------------------------
    def parse_lines(self, lines: Iterable[str], appliance: str | None = None) -> Iterator[Event]:
        """Parse a stream of physical lines; a line without header or ESA body continues the previous one."""
        for batch in self.parse_batches(lines, appliance):
            yield from batch

    def parse_batches(self, lines: Iterable[str], appliance: str | None = None) -> Iterator[list[Event]]:
        """`parse_lines` in lists, one per chunk of input lines (cheaper to loop over than a generator)."""
        default = appliance or self.default_appliance
        # A record is complete once the next line shows it was not wrapped. Lines are read in chunks: the
        # native core, when installed, types a run of common lines in one call and stops at the first it
        # declines; that line, and every line without the native core, takes the Python path below (the
        # two common shapes through `_fast`, everything else through the general envelope parser).
        fast = self._fast
        typer = self._typer
        limit = self.max_record_chars
        pending: Event | None = None
        pending_env: Envelope | None = None  # only for records made by the general path
        it = iter(lines)
        while chunk := list(islice(it, _CHUNK_LINES)):
            if self.loose_joins:  # the batch before was handed over: keep the pending record's mark only
                self.loose_joins = {k: m for k, m in self.loose_joins.items() if m[0] is pending}
            out: list[Event] = []
            i, n = 0, len(chunk)
            self.lines_read += n
            while i < n:
                if typer is not None:
                    typed, i = typer.run(self, chunk, i, default)
                    if typed:
                        if pending is not None:
                            out.append(pending)
                        pending, pending_env = typed.pop(), None
                        out += typed
                        if i == n:
                            break
                line = chunk[i].rstrip("\r\n")
                i += 1
                if not line or line.isspace():
                    self.blank_lines += 1
                    continue
                ev = fast(line, default) if len(line) <= limit else None
                if ev is not None:
                    if pending is not None:
                        out.append(pending)
                    pending, pending_env = ev, None
                    continue
                env = self._envelope(line, default)
                if env is None and pending is not None and not is_bare_body(line.lstrip()):
                    # A wrapped line joins the previous record with one space, but only when that makes a
                    # record some shape types, and, when the previous one was typed already, of the same kind
                    # and saying more than it did (the line is part of what the shape reads): a typed record
                    # is never damaged by the line after it (`ICID 5 close` + `Double bounce: …`), nor grows
                    # a tail its shape ignores (`MID 5 queued for delivery` + `Double bounce: …`: the same
                    # record a late line would leave before it). Otherwise both stay records of their own.
                    cont = line.strip()
                    raw = pending.raw
                    penv = pending_env if pending_env is not None else self._envelope(raw, default)
                    if penv is not None:
                        penv = penv._replace(body=f"{penv.body} {cont}")
                    joined = self._make(f"{raw} {cont}", penv, appliance, pending.ts if pending.ts_inferred else _NO_STAMP)
                    kind = joined.kind
                    if kind not in UNRECOGNIZED_KINDS and (
                        pending.kind in UNRECOGNIZED_KINDS or (kind == pending.kind and joined.data != pending.data)
                    ):
                        if not pending.ts_inferred:
                            # The head may be a copy (of a record already read, in its second or older) rather
                            # than what wrapped: only the stitcher can tell (it knows the lines applied). The
                            # continuation alone is kept, made as it would have been without the join.
                            self.loose_joins[id(joined)] = (joined, pending, self._make(line, None, appliance))
                        pending, pending_env = joined, penv
                        self.joined_lines += 1
                        continue
                if pending is not None:
                    out.append(pending)
                pending = self._make(line, env, appliance)
                pending_env = env
            if out:
                yield out
        if pending is not None:
            yield [pending]

    def unjoin(self) -> None:
        """Count a join of `loose_joins` that the pipeline split again: its continuation is a record."""
        self.joined_lines -= 1

    # -- internals --------------------------------------------------------------------------------------
    def _fast(self, line: str, default: str) -> Event | None:
        """The two shapes nearly all traffic has (RFC 3164 with host and tag; native file lines), typed
        straight into the Event the general path would make; None for anything else (and file headers)."""
        m = _FAST_BSD.match(line)
        if m is not None:
            stamp, app, tag, level, body = m.groups()
            if (body[3:4] == " " and body[4:7] in MONTHS) or body.startswith(OFFSET_HEADER):
                return None  # a native line inside syslog, or a header whose offset must apply first
            ts = self.times.bsd_stamp(app, stamp)
        else:
            m = _FAST_NATIVE.match(line)
            if m is None:
                return None
            stamp, level, body = m.groups()
            if body.startswith(OFFSET_HEADER):
                return None
            app, tag = default, None
            ts = self.times.native_stamp(app, stamp)
        inferred = ts is None
        if inferred:
            ts = self._inferred(app, line)
        body = body.strip()
        kind, mid, icid, dcid, data = type_body(body)
        if not inferred and kind not in HEADER_KINDS:  # the clock (`clocks`): the newest stamp
            clock = self.clocks.get(app)
            if clock is None or ts > clock:  # type: ignore[operator]
                self.clocks[app] = ts  # type: ignore[assignment]
        if kind == "unparsed" and data is None:  # else type_body gave its reason (number_out_of_range)
            kind = untyped_kind(level, body)
            data = {"reason": "unknown_shape"} if kind == "unparsed" else {"detail": body}
        return Event(kind, app, ts, level, line, mid, icid, dcid, data, tag, inferred)

    def _envelope(self, text: str, default: str) -> Envelope | None:
        if len(text) > self.max_record_chars:
            text = text[: self.max_record_chars]
        try:
            env = self.envelopes.parse(text, default)
        except (ValueError, OverflowError, IndexError):  # pragma: no cover - defensive: data never raises
            return None
        if env is not None and env.body.startswith("Time offset from UTC: "):
            # Applied as soon as the header is seen: the next line's stamp is read before this one is typed.
            m = _OFFSET.match(env.body)
            if m:
                self.times.set_offset(env.appliance or default, int(m.group(1)))
        return env

    def _inferred(self, app: str, raw: str, given: Any = _NO_STAMP) -> float | None:
        """The stamp of a record without one (`given`: the stamp of the record it grew from, when joined).

        The appliance's clock (its newest stamp so far), unless a record of the same text was already
        dated while that clock was within `lateness` of the stamp it got: then that record's stamp. Both
        so that the copies a transport delivers within the lateness change nothing (tests/test_metamorphic.py,
        property a). A copy of a stamped line carries an old stamp: it must not date the records after it
        (the clock is the newest stamp, not the last). A copy of an unstamped record must get its original's
        stamp: its id holds it, and the stitcher's duplicate memory compares it. Within the window an
        unstamped record identical to an earlier one cannot be told from its copy, and is one.
        """
        clock = self.clocks.get(app)
        seen = self._unstamped.get(app)
        if seen is None:
            seen = self._unstamped[app] = {}
        key = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        if given is _NO_STAMP:
            old = seen.get(key, _NO_STAMP)
            if old is not _NO_STAMP and self._fresh(old, clock):
                return old  # type: ignore[no-any-return]
            given = clock
        # Oldest first: forget the records whose copies can no longer come (or beyond the bound).
        while seen:
            first = next(iter(seen))
            if self._fresh(seen[first], clock) and len(seen) < _MAX_UNSTAMPED:
                break
            del seen[first]
        seen.pop(key, None)
        seen[key] = given
        return given  # type: ignore[no-any-return]  # the clock: a float or None

    def _fresh(self, ts: float | None, clock: float | None) -> bool:
        """Whether a record dated `ts` may still be copied at this appliance clock (within the lateness)."""
        if ts is None or clock is None:
            return ts is clock
        return clock - ts <= self.lateness

    def _make(self, raw: str, env: Envelope | None, appliance: str | None, given: Any = _NO_STAMP) -> Event:
        """The event of one record (`given`: for a record without stamp, see `_inferred`)."""
        truncated = len(raw) > self.max_record_chars
        if truncated:
            raw = raw[: self.max_record_chars]
        default = appliance or self.default_appliance
        if env is None:
            body = raw.strip()
            app = default
            ts = self._inferred(app, raw, given)
            level = tag = None
            inferred = True
        else:
            body = env.body
            app = env.appliance or default
            ts = env.ts
            level, tag = env.level, env.tag
            inferred = ts is None
            if ts is None:
                ts = self._inferred(app, raw, given)
        if truncated and len(body) > self.max_record_chars:
            body = body[: self.max_record_chars]
        kind, mid, icid, dcid, data = type_body(body)
        if not inferred and kind not in HEADER_KINDS:  # the clock (`clocks`): the newest stamp
            clock = self.clocks.get(app)
            if clock is None or ts > clock:  # type: ignore[operator]
                self.clocks[app] = ts  # type: ignore[assignment]
        if env is None and kind != "unparsed" and not is_bare_body(body):
            kind, mid, icid, dcid, data = "unparsed", None, None, None, None
        if kind == "unparsed" and data is None:  # else type_body gave its reason (number_out_of_range)
            kind = untyped_kind(level, body)
            reason = "no_header" if env is None else "unknown_shape"
            data = {"reason": reason} if kind == "unparsed" else {"detail": body}
        if truncated:
            data = dict(data or {})
            data["truncated"] = True
        return Event(kind, app, ts, level, raw, mid, icid, dcid, data, tag, inferred)
