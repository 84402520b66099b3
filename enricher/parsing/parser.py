"""The parser: physical lines → records (joining wrapped lines) → typed `Event`s. Pure, never raises."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from enricher.models import Event
from enricher.parsing.envelope import Envelope, EnvelopeParser, is_bare_body
from enricher.parsing.shapes import type_body
from enricher.parsing.timestamps import TimeResolver

DEFAULT_MAX_RECORD_CHARS = 65536
_OFFSET = re.compile(r"Time offset from UTC: (-?\d{1,6}) seconds")


class Parser:
    """Turns raw log text into events, with per-appliance time state.

    `default_appliance` names the appliance of records whose envelope has no host (native files,
    `<PRI>Mmm dd hh:mm:ss mail_logs: …`); the Kafka source passes the message key instead.
    """

    def __init__(
        self,
        times: TimeResolver | None = None,
        default_appliance: str = "esa",
        max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
    ) -> None:
        self.times = times or TimeResolver()
        self.envelopes = EnvelopeParser(self.times)
        self.default_appliance = default_appliance
        self.max_record_chars = max_record_chars
        self._last_ts: dict[str, float] = {}

    # -- one record -------------------------------------------------------------------------------------
    def parse_record(self, text: str, appliance: str | None = None) -> Event:
        """Parse one complete record (a Kafka message, a syslog datagram); inner newlines are wraps."""
        if "\n" in text or "\r" in text:
            parts = [p.strip() for p in text.replace("\r", "\n").split("\n")]
            text = " ".join(p for p in parts if p)
        return self._event(text, self._envelope(text, appliance or self.default_appliance), appliance)

    # -- a stream of physical lines ---------------------------------------------------------------------
    def parse_lines(self, lines: Iterable[str], appliance: str | None = None) -> Iterator[Event]:
        """Parse a stream of physical lines; a line without header or ESA body continues the previous one."""
        default = appliance or self.default_appliance
        pending_raw: str | None = None
        pending_env: Envelope | None = None
        for line in lines:
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            env = self._envelope(line, default)
            if env is None and pending_raw is not None and not is_bare_body(line.lstrip()):
                # A wrapped line: the continuation joins the previous record with one space.
                cont = line.strip()
                pending_raw = f"{pending_raw} {cont}"
                if pending_env is not None:
                    pending_env = pending_env._replace(body=f"{pending_env.body} {cont}")
                continue
            if pending_raw is not None:
                yield self._event(pending_raw, pending_env, appliance)
            pending_raw, pending_env = line, env
        if pending_raw is not None:
            yield self._event(pending_raw, pending_env, appliance)

    # -- internals --------------------------------------------------------------------------------------
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

    def _event(self, raw: str, env: Envelope | None, appliance: str | None) -> Event:
        truncated = len(raw) > self.max_record_chars
        if truncated:
            raw = raw[: self.max_record_chars]
        default = appliance or self.default_appliance
        if env is None:
            body = raw.strip()
            app = default
            ts = self._last_ts.get(app)
            level = tag = None
            inferred = True
        else:
            body = env.body
            app = env.appliance or default
            ts = env.ts
            level, tag = env.level, env.tag
            inferred = ts is None
            if ts is None:
                ts = self._last_ts.get(app)
            else:
                self._last_ts[app] = ts
        if truncated and len(body) > self.max_record_chars:
            body = body[: self.max_record_chars]
        kind, mid, icid, dcid, data = type_body(body)
        if env is None and kind != "unparsed" and not is_bare_body(body):
            kind, mid, icid, dcid, data = "unparsed", None, None, None, None
        if kind == "unparsed":
            data = {"reason": "no_header" if env is None else "unknown_shape"}
        if truncated:
            data = dict(data or {})
            data["truncated"] = True
        return Event(kind, app, ts, level, raw, mid, icid, dcid, data, tag, inferred)
