"""Wiring the core from a Config: what `replay`, `produce` and `run` build their pipeline with."""

from __future__ import annotations

from enricher.config import Config
from enricher.core.documents import DocumentConfig
from enricher.core.parsing.parser import Parser
from enricher.core.parsing.timestamps import TimeResolver, parse_iso, parse_zone
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.stitcher import Stitcher


def build_pipeline(cfg: Config) -> Pipeline:
    """Wire parser, stitcher and document builder from a Config."""
    t = cfg.time
    times = TimeResolver(
        default_zone=parse_zone(t.default_timezone, "time.default_timezone"),
        zones={h: parse_zone(z, f"time.timezones.{h}") for h, z in t.timezones.items()},
        reference_time=parse_iso(t.reference_time) if t.reference_time else None,
    )
    stitch = cfg.stitch_config()
    parser = Parser(times, default_appliance=cfg.appliance, lateness=stitch.grace_seconds)
    stitcher = Stitcher(stitch)
    docs = DocumentConfig(keep_raw=cfg.sessions.keep_raw, classify=cfg.classify_config())
    return Pipeline(parser, stitcher, docs)
