"""Convert the Sigma rules in `pipelines/sigma/rules` with pySigma and write `pipelines/sigma/out/`.

`python -m enricher.assets.sigma` rewrites the outputs and the pipelines they are converted with (generated from
the field list: `sigma_pipeline.py`), `--check` exits 1 when the committed ones differ from a fresh build. Needs the `sigma` extra (pySigma, its Elasticsearch and Splunk backends). What is native
pySigma output and what is built here is listed in docs/sigma.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enricher.assets.sigma_es import timespan_seconds
from enricher.assets.sigma_pipeline import INDEX, PIPELINE, SIGMA_DIR, SPLUNK_PIPELINE, pipeline_texts
from enricher.core import fields

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = SIGMA_DIR / "rules"
# Detection (base) rules apart from the correlation rules, so that sigma-cli can convert them alone for a backend
# without correlations (Lucene raises on the whole collection, even with --skip-unsupported).
DETECTIONS_DIR = RULES_DIR / "detections"
OUT_DIR = SIGMA_DIR / "out"
SCHEDULE_MINUTES = 5
# Elastic Security rules select documents by the time they were written (stamped by the Elasticsearch sink), not
# by @timestamp (when the session started): a session written after its lookback window (it stayed open, the
# enricher was down, or Elasticsearch pushed back) is still seen. Documents without it fall back to @timestamp.
TIMESTAMP_OVERRIDE = {"timestamp_override": fields.name("event.ingested"), "timestamp_override_fallback_disabled": False}
def write_delay_seconds() -> int:
    """How long after its session ended a document may get its `event.ingested`, with the default configuration.

    The service sends queued documents at least every `elasticsearch.flush_interval_seconds`, and a checkpoint
    (every `service.checkpoint_interval_seconds`) settles the request in flight before it commits: a document
    can wait for both. Two sessions that ended `timespan` apart can thus be stamped up to `timespan` plus this apart.
    """
    from enricher.config import Config

    cfg = Config()  # type: ignore[call-arg]  # every field has a default (pydantic-settings)
    return math.ceil(cfg.elasticsearch.flush_interval_seconds + cfg.service.checkpoint_interval_seconds)


def lookback(window_seconds: int = 0) -> dict[str, Any]:
    """`from` and `meta.from` of a rule run every SCHEDULE_MINUTES over a window of `window_seconds` (0: a query rule).

    Each run reads `event.ingested` in [now - from, now]: one interval (nothing falls between two runs), the write
    delay (documents stamped just before a run but not yet searchable, and the spread of a correlation's events),
    and the correlation's own timespan. `meta.from` is what Kibana shows as the additional look-back.
    """
    extra = window_seconds + write_delay_seconds()
    return {"from": f"now-{SCHEDULE_MINUTES * 60 + extra}s", "meta": {"from": f"{extra}s"}}


def load_rules(rules_dir: Path = RULES_DIR) -> Any:
    """A fresh SigmaCollection of every rule (conversion mutates rules: load once per backend)."""
    from sigma.collection import SigmaCollection

    return SigmaCollection.load_ruleset([rules_dir])


def pipeline(splunk: bool = False) -> Any:
    """The processing pipeline (Sigma fields → document fields); for Splunk, plus its JSON array field names."""
    from sigma.processing.pipeline import ProcessingPipeline

    texts = pipeline_texts()  # as generated, so that conversions follow the field list even before `make assets`
    p = ProcessingPipeline.from_yaml(texts[PIPELINE])
    if splunk:
        p = p + ProcessingPipeline.from_yaml(texts[SPLUNK_PIPELINE])
    return p


def validate(rules_dir: Path = RULES_DIR) -> list[str]:
    """Issues of every pySigma core validator over the rules (empty when they are clean)."""
    from sigma.validation import SigmaValidator
    from sigma.validators.core import validators

    issues = SigmaValidator(validators.values()).validate_rules(load_rules(rules_dir))
    return [f"{type(i).__name__}: {i}" for i in issues]


def _split(collection: Any) -> tuple[list[Any], list[Any]]:
    from sigma.correlations import SigmaCorrelationRule

    base = [r for r in collection.rules if not isinstance(r, SigmaCorrelationRule)]
    corr = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    return base, corr


def base_rules(detections_dir: Path = DETECTIONS_DIR) -> list[Any]:
    """The detection (non-correlation) rules, each alone, so a backend outputs them even when a correlation uses them."""
    import yaml
    from sigma.rule import SigmaRule

    out: list[Any] = []
    for path in sorted(detections_dir.glob("*.yml")):
        out.extend(SigmaRule.from_dict(d) for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return out


def lucene_queries() -> dict[str, str]:
    """Base rule name → Lucene query (pySigma LuceneBackend, native)."""
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection

    backend = LuceneBackend(pipeline())
    return {r.name: backend.convert(SigmaCollection([r]))[0] for r in base_rules()}


@contextlib.contextmanager
def _offline_attack_catalogue() -> Iterator[None]:
    """An empty MITRE ATT&CK catalogue in a private cache while converting.

    The Lucene backend's SIEM formats load pySigma's ATT&CK data (a download from GitHub) even for rules without
    ATT&CK tags. The rules carry none (checked), so an empty catalogue gives the same output, offline, and the
    user's own ~/.cache/pysigma is neither read nor overwritten.
    """
    from sigma.data import mitre_attack

    if any(t.namespace == "attack" for r in base_rules() for t in r.tags):
        raise ValueError("a rule has attack.* tags: convert with the real ATT&CK catalogue (see docs/sigma.md)")
    saved = (mitre_attack._custom_url, mitre_attack._custom_cache_dir)  # noqa: SLF001 - restored below
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty-attack.json"
        empty.write_text('{"type": "bundle", "objects": []}', encoding="utf-8")
        mitre_attack.set_cache_dir(str(Path(tmp) / "cache"))
        mitre_attack.set_url(str(empty))
        try:
            yield
        finally:
            mitre_attack._custom_url = saved[0]  # noqa: SLF001
            mitre_attack.set_cache_dir(str(saved[1] or mitre_attack._DEFAULT_CACHE_DIR))  # noqa: SLF001 - closes ours
            mitre_attack._custom_cache_dir = saved[1]  # noqa: SLF001


def siem_rules() -> list[dict[str, Any]]:
    """Elastic Security query rules of the base rules (LuceneBackend `siem_rule_ndjson`, native, severity fixed)."""
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection

    backend = LuceneBackend(pipeline(), index_names=[INDEX], schedule_interval=SCHEDULE_MINUTES)
    with _offline_attack_catalogue():
        rules = [backend.convert(SigmaCollection([r]), "siem_rule_ndjson")[0] for r in base_rules()]
    for rule in rules:  # Elastic Security has no "informational" severity: such rules become building blocks
        if rule["severity"] == "informational":
            rule.update(severity="low", risk_score=21, building_block_type="default")
        rule.update(TIMESTAMP_OVERRIDE, **lookback())
    return rules


def correlation_specs() -> list[dict[str, Any]]:
    """One JSON spec per correlation rule (fields mapped by the pipeline; queries from the Lucene backend)."""
    queries = lucene_queries()
    _, corr = _split(load_rules())
    p = pipeline()
    specs = []
    for rule in corr:
        p.apply(rule)  # maps group-by and the value_count field like every backend does
        spec: dict[str, Any] = {
            "id": str(rule.id),
            "name": rule.name,
            "title": rule.title,
            "level": rule.level.name.lower() if rule.level else None,
            "type": rule.type.name.lower(),
            "queries": {ref.rule.name: queries[ref.rule.name] for ref in rule.rules},
            "group_by": list(rule.group_by or []),
            "timespan": rule.timespan.spec,
            "condition": {},
        }
        if rule.condition is not None:  # temporal: pySigma sets "gte <number of rules>"
            spec["condition"] = {rule.condition.op.name.lower(): rule.condition.count}
            if rule.condition.fieldref:
                spec["condition"]["field"] = rule.condition.fieldref
        specs.append(spec)
    return specs


def threshold_rules(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Elastic Security threshold rules for the event_count / value_count correlations (built here, not pySigma)."""
    out = []
    for s in specs:
        if s["type"] not in ("event_count", "value_count"):
            continue
        cond = s["condition"]
        threshold: dict[str, Any] = {"field": s["group_by"], "value": 1}
        if s["type"] == "event_count":
            threshold["value"] = cond.get("gte", cond.get("gt", 0) + 1)
        else:
            threshold["cardinality"] = [{"field": cond["field"], "value": cond.get("gte", cond.get("gt", 0) + 1)}]
        out.append(
            {
                "rule_id": s["id"],
                "name": f"SIGMA - {s['title']}",
                "description": f"Sigma correlation {s['name']} ({s['type']}, {s['timespan']}) converted by esa-enricher",
                "type": "threshold",
                "language": "lucene",
                "index": [INDEX],
                "query": " OR ".join(f"({q})" for q in s["queries"].values()),
                "threshold": threshold,
                **lookback(timespan_seconds(s["timespan"])),
                "to": "now",
                "interval": f"{SCHEDULE_MINUTES}m",
                "severity": s["level"] or "low",
                "risk_score": {"low": 21, "medium": 47, "high": 73, "critical": 99}.get(s["level"] or "low", 21),
                "enabled": True,
                "tags": ["esa-enricher", "sigma"],
                **TIMESTAMP_OVERRIDE,
            }
        )
    return out


def _esql_backend() -> Any:
    """pySigma's ESQLBackend whose correlations count over the rule's whole look-back instead of @timestamp buckets.

    The native output buckets by `date_trunc(<timespan>, @timestamp)`: @timestamp is when a session started, so the
    sessions of one burst (a surge of timeouts, each 5 minutes to hours long) fall into different buckets and the
    rule never fires. An Elastic Security rule already limits its search to `event.ingested` in its look-back,
    which is the window (as in a threshold rule); only the templates of the aggregation step change.
    """
    from sigma.backends.elasticsearch import ESQLBackend

    class LookbackESQLBackend(ESQLBackend):
        event_count_aggregation_expression = {"stats": "| stats event_count=count(){fields}{groupby}"}
        value_count_aggregation_expression = {"stats": "| stats value_count=count_distinct({field}){fields}{groupby}"}
        temporal_aggregation_expression = {
            "stats": "| stats event_type_count=count_distinct(event_type){fields}{groupby}"
        }
        groupby_expression_nofield = {"stats": ""}
        groupby_expression = {"stats": " by {fields}"}
        groupby_field_expression = {"stats": "{field}"}
        groupby_field_expression_joiner = {"stats": ", "}

    return LookbackESQLBackend(pipeline(), index_names=[INDEX], schedule_interval=SCHEDULE_MINUTES)


def esql_rules(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Elastic Security ES|QL rules of every correlation rule, the temporal one too (pySigma `siem_rule_ndjson`)."""
    by_id = {s["id"]: s for s in specs}
    with _offline_attack_catalogue():
        converted = _esql_backend().convert(load_rules(), "siem_rule_ndjson")
    out = []
    for rule in converted:
        if not isinstance(rule, dict):  # a base rule (`generate: true`), left unfinalized: see _correlations_only
            continue
        spec = by_id[rule["rule_id"]]
        window = lookback(timespan_seconds(spec["timespan"]))
        suppress = SCHEDULE_MINUTES * 60 + timespan_seconds(spec["timespan"]) + write_delay_seconds()
        rule.update(TIMESTAMP_OVERRIDE, **window, tags=["esa-enricher", "sigma"])
        # A burst stays in the look-back of several runs, and ES|QL rules do not deduplicate aggregated rows:
        # one alert per group for as long as one look-back lasts.
        rule["alert_suppression"] = {
            "group_by": spec["group_by"],
            "duration": {"value": suppress, "unit": "s"},
            "missing_fields_strategy": "suppress",
        }
        out.append(rule)
    return out


def splunk_queries() -> list[tuple[str, str]]:
    """(rule name, SPL) for every base and correlation rule (pySigma SplunkBackend, native)."""
    from sigma.backends.splunk import SplunkBackend
    from sigma.collection import SigmaCollection

    out = [(r.name, SplunkBackend(pipeline(splunk=True)).convert(SigmaCollection([r]))[0]) for r in base_rules()]
    return out + _correlations_only(SplunkBackend(pipeline(splunk=True)))


def esql_queries() -> list[tuple[str, str]]:
    """(rule name, ES|QL) for every correlation rule (pySigma ESQLBackend, native; not run on the lab node)."""
    from sigma.backends.elasticsearch import ESQLBackend

    return _correlations_only(ESQLBackend(pipeline()))


def _correlations_only(backend: Any) -> list[tuple[str, str]]:
    """(rule name, query) of the correlation rules converted by `backend` from the whole collection.

    The correlations carry `generate: true`, so the backend also emits their base rules, one output per rule in
    collection order; pySigma 1.5 leaves those unfinalized (a bare ES|QL `where` condition): they are dropped.
    """
    from sigma.correlations import SigmaCorrelationRule

    collection = load_rules()
    converted = backend.convert(collection)
    pairs = zip(collection.rules, converted, strict=True)
    return [(str(r.name), q) for r, q in pairs if isinstance(r, SigmaCorrelationRule)]


def _text(pairs: list[tuple[str, str]] | dict[str, str], comment: str, end: str = "") -> str:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return "".join(f"{comment} {name}{end}\n{query}\n\n" for name, query in items)


def _ndjson(rules: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rules)


def render() -> dict[str, str]:
    """Every output file name → its content, converted afresh."""
    specs = correlation_specs()
    ndjson = [*siem_rules(), *threshold_rules(specs)]
    return {
        "elasticsearch-lucene.txt": _text(lucene_queries(), "#"),
        "elasticsearch-correlations.json": json.dumps(specs, indent=2, sort_keys=True) + "\n",
        "elastic-security-rules.ndjson": _ndjson(ndjson),
        "elastic-security-esql-rules.ndjson": _ndjson(esql_rules(specs)),
        "elasticsearch-esql.txt": _text(esql_queries(), "//"),
        "splunk.spl": _text(splunk_queries(), "```", " ```"),
    }


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write the pipelines and the outputs; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for path, text in pipeline_texts().items():
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    for name, text in render().items():
        (out_dir / name).write_text(text, encoding="utf-8")
        paths.append(out_dir / name)
    return paths


def stale(out_dir: Path = OUT_DIR) -> list[str]:
    """Names of the committed pipelines and outputs that differ from a fresh build (or are missing)."""
    out = [p.name for p, text in pipeline_texts().items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    for name, text in render().items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m enricher.assets.sigma [--check]`."""
    ap = argparse.ArgumentParser(prog="python -m enricher.assets.sigma", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when pipelines/sigma/out/ is not up to date")
    a = ap.parse_args(argv)
    issues = validate()
    if issues:
        sys.stderr.write("\n".join(issues) + "\n")
        return 1
    if a.check:
        diff = stale()
        sys.stderr.write(f"out of date: {', '.join(diff)}\n" if diff else "up to date\n")
        return 1 if diff else 0
    for path in write():
        sys.stderr.write(f"wrote {path.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
