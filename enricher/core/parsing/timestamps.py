"""Event time: month names, per-appliance zones, and year inference for year-less syslog stamps.

RFC 3164 stamps (`Mar 17 18:24:37`) carry neither year nor zone. The year is inferred per appliance and
kept monotonic across New Year (a December stamp followed by a January one moves to the next year; a late
December straggler after January stays in the old year). The zone comes from configuration per
appliance, or from the `Time offset from UTC` header of a native log file.
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from enricher.errors import ConfigError

MONTHS = {
    name: i
    for i, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}

# A month jump at least this large between consecutive stamps of one appliance is a year boundary.
_ROLLOVER_MONTHS = 6
_CACHE_MAX = 8192
_MISSING = object()
# Event times an appliance can write: 1970-01-01 to 2262-01-01 UTC. A stamp outside (year 0001 or 9999 in a
# native line, a corrupt relay stamp) is no clock reading and is treated like an unreadable one. Within the
# range every time, and every duration in nanoseconds (`event.duration`), fits a `long`.
EPOCH_MIN, EPOCH_MAX = 0.0, 9_183_110_400.0


def parse_zone(value: str, key: str = "timezone") -> tzinfo:
    """Turn `UTC`, `+09:00`, `-0600` or an IANA name into a tzinfo; a bad value names its key."""
    v = value.strip()
    if v.upper() in ("UTC", "Z", "GMT"):
        return UTC
    if v and v[0] in "+-":
        digits = v[1:].replace(":", "")
        if digits.isdigit() and len(digits) in (2, 4):
            hours = int(digits[:2])
            minutes = int(digits[2:] or 0)
            if hours <= 14 and minutes < 60:
                sign = -1 if v[0] == "-" else 1
                return timezone(sign * timedelta(hours=hours, minutes=minutes))
        raise ConfigError(key, f"invalid UTC offset {value!r} (expected like +09:00)")
    try:
        return ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(key, f"unknown time zone {value!r}") from exc


def _epoch(year: int, month: int, day: int, hms: str, zone: tzinfo) -> float | None:
    """Seconds since the epoch for a wall-clock stamp in `zone`; None when the date does not exist."""
    try:
        hh, mm, ss = int(hms[0:2]), int(hms[3:5]), int(hms[6:8])
        if zone is UTC:
            if not (1 <= day <= calendar.monthrange(year, month)[1]) or hh > 23 or mm > 59 or ss > 60:
                return None
            v = float(calendar.timegm((year, month, day, hh, mm, ss)))
        else:
            v = datetime(year, month, day, hh, mm, min(ss, 59), tzinfo=zone).timestamp()
    except (ValueError, OverflowError):
        return None
    return v if EPOCH_MIN <= v < EPOCH_MAX else None


class TimeResolver:
    """Resolves stamps to epoch seconds with per-appliance zones and year inference (event time)."""

    def __init__(
        self,
        default_zone: tzinfo = UTC,
        zones: dict[str, tzinfo] | None = None,
        reference_time: float | None = None,
    ) -> None:
        self.default_zone = default_zone
        self.zones = dict(zones or {})
        # Reference "now" for the first year-less stamp of an appliance (replays pin it).
        self.reference_time = reference_time
        self._years: dict[str, tuple[int, int]] = {}
        self._offsets: dict[str, int] = {}  # set by native file headers: part of the durable state
        self._cache: dict[tuple[str, str], float | None] = {}
        # (appliance, stamp as written) → epoch, of `bsd_stamp` and `native_stamp`. Public and read-only to
        # others: the native core looks stamps up here and calls those two methods on a miss.
        self.stamp_cache: dict[tuple[str, str], float | None] = {}

    def zone_for(self, appliance: str) -> tzinfo:
        """The configured zone of an appliance (or the default)."""
        return self.zones.get(appliance, self.default_zone)

    def set_offset(self, appliance: str, offset_seconds: int) -> None:
        """Apply a native file header's `Time offset from UTC` to an appliance (not one of a day or more:
        no zone has it, and Python's cannot hold it)."""
        if not -86400 < offset_seconds < 86400:
            return
        self._offsets[appliance] = offset_seconds
        zone = timezone(timedelta(seconds=offset_seconds)) if offset_seconds else UTC
        if self.zones.get(appliance) != zone:
            self.zones[appliance] = zone
            self._cache.clear()
            self.stamp_cache.clear()

    def state(self) -> dict[str, Any]:
        """What the stream has taught this resolver (header offsets, the year reached per appliance), JSON-ready:
        a process that restores a checkpoint reads the stamps after it as the one that wrote it did."""
        return {"offsets": dict(self._offsets), "years": {app: list(ym) for app, ym in self._years.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """Apply a `state()` (to a resolver that has read nothing yet)."""
        for app, seconds in state.get("offsets", {}).items():
            self.set_offset(app, int(seconds))
        for app, (year, month) in state.get("years", {}).items():
            self._note_year(app, int(year), int(month))

    def full(self, appliance: str, month: str, day: int, hms: str, year: int) -> float | None:
        """A stamp that carries its year (native file lines, relays that add the year)."""
        key = (appliance, f"{year}{month}{day}{hms}")
        cache = self._cache
        if key in cache:
            return cache[key]
        m = MONTHS.get(month)
        value = None if m is None else _epoch(year, m, day, hms, self.zone_for(appliance))
        if m is not None:
            self._note_year(appliance, year, m)
        if len(cache) > _CACHE_MAX:
            cache.clear()
        cache[key] = value
        return value

    def bsd_stamp(self, appliance: str, stamp: str) -> float | None:
        """`Mmm dd hh:mm:ss` (RFC 3164) with the year inferred; cached per appliance and second."""
        key = (appliance, stamp)
        cache = self.stamp_cache
        v = cache.get(key, _MISSING)
        if v is _MISSING:
            day = stamp[4:6]
            v = self.yearless(appliance, stamp[0:3], int(day), stamp[7:15]) if day.strip().isdigit() else None
            if len(cache) > _CACHE_MAX:
                cache.clear()
            cache[key] = v
        return v  # type: ignore[return-value]

    def native_stamp(self, appliance: str, stamp: str) -> float | None:
        """`Www Mmm dd hh:mm:ss yyyy` (native log files), in the appliance's zone; cached."""
        key = (appliance, stamp)
        cache = self.stamp_cache
        v = cache.get(key, _MISSING)
        if v is _MISSING:
            parts = stamp.split()
            v = self.full(appliance, parts[1], int(parts[2]), parts[3], int(parts[4]))
            if len(cache) > _CACHE_MAX:
                cache.clear()
            cache[key] = v
        return v  # type: ignore[return-value]

    def yearless(self, appliance: str, month: str, day: int, hms: str) -> float | None:
        """An RFC 3164 stamp without year: infer the year for this appliance."""
        m = MONTHS.get(month)
        if m is None:
            return None
        year = self._infer_year(appliance, m)
        return self.full(appliance, month, day, hms, year)

    def _note_year(self, appliance: str, year: int, month: int) -> None:
        last = self._years.get(appliance)
        if last is None or (year, month) > last:
            self._years[appliance] = (year, month)

    def _infer_year(self, appliance: str, month: int) -> int:
        last = self._years.get(appliance)
        if last is None:
            ref = self.reference_time if self.reference_time is not None else time.time()
            now = datetime.fromtimestamp(ref, UTC)
            year = now.year
            # A stamp more than a month ahead of "now" belongs to last year (a file from December read in January).
            if month > now.month + 1:
                year -= 1
            return year
        last_year, last_month = last
        if last_month - month >= _ROLLOVER_MONTHS:
            return last_year + 1
        if month - last_month >= _ROLLOVER_MONTHS:
            return last_year - 1
        return last_year

    def iso(self, epoch: float) -> str:
        """UTC ISO-8601 with milliseconds and Z, as Elasticsearch and ECS expect."""
        return format_iso(epoch)


_ISO_CACHE: dict[float, str] = {}


def format_iso(epoch: float) -> str:
    """Format epoch seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC); cached (log stamps repeat by the second)."""
    v = _ISO_CACHE.get(epoch)
    if v is None:
        if len(_ISO_CACHE) > 65536:
            _ISO_CACHE.clear()
        v = _ISO_CACHE[epoch] = _format_iso(epoch)
    return v


def _format_iso(epoch: float) -> str:
    secs = int(epoch // 1)
    ms = int(round((epoch - secs) * 1000))
    if ms == 1000:
        secs, ms = secs + 1, 0
    t = time.gmtime(secs)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}Z"


def parse_iso(value: str) -> float | None:
    """Parse an RFC 3339 / RFC 5424 timestamp (with zone) into epoch seconds; None when invalid."""
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        ts = dt.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
    return ts if EPOCH_MIN <= ts < EPOCH_MAX else None
