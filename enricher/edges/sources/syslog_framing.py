"""Syslog framing and keys, pure (no I/O): what `esa-enricher listen` does with the bytes it receives.

- TCP (RFC 6587): octet counting (`<len> <PRI>…`) or non-transparent newline framing, detected at the start
  of every frame (so per connection too, and a connection that mixes both still works), as rsyslog's imtcp
  does. A frame is octet-counted only when its length is followed by a space and `<` (a PRI): an RFC 5424
  line without PRI (`1 2026-…`) or any other line that starts with digits stays newline-framed.
- UDP (RFC 5426): one datagram is one message.
- Messages longer than `max_bytes` are **truncated** to `max_bytes` (kept and counted, never split into
  two records); the rest of the frame is skipped without being buffered, so memory stays bounded.
- The Kafka key is the appliance host the envelope names (the project's own envelope parser: RFC 3164 with
  or without host, RFC 5424, relay prefixes); records without a host take the sender's default.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from enricher.core.parsing.envelope import EnvelopeParser, is_bare_body
from enricher.core.parsing.timestamps import MONTHS, TimeResolver

SYSLOG_PORT = 5514  # the usual unprivileged syslog port (514 needs root): `listen` and `send` default to it
DEFAULT_MAX_BYTES = 65536
# How much of a record the key is read from: envelopes (relay prefixes included) are far shorter.
_KEY_SCAN_CHARS = 8192
_TRAILING = b"\r\n\x00"
_DIGITS = frozenset(b"0123456789")
_MAX_LEN_DIGITS = 9  # an octet count above 999,999,999 is not a length: treat the frame as a line


class Frame(NamedTuple):
    """One syslog message taken from the wire."""

    data: bytes
    truncated: bool
    framing: str  # "octet" | "lf" | "datagram"


class StreamFramer:
    """Splits one TCP connection's byte stream into syslog messages (`feed` what was read, `close` at EOF)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversize octet-counted frame still to discard
        self._discard_line = False  # inside an oversize newline-framed message: discard up to its LF
        self.incomplete = 0  # frames cut by the end of the stream (set by close)

    @property
    def buffered(self) -> int:
        """Bytes held for an unfinished frame (bounded by max_bytes + the length header)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Messages completed by `data`, in order."""
        out: list[Frame] = []
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        if self._discard_line:
            i = data.find(b"\n")
            if i < 0:
                return out
            self._discard_line = False
            data = data[i + 1 :]
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        max_bytes = self.max_bytes
        while pos < end:
            c = buf[pos]
            if c in _TRAILING:  # LF after an octet frame, CRLF, NUL-terminated senders
                pos += 1
                continue
            if c in _DIGITS and c != 0x30:
                decided = self._octet_header(buf, pos, end)
                if decided is None:  # cannot tell yet: wait for more bytes
                    break
                if decided:
                    count_end, length = decided
                    start = count_end + 1
                    if length > max_bytes:
                        if end - start < max_bytes:
                            break
                        out.append(Frame(bytes(buf[start : start + max_bytes]).rstrip(_TRAILING), True, "octet"))
                        rest = length - max_bytes
                        have = end - (start + max_bytes)
                        taken = min(rest, have)
                        self._skip = rest - taken
                        pos = start + max_bytes + taken
                        continue
                    if end - start < length:
                        break
                    msg = bytes(buf[start : start + length]).rstrip(_TRAILING)
                    if msg:
                        out.append(Frame(msg, False, "octet"))
                    pos = start + length
                    continue
            # Newline framing.
            i = buf.find(b"\n", pos)
            if i < 0:
                if end - pos > max_bytes + 1:  # (+1: room for the CR of a CRLF)
                    out.append(Frame(bytes(buf[pos : pos + max_bytes]).rstrip(_TRAILING), True, "lf"))
                    self._discard_line = True
                    pos = end
                break
            msg = bytes(buf[pos:i]).rstrip(_TRAILING)
            if len(msg) > max_bytes:
                out.append(Frame(msg[:max_bytes].rstrip(_TRAILING), True, "lf"))
            elif msg:
                out.append(Frame(msg, False, "lf"))
            pos = i + 1
        del buf[:pos]
        return out

    @staticmethod
    def _octet_header(buf: bytearray, pos: int, end: int) -> tuple[int, int] | Literal[False] | None:
        """(end of the count, length) for an octet-counted frame; False for a line; None when undecided."""
        j = pos
        while j < end and buf[j] in _DIGITS:
            j += 1
            if j - pos > _MAX_LEN_DIGITS:
                return False
        if j + 1 >= end:  # the count, or the count and its space, reach the end of what was read
            return None
        if buf[j] != 0x20 or buf[j + 1] != 0x3C:  # "<len> <" only
            return False
        return j, int(buf[pos:j])

    def close(self) -> list[Frame]:
        """End of stream: a last newline-framed message without its LF counts; a cut octet frame does not."""
        out: list[Frame] = []
        buf = self._buf
        if self._skip:
            self.incomplete += 1
            self._skip = 0
        elif buf and not self._discard_line:
            rest = bytes(buf).lstrip(_TRAILING)
            head = self._octet_header(bytearray(rest), 0, len(rest)) if rest[:1].isdigit() and rest[:1] != b"0" else False
            if head:  # an octet-counted frame the sender did not finish
                self.incomplete += 1
            else:
                msg = rest.rstrip(_TRAILING)
                if msg:
                    out.append(Frame(msg[: self.max_bytes], len(msg) > self.max_bytes, "lf"))
        buf.clear()
        self._discard_line = False
        return out


def datagram_frame(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Frame | None:
    """One UDP datagram as a message (trailing LF/CR/NUL dropped); None when it is empty."""
    msg = data.rstrip(_TRAILING)
    if not msg:
        return None
    if len(msg) > max_bytes:
        return Frame(msg[:max_bytes].rstrip(_TRAILING), True, "datagram")
    return Frame(msg, False, "datagram")


class KeyExtractor:
    """The Kafka key of a record: the appliance host its envelope names, else the sender's default.

    A line with no header that is not a bare ESA body is the continuation of the previous record (a wrapped
    line): it gets the key of the previous record of the same connection, so it lands in the same partition.
    """

    _RESET_EVERY = 65536  # the envelope parser keeps per-host time state: renew it so no sender can grow it

    def __init__(self, default_appliance: str) -> None:
        self.default_appliance = default_appliance
        self._envelopes = EnvelopeParser(TimeResolver())
        self._calls = 0

    def key(self, text: str, default: str | None = None, previous: str | None = None) -> str:
        """Appliance host of one record (`default` for records without a host, `previous` for continuations)."""
        fallback = default or self.default_appliance
        self._calls += 1
        if self._calls >= self._RESET_EVERY:
            self._calls = 0
            self._envelopes = EnvelopeParser(TimeResolver())
        if len(text) > _KEY_SCAN_CHARS:
            text = text[:_KEY_SCAN_CHARS]
        try:
            env = self._envelopes.parse(text, fallback)
        except (ValueError, OverflowError, IndexError):  # pragma: no cover - defensive, as the parser is
            env = None
        if env is None:
            if previous is not None and not is_bare_body(text.lstrip()):
                return previous
            return fallback
        return env.appliance or fallback

    def key_of_bytes(self, data: bytes, default: str | None = None, previous: str | None = None) -> str:
        """`key` of raw bytes (invalid UTF-8 replaced: the key only needs the header)."""
        return self.key(data[: _KEY_SCAN_CHARS * 4].decode("utf-8", "replace"), default, previous)


# -- the other direction: records as a syslog sender writes them (`send`, the lab's replayer) ----------------

_SEVERITY = {"Critical": 2, "Warning": 4, "Info": 6, "Debug": 7, "Trace": 7}
_FACILITY_MAIL = 2
STYLES = ("rfc3164", "rfc3164-native", "rfc5424")


def _native_parts(record: str) -> tuple[str, str, int, str, int, str, str] | None:
    """(weekday, month, day, hh:mm:ss, year, level, body) of a native file line, else None."""
    parts = record.split(" ", 5)
    if len(parts) < 6 or not record[:3].isalpha():
        return None
    if parts[2] == "":  # `Aug  4`: a space-padded day
        parts = record.split(None, 5)
        if len(parts) < 6:
            return None
    wday, mon, day, hms, year, rest = parts
    level, sep, body = rest.partition(":")
    if (
        mon not in MONTHS
        or not day.isdigit()
        or len(hms) != 8
        or not year.isdigit()
        or level not in _SEVERITY
        or not sep
    ):
        return None
    return wday, mon, int(day), hms, int(year), level, body.strip()


def to_syslog(record: str, hostname: str, style: str = "rfc3164", tag: str = "mail_logs", utc_offset: int | None = None) -> str:
    """A native ESA record (`Fri Nov 27 09:00:01 2026 Info: …`) as the appliance's syslog push would send it.

    `rfc3164`: `<22>Nov 27 09:00:01 HOST mail_logs: Info: …` (what AsyncOS sends; no year, no zone);
    `rfc3164-native`: the whole native line after the syslog header (a forwarder's shape; keeps the year);
    `rfc5424`: `<22>1 2026-11-27T09:00:01+09:00 HOST mail_logs - - - Info: …` (`utc_offset` seconds, from the
    file's `Time offset from UTC` header; UTC without it). Records that are not native lines are returned unchanged.
    """
    p = _native_parts(record)
    if p is None:
        return record
    _wday, mon, day, hms, year, level, body = p
    pri = _FACILITY_MAIL * 8 + _SEVERITY[level]
    if style == "rfc3164":
        return f"<{pri}>{mon} {day:>2} {hms} {hostname} {tag}: {level}: {body}"
    if style == "rfc3164-native":
        return f"<{pri}>{mon} {day:>2} {hms} {hostname} {tag}: {record}"
    if style == "rfc5424":
        off = utc_offset or 0
        zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
        stamp = f"{year:04d}-{MONTHS[mon]:02d}-{day:02d}T{hms}{zone}"
        return f"<{pri}>1 {stamp} {hostname} {tag} - - - {level}: {body}"
    raise ValueError(f"unknown syslog style {style!r} (one of {', '.join(STYLES)})")


def octet_frame(message: bytes) -> bytes:
    """RFC 6587 octet counting: `<length> <message>`."""
    return b"%d " % len(message) + message
