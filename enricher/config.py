"""Configuration, declared once: typed, validated, unknown keys rejected, every field described.

Files are TOML. A bad value fails at start with its dotted key path (`sessions.grace_seconds: …`).
docs/configuration.md is generated from these models (`esa-enricher config-reference`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from enricher.classify.rules import ClassifyConfig
from enricher.errors import ConfigError
from enricher.parsing.timestamps import parse_iso, parse_zone
from enricher.sessions.stitcher import StitchConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSettings(_Section):
    """Event time: zones and year inference."""

    default_timezone: str = Field(
        "UTC", description="Zone of stamps without one (RFC 3164, native files without header)."
    )
    timezones: dict[str, str] = Field(
        default_factory=dict, description='Zone per appliance host, e.g. {"esa1.example.net" = "Asia/Tokyo"}.'
    )
    reference_time: str | None = Field(
        None,
        description="ISO time that year-less stamps are inferred against (default: now). Pin it for reproducible replays.",
    )

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        parse_zone(v, "time.default_timezone")
        return v

    @field_validator("timezones")
    @classmethod
    def _zones(cls, v: dict[str, str]) -> dict[str, str]:
        for host, zone in v.items():
            parse_zone(zone, f"time.timezones.{host}")
        return v

    @field_validator("reference_time")
    @classmethod
    def _ref(cls, v: str | None) -> str | None:
        if v is not None and parse_iso(v) is None:
            raise ValueError(f"not an ISO-8601 time: {v!r}")
        return v


class SessionSettings(_Section):
    """Windowing of the stitcher (seconds of event time)."""

    grace_seconds: float = Field(5.0, ge=0, description="Wait after `Message finished` / `ICID close` for late lines.")
    idle_timeout_seconds: float = Field(
        3600.0, gt=0, description="Write a session as `expired` after this long without a line; revived if more come."
    )
    max_open_sessions: int = Field(
        200_000, ge=1, description="Cap on open sessions; beyond it the oldest is `evicted`."
    )
    max_dormant_sessions: int = Field(20_000, ge=0, description="Expired sessions kept to be updated in place.")
    dormant_horizon_seconds: float = Field(7 * 86400.0, ge=0, description="How long an expired session can be revived.")
    quiet_seconds: float = Field(
        60.0, gt=0, description="Processing-time fallback: advance a quiet appliance's clock after this long."
    )
    keep_raw: bool = Field(True, description="Keep each session's raw lines in its document (`esa.raw`).")


class ClassifySettings(_Section):
    """Abort classification settings (shared/docs/abort-taxonomy.md)."""

    inbound_timeout_seconds: float = Field(
        300.0, gt=0, description="Listener timeout for unsuccessful inbound connections (AsyncOS default 300 s)."
    )
    inbound_timeout_tolerance_seconds: float = Field(5.0, ge=0, description="How close to the timeout counts as it.")
    inbound_timeouts: dict[str, float] = Field(
        default_factory=dict, description="Overrides per appliance (`esa1`) or appliance/listener (`esa1/Data 1`)."
    )
    lost_window_seconds: float = Field(
        5.0, ge=0, description="`ICID lost` within this many seconds of the abort (before or after) means transport."
    )


class Config(_Section):
    """The whole configuration."""

    appliance: str = Field("esa", min_length=1, description="Appliance name of lines whose envelope has no host.")
    time: TimeSettings = Field(default_factory=TimeSettings)  # type: ignore[arg-type]
    sessions: SessionSettings = Field(default_factory=SessionSettings)  # type: ignore[arg-type]
    classify: ClassifySettings = Field(default_factory=ClassifySettings)  # type: ignore[arg-type]

    def stitch_config(self) -> StitchConfig:
        """The stitcher's settings."""
        return StitchConfig(**self.sessions.model_dump())

    def classify_config(self) -> ClassifyConfig:
        """The classifier's settings."""
        return ClassifyConfig(**self.classify.model_dump())


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def validate(data: dict[str, Any]) -> Config:
    """Build a Config from a dict; the first error names its key path."""
    try:
        return Config.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, ConfigError):
            raise ctx_err from None
        raise ConfigError(_key_path(err["loc"]), msg) from None


def load(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a TOML file (or defaults), then apply dotted-key overrides (from flags or environment)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("<file>", f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", f"{path}: invalid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return validate(data)
