"""Year inference and zones: monotonic per appliance, New Year rollover, stragglers."""

from __future__ import annotations

import calendar

import pytest

from enricher.core.parsing.timestamps import TimeResolver, format_iso, parse_iso, parse_zone
from enricher.errors import ConfigError


def ts(*a: int) -> float:
    return float(calendar.timegm(a))


def test_first_stamp_takes_the_reference_year() -> None:
    t = TimeResolver(reference_time=ts(2026, 11, 28, 0, 0, 0))
    assert t.bsd_stamp("a", "Nov 27 12:00:00") == ts(2026, 11, 27, 12, 0, 0)


def test_stamp_far_ahead_of_reference_is_last_year() -> None:
    t = TimeResolver(reference_time=ts(2027, 1, 2, 0, 0, 0))
    assert t.bsd_stamp("a", "Dec 31 23:59:00") == ts(2026, 12, 31, 23, 59, 0)


def test_new_year_rollover_is_monotonic_and_per_appliance() -> None:
    t = TimeResolver(reference_time=ts(2026, 12, 31, 23, 0, 0))
    assert t.bsd_stamp("a", "Dec 31 23:58:00") == ts(2026, 12, 31, 23, 58, 0)
    assert t.bsd_stamp("a", "Jan  1 00:03:00") == ts(2027, 1, 1, 0, 3, 0)
    # A late December line after the rollover stays in the old year.
    assert t.bsd_stamp("a", "Dec 31 23:59:59") == ts(2026, 12, 31, 23, 59, 59)
    # Another appliance has its own state.
    assert t.bsd_stamp("b", "Dec 31 23:58:00") == ts(2026, 12, 31, 23, 58, 0)


def test_timeout_across_new_year_measures_300_seconds() -> None:
    t = TimeResolver(reference_time=ts(2026, 12, 31, 23, 59, 0))
    start = t.bsd_stamp("a", "Dec 31 23:58:00")
    end = t.bsd_stamp("a", "Jan  1 00:03:00")
    assert start is not None and end is not None and end - start == 300


def test_invalid_date_gives_none_not_an_error() -> None:
    t = TimeResolver(reference_time=ts(2026, 11, 28, 0, 0, 0))
    assert t.bsd_stamp("a", "Feb 30 12:00:00") is None
    assert t.bsd_stamp("a", "Nov 27 25:00:00") is None


@pytest.mark.parametrize(
    "value,offset",
    [("UTC", 0), ("+09:00", 32400), ("-0600", -21600), ("+05", 18000), ("Asia/Tokyo", 32400)],
)
def test_parse_zone(value: str, offset: int) -> None:
    from datetime import datetime

    z = parse_zone(value)
    assert datetime(2026, 1, 1, tzinfo=z).utcoffset().total_seconds() == offset  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["+25:00", "Mars/Olympus", "+9"])
def test_parse_zone_errors_name_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_zone(value, "time.timezones.esa1")
    assert e.value.key == "time.timezones.esa1"


def test_iso_roundtrip() -> None:
    assert format_iso(ts(2026, 11, 27, 12, 0, 0) + 0.25) == "2026-11-27T12:00:00.250Z"
    assert parse_iso("2026-11-27T21:00:00+09:00") == ts(2026, 11, 27, 12, 0, 0)
    assert parse_iso("not a time") is None
