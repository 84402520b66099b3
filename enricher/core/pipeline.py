"""The core pipeline shared by every edge: parse → stitch → classify → document. No I/O here.

Sources hand it raw lines or records; it returns documents to write. Unparsed lines become error
documents (kept, counted by reason) instead of exceptions.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from enricher.core.classify.rules import connection_document_verdict
from enricher.core.documents import DocumentConfig, build_document, id_appliance
from enricher.core.ecs import ECS_VERSION
from enricher.core.event import Event
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import format_iso
from enricher.core.sessions.session import CONNECTION, Key, Session
from enricher.core.sessions.stitcher import Stitcher


@dataclass
class PipelineStats:
    """What the replay summary and the metrics report."""

    lines: int = 0
    unparsed: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    states: Counter[str] = field(default_factory=Counter)
    aborted: Counter[str] = field(default_factory=Counter)
    layers: Counter[str] = field(default_factory=Counter)
    recipient_rejects: Counter[str] = field(default_factory=Counter)

    def line_outcomes(self, stitcher: Stitcher) -> dict[str, int]:
        """Every record (`lines`) counted once: as an error document, or where the stitcher put it (a session,
        or the reason it is in no document; `Stitcher.line_outcomes`). Their sum is `lines`."""
        return {"error_document": sum(self.unparsed.values()), **stitcher.line_outcomes()}

    def summary(self, stitcher: Stitcher, parser: Parser | None = None) -> dict[str, Any]:
        """The one-line JSON summary of a run."""
        out = {
            "lines": self.lines,
            "line_outcomes": self.line_outcomes(stitcher),
            "unparsed": sum(self.unparsed.values()) + stitcher.stats.unrecognized,
            "unparsed_by_reason": dict(
                sorted((self.unparsed + Counter({"unknown_shape_in_session": stitcher.stats.unrecognized})).items())
            ),
            "sessions": self.sessions,
            "states": dict(sorted(self.states.items())),
            "aborted": dict(sorted(self.aborted.items())),
            "abort_layers": dict(sorted(self.layers.items())),
            "recipient_rejects": dict(sorted(self.recipient_rejects.items())),
            "system_lines": stitcher.stats.system,
            # Delivery-connection lines (see StitchStats): folded into message documents, or in none.
            "dcid_lines_in_messages": stitcher.stats.dcid_in_messages,
            "dcid_lines_unmatched": stitcher.stats.dcid_unmatched,
            "duplicates": stitcher.stats.duplicates,
        }
        if parser is not None and parser.lines_read:
            # Physical lines (files, stdin): the records in `lines`, plus blank lines and continuations of a
            # wrapped record (part of that record's document).
            out["input_lines"] = {"read": parser.lines_read, "blank": parser.blank_lines, "joined": parser.joined_lines}
        return out


def error_document(ev: Event) -> dict[str, Any]:
    """A line that could not be typed, kept whole with the reason (never dropped)."""
    # A stable id (appliance, line text, stamp): replaying the same input overwrites, never duplicates.
    ident = f"{id_appliance(ev.appliance)}:e{zlib.crc32(ev.raw.encode('utf-8', 'replace')):08x}:{int(ev.ts or 0)}"
    doc: dict[str, Any] = {
        "ecs": {"version": ECS_VERSION},
        "event": {
            "id": ident,
            "kind": "pipeline_error",
            "dataset": "cisco_esa.unparsed",
            "module": "esa_enricher",
            "original": ev.raw,
        },
        "error": {"type": "unparsed", "code": (ev.data or {}).get("reason", "unknown_shape")},
        "observer": {"hostname": ev.appliance, "vendor": "Cisco", "product": "Secure Email Gateway"},
    }
    if ev.ts is not None:
        doc["@timestamp"] = format_iso(ev.ts)
    return doc


class _AtHand:
    """The messages at hand for a connection's classification: held by the stitcher, or written with it (at
    the end of input no written session is kept). The batch is indexed only when a message is asked for."""

    __slots__ = ("stitcher", "written", "index")

    def __init__(self, stitcher: Stitcher, written: list[Session]) -> None:
        self.stitcher = stitcher
        self.written = written
        self.index: dict[Key, Session] | None = None

    def message(self, appliance: str, mid: int) -> Session | None:
        """The message `mid` of `appliance`, if at hand."""
        key: Key = ("m", appliance, mid)
        m = self.stitcher.held(key)
        if m is None:
            if self.index is None:
                self.index = {x.key: x for x in self.written}
            m = self.index.get(key)
        return m


class Pipeline:
    """Parser + stitcher + document builder with shared counters."""

    def __init__(
        self,
        parser: Parser,
        stitcher: Stitcher,
        doc_config: DocumentConfig | None = None,
        emit_unparsed: bool = True,
    ) -> None:
        self.parser = parser
        self.stitcher = stitcher
        self.doc_config = doc_config or DocumentConfig(keep_raw=stitcher.config.keep_raw)
        self.emit_unparsed = emit_unparsed
        self.stats = PipelineStats()
        # Documents built before the line that closed their sessions was applied (`_build_early`), by id of
        # the session: (session, the line it was built at, its line count and state then, the document or
        # None when it has none). Used only for that line, only if the line left the session as it was.
        self._early: dict[int, tuple[Session, int, int, str, dict[str, Any] | None]] = {}
        stitcher.before_apply = self._build_early

    def _document(self, s: Session, at_hand: _AtHand) -> dict[str, Any] | None:
        """The document of one closed session (`at_hand`: the messages held or written with it), None when it
        has none of its own (counters untouched)."""
        cfg = self.doc_config
        verdict = None
        if s.kind == CONNECTION and s.mids:
            # A connection that carried messages is in their documents, unless classify decides otherwise.
            verdict = connection_document_verdict(s, partial(at_hand.message, s.appliance), cfg.classify)
            if verdict is None:
                return None
        return build_document(s, cfg, self.stitcher.appliances.get(s.appliance), verdict)

    def _build_early(self, sessions: list[Session]) -> None:
        """`Stitcher.before_apply`: the documents of the sessions a line's clock closed, as they were when it
        closed them (a message's connection before that line joins it: late within the grace period or not,
        the same document)."""
        seq = self.stitcher._seq
        at_hand = _AtHand(self.stitcher, sessions)
        self._early = {id(s): (s, seq, s.nlines, s.state, self._document(s, at_hand)) for s in sessions}

    def documents(self, sessions: list[Session]) -> Iterator[dict[str, Any]]:
        """Documents of closed sessions (and their counters)."""
        early = self._early
        if early:
            self._early = {}
            seq = self.stitcher._seq
        at_hand = _AtHand(self.stitcher, sessions)
        for s in sessions:
            pre = early.get(id(s)) if early else None
            # A session the line revived (`Stitcher._revive`) and closed again has another state or line count.
            if pre is not None and pre[0] is s and pre[1] == seq and pre[2] == s.nlines and pre[3] == s.state:
                doc = pre[4]  # built before the closing line was applied
            else:
                doc = self._document(s, at_hand)
            if doc is None:
                continue
            for r in (doc.get("esa") or {}).get("envelope", {}).get("rejected_recipients", ()):
                self.stats.recipient_rejects[r.get("reason", "")] += 1
            self.stats.sessions += 1
            self.stats.states[s.state] += 1
            reason = doc.get("abort_reason")
            if reason is not None:
                self.stats.aborted[reason] += 1
                self.stats.layers[doc["abort_layer"]] += 1
            yield doc

    def process_event(self, ev: Event, now: float | None = None) -> Iterator[dict[str, Any]]:
        """Feed one parsed event; yield the documents it completes."""
        self.stats.lines += 1
        if ev.kind == "unparsed":
            self.stats.unparsed[(ev.data or {}).get("reason", "unknown_shape")] += 1
            if self.emit_unparsed:
                yield error_document(ev)
            return
        closed = self.stitcher.feed(ev, now)
        if closed:
            yield from self.documents(closed)

    def process_lines(self, lines: Iterable[str], appliance: str | None = None) -> Iterator[dict[str, Any]]:
        """Parse a stream of physical lines (wrapped lines joined) and yield documents as they close."""
        # The hot loop of `replay`: process_event inlined, events taken in lists (a generator resumed per
        # line costs more than the rest of this loop).
        feed = self.stitcher.feed
        stats = self.stats
        parser = self.parser
        for batch in parser.parse_batches(lines, appliance):
            stats.lines += len(batch)
            loose = parser.loose_joins or None  # joins to check (rare): a pointer test per line otherwise
            for ev in batch:
                if loose is not None and id(ev) in loose:
                    stats.lines -= 1  # counted again by process_joined
                    yield from self.process_joined(ev)
                    continue
                if ev.kind == "unparsed":
                    stats.lines -= 1  # counted again by process_event
                    yield from self.process_event(ev)
                    continue
                closed = feed(ev)
                if closed:
                    yield from self.documents(closed)

    def process_joined(self, ev: Event) -> Iterator[dict[str, Any]]:
        """`process_event` for an event of `parser.parse_batches`: a line the parser joined onto a stamped
        record (`Parser.loose_joins`) is split off again when that record alone repeats a line already
        applied (a copy, not a wrap): the head is the duplicate it is (counted), the continuation the record
        it would have been alone."""
        mark = self.parser.loose_joins.pop(id(ev), None)
        if mark is not None and mark[0] is ev and self.stitcher.repeated(mark[1]):
            self.parser.unjoin()
            yield from self.process_event(mark[1])
            yield from self.process_event(mark[2])
        else:
            yield from self.process_event(ev)

    def record_documents(self, text: str, appliance: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """Parse one record (a Kafka message, a syslog datagram); the documents it completes, as a list."""
        return self.event_documents(self.parser.parse_record(text, appliance), now)

    def event_documents(self, ev: Event, now: float | None = None) -> list[dict[str, Any]]:
        """Feed one parsed record (see `Parser.parse_records`); the documents it completes, as a list."""
        if ev.kind == "unparsed":
            return list(self.process_event(ev, now))
        self.stats.lines += 1
        closed = self.stitcher.feed(ev, now)
        return list(self.documents(closed)) if closed else []

    def flush(self) -> Iterator[dict[str, Any]]:
        """End of input: documents of every open session."""
        self._early = {}  # no line is applied here: anything built early is from a line that revived it
        yield from self.documents(self.stitcher.flush())

    def drain(self) -> Iterator[dict[str, Any]]:
        """Documents of every open session, keeping unfinished ones open (see `Stitcher.drain`)."""
        self._early = {}
        yield from self.documents(self.stitcher.drain())

    def tick(self, now: float) -> Iterator[dict[str, Any]]:
        """Processing-time fallback for quiet appliances."""
        self._early = {}
        yield from self.documents(self.stitcher.tick(now))

    def snapshot(self) -> dict[str, Any]:
        """The durable state of this pipeline: the stitcher's snapshot, plus what the parser learnt from the
        stream (a native file's `Time offset from UTC` header, the year reached) under `parser`."""
        state = self.stitcher.snapshot()
        state["parser"] = self.parser.state()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Load a `snapshot()` into this fresh pipeline (one written before `parser` existed restores too)."""
        self.stitcher.restore(state)
        self.parser.load_state(state.get("parser", {}))

    def summary(self) -> dict[str, Any]:
        """Counters of the run so far."""
        return self.stats.summary(self.stitcher, self.parser)
