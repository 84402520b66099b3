"""The Sigma rules: valid for pySigma, mapped onto real document fields, and the committed conversions up to date.

The conversions run offline (no ATT&CK download: see `enricher.assets.sigma._offline_attack_catalogue`). The
converted queries run on a real Elasticsearch in tests/integration/test_sigma_es.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from enricher.assets import sigma, sigma_es
from enricher.config import Config
from enricher.core import fields
from enricher.edges.sinks.elasticsearch.assets import mapped_fields

CORRELATIONS = sigma.OUT_DIR / "elasticsearch-correlations.json"


def test_rules_pass_every_pysigma_validator() -> None:
    assert sigma.validate() == []


def test_committed_outputs_equal_a_fresh_conversion() -> None:
    assert sigma.stale() == [], "run: python -m enricher.assets.sigma"


def test_conversion_leaves_the_users_attack_cache_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    from sigma.data import mitre_attack

    monkeypatch.setattr(mitre_attack, "_DEFAULT_CACHE_DIR", tmp_path / "cache")
    sigma.siem_rules()
    assert not (tmp_path / "cache").exists()
    assert mitre_attack._custom_url is None and mitre_attack._custom_cache_dir is None  # noqa: SLF001 - restored


def test_the_pipeline_maps_the_sigma_names_of_the_field_list() -> None:
    doc = yaml.safe_load(sigma.PIPELINE.read_text(encoding="utf-8"))
    by_id = {t["id"]: t for t in doc["transformations"]}
    mapping = by_id["esa_field_mapping"]["mapping"]
    assert mapping == fields.by_sigma() and set(mapping.values()) <= mapped_fields()
    assert set(mapping) == set(by_id["esa_strict_fields"]["field_name_conditions"][0]["fields"])
    assert mapping["src_ip"] == "source.ip" and mapping["recipient"] == "esa.envelope.recipients.address"


def test_a_rule_on_an_unmapped_field_is_refused() -> None:
    from sigma.backends.elasticsearch import LuceneBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaTransformationError

    rule = """
title: probe
id: 5b8b4f1e-0e36-4e0c-9a0e-2f2d9a7c0001
status: test
logsource: {product: cisco_esa, service: esa_enricher}
detection:
  selection: {no_such_field: x}
  condition: selection
"""
    with pytest.raises(SigmaTransformationError, match="not mapped"):
        LuceneBackend(sigma.pipeline()).convert(SigmaCollection.from_yaml(rule))


def test_correlations_cover_the_four_detections() -> None:
    specs = {s["name"]: s for s in json.loads(CORRELATIONS.read_text(encoding="utf-8"))}
    assert {s["type"] for s in specs.values()} == {"event_count", "value_count", "temporal"}
    assert specs["esa_connection_lost_burst_single_ip"]["group_by"] == ["source.ip"]
    assert specs["esa_connection_lost_burst_many_ips"]["condition"]["field"] == "source.ip"
    assert specs["esa_sender_quit_probing_rejected"]["condition"]["field"] == "esa.envelope.rejected_recipients.address"
    assert specs["esa_inbound_timeout_surge"]["group_by"] == ["observer.hostname"]
    assert len(specs["esa_hat_reject_then_accepted"]["queries"]) == 2
    for s in specs.values():
        assert set(s["group_by"]) | {s["condition"].get("field", "source.ip")} <= mapped_fields()


def test_elastic_security_rules_are_importable_shapes() -> None:
    lines = (sigma.OUT_DIR / "elastic-security-rules.ndjson").read_text(encoding="utf-8").splitlines()
    rules = [json.loads(x) for x in lines]
    assert len({r["rule_id"] for r in rules}) == len(rules) == 10  # 5 base rules, 5 thresholds
    for r in rules:
        assert r["severity"] in {"low", "medium", "high", "critical"} and r["language"] == "lucene"
        assert r["index"] == ["esa-sessions"] and r["type"] in {"query", "threshold"}
        # Selected by write time (the sink's event.ingested), falling back to @timestamp where it is missing.
        assert (r["timestamp_override"], r["timestamp_override_fallback_disabled"]) == ("event.ingested", False)
        assert r["timestamp_override"] in mapped_fields()
    thresholds = [r for r in rules if r["type"] == "threshold"]
    assert len(thresholds) == 5  # every event_count / value_count correlation; temporal has no threshold form


def test_splunk_uses_json_array_field_names() -> None:
    spl = (sigma.OUT_DIR / "splunk.spl").read_text(encoding="utf-8")
    assert 'dc("esa.envelope.rejected_recipients{}.address")' in spl
    assert "| bin _time span=10m" in spl and "| multisearch" in spl


SPEC: dict[str, Any] = {
    "type": "value_count",
    "queries": {"r": "abort_reason:sender_quit"},
    "group_by": ["source.ip", "observer.hostname"],
    "timespan": "1h",
    "condition": {"gte": 3, "field": "esa.envelope.recipients.address"},
}


def test_correlation_search_shape() -> None:
    body = sigma_es.correlation_search(SPEC, {"gte": "now-2h"})
    assert body["query"]["bool"]["filter"] == [
        {"query_string": {"query": "abort_reason:sender_quit", "analyze_wildcard": True}},
        {"range": {"@timestamp": {"gte": "now-2h"}}},
    ]
    g0 = body["aggs"]["group_0"]
    assert g0["terms"]["field"] == "source.ip"
    window = g0["aggs"]["group_1"]["aggs"]["window"]
    assert window["date_histogram"]["fixed_interval"] == "1h"
    assert window["aggs"]["value_count"]["cardinality"]["field"] == "esa.envelope.recipients.address"


def test_evaluate_applies_the_condition_per_window() -> None:
    def window(key: str, n: int) -> dict[str, Any]:
        return {"key_as_string": key, "doc_count": n, "value_count": {"value": n}}

    response = {
        "aggregations": {
            "group_0": {
                "buckets": [
                    {
                        "key": "192.0.2.1",
                        "group_1": {
                            "buckets": [
                                {
                                    "key": "esa1",
                                    "window": {
                                        "buckets": [
                                            window("2026-11-28T10:00:00.000Z", 2),
                                            window("2026-11-28T11:00:00.000Z", 3),
                                        ]
                                    },
                                },
                            ]
                        },
                    },
                ]
            }
        }
    }
    assert sigma_es.evaluate(SPEC, response) == [
        {
            "group": {"source.ip": "192.0.2.1", "observer.hostname": "esa1"},
            "window_start": "2026-11-28T11:00:00.000Z",
            "value": 3,
        }
    ]


def test_a_timespan_without_fixed_length_is_refused() -> None:
    with pytest.raises(ValueError, match="fixed length"):
        sigma_es.fixed_interval("1M")


def _ndjson(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (sigma.OUT_DIR / name).read_text(encoding="utf-8").splitlines()]


# Look-back in seconds: 300 (the interval) + the correlation's timespan + 7 (flush 2 s + checkpoint 5 s by default).
LOOKBACK = {
    "esa_connection_lost_burst_single_ip": 907,
    "esa_connection_lost_burst_many_ips": 907,
    "esa_sender_quit_probing_accepted": 3907,
    "esa_sender_quit_probing_rejected": 3907,
    "esa_inbound_timeout_surge": 1207,
    "esa_hat_reject_then_accepted": 3907,
}


def test_every_elastic_rule_looks_back_an_interval_its_timespan_and_the_write_delay() -> None:
    cfg = Config()
    assert (
        sigma.write_delay_seconds()
        >= cfg.elasticsearch.flush_interval_seconds + cfg.service.checkpoint_interval_seconds
    )
    names = {s["id"]: s["name"] for s in json.loads(CORRELATIONS.read_text(encoding="utf-8"))}
    rules = _ndjson("elastic-security-rules.ndjson") + _ndjson("elastic-security-esql-rules.ndjson")
    assert len(rules) == 16
    for r in rules:
        seconds = LOOKBACK[names[r["rule_id"]]] if r["rule_id"] in names else 307
        assert (r["from"], r["interval"], r["to"]) == (f"now-{seconds}s", "5m", "now"), r["name"]
        assert r["meta"]["from"] == f"{seconds - 300}s"
        assert (r["timestamp_override"], r["timestamp_override_fallback_disabled"]) == ("event.ingested", False)


def test_esql_rules_cover_every_correlation_over_the_lookback() -> None:
    specs = {s["id"]: s for s in json.loads(CORRELATIONS.read_text(encoding="utf-8"))}
    rules = _ndjson("elastic-security-esql-rules.ndjson")
    assert {r["rule_id"] for r in rules} == set(specs) and len(rules) == 6
    for r in rules:
        spec = specs[r["rule_id"]]
        assert (r["type"], r["language"]) == ("esql", "esql")
        assert r["query"].startswith("from esa-sessions ")
        # No date_trunc(@timestamp) bucket: @timestamp is a session's start; the look-back is the window.
        assert "date_trunc" not in r["query"] and "@timestamp" not in r["query"]
        stats = next(line for line in r["query"].splitlines() if line.startswith("| stats"))
        assert stats.endswith(" by " + ", ".join(spec["group_by"])), stats
        # What the integration test replays as the spec's aggregation: same count, field and condition.
        cond = spec["condition"] or {"gte": len(spec["queries"])}
        count = {
            "event_count": "event_count=count()",
            "value_count": f"value_count=count_distinct({cond.get('field')})",
            "temporal": "event_type_count=count_distinct(event_type)",
        }[spec["type"]]
        assert stats.startswith(f"| stats {count}"), stats
        assert r["query"].endswith(f" >= {cond['gte']}"), r["query"]
        assert r["alert_suppression"]["group_by"] == spec["group_by"]
        assert r["alert_suppression"]["duration"] == {"value": LOOKBACK[spec["name"]], "unit": "s"}
    temporal = next(r for r in rules if specs[r["rule_id"]]["type"] == "temporal")
    assert "count_distinct(event_type)" in temporal["query"] and "where event_type_count >= 2" in temporal["query"]


def _documented_commands() -> list[list[str]]:
    text = (sigma.ROOT / "docs" / "sigma.md").read_text(encoding="utf-8")
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("sigma convert ")]


def _blocks(path: Path, comment: str) -> set[str]:
    """The queries of a committed text conversion (blocks separated by blank lines, without their name line)."""
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    return {"\n".join(x for x in b.splitlines() if not x.startswith(comment)) for b in blocks}


def test_the_documented_sigma_cli_commands_print_the_committed_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from sigma.cli.convert import convert  # the command `sigma convert` runs

    monkeypatch.chdir(sigma.ROOT)
    commands = _documented_commands()
    by_target = {c[c.index("-t") + 1]: c for c in commands}
    assert {"lucene", "esql"} <= set(by_target), commands
    outputs = {}
    for cmd in commands:
        assert cmd[0] == "convert"
        result = CliRunner().invoke(convert, cmd[1:])
        assert result.exit_code == 0, (cmd, result.output)
        outputs[cmd[cmd.index("-t") + 1]] = result.stdout
    lucene = {x for x in outputs["lucene"].splitlines() if x}
    assert lucene == _blocks(sigma.OUT_DIR / "elasticsearch-lucene.txt", "#")
    esql = outputs["esql"].strip().split("\n\n")
    assert _blocks(sigma.OUT_DIR / "elasticsearch-esql.txt", "//") <= set(esql)  # the correlations
    assert len(esql) == len(sigma.load_rules().rules)  # and, before each, its base rules (generate: true)
