"""The Splunk add-on (pipelines/splunk/TA-esa-enricher): up to date, mapped onto real document fields, accepted by
Splunk AppInspect, and its correlation searches the same as sigma-cli's Splunk conversion documented in docs/sigma.md.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from enricher.assets import sigma, splunk
from enricher.core import fields
from enricher.core.documents import _ACTIONS
from tests.goldens import all_expected_documents, array_paths

ROOT = sigma.ROOT
BIN = Path(sys.executable).parent


def parse_conf(text: str) -> dict[str, dict[str, str]]:
    """A Splunk .conf file: stanza -> key -> value (continuation lines joined, comments skipped)."""
    out: dict[str, dict[str, str]] = {}
    stanza: dict[str, str] = out.setdefault("default", {})
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("["):
            stanza = out.setdefault(line.strip()[1:-1], {})
            continue
        while line.endswith("\\"):
            line = line[:-1] + "\n" + next(lines)
        key, _, value = line.partition("=")
        stanza[key.strip()] = value.strip()
    return out


def _golden_documents() -> list[dict[str, Any]]:
    return all_expected_documents()


def test_committed_app_equals_a_fresh_build() -> None:
    assert splunk.stale() == [], "run: esa-enricher assets splunk"


def test_the_arrays_of_the_golden_documents_are_arrays_in_the_field_list() -> None:
    """(tests/unit/test_es_assets.py checks the same over every sample and a synthetic corpus.)"""
    found: set[str] = set()
    for doc in _golden_documents():
        array_paths(doc, "", found)
    assert found and found <= fields.array_paths()


def test_splunk_names_mark_each_array_on_the_path() -> None:
    assert fields.splunk_name("source.ip") == "source.ip"
    assert fields.splunk_name("email.to.address") == "email.to.address{}"
    assert fields.splunk_name("esa.deliveries.rids") == "esa.deliveries{}.rids{}"


def test_cim_fields_read_document_fields() -> None:
    single, multi = splunk.cim_fields()
    assert set(single) | set(multi) == set(fields.by_cim())
    # A FIELDALIAS copies one value: its source is inside no array; an EVAL copies the values of one array.
    assert "{}" not in "".join(single.values())
    assert all(name.count("{}") == 1 for name in multi.values())
    assert {"src", "dest", "signature", "src_user"} <= set(single) and {"recipient", "file_hash"} <= set(multi)
    props = (splunk.APP_DIR / "default" / "props.conf").read_text()
    assert "FIELDALIAS-src = source.ip AS src\n" in props and "EVAL-recipient = 'email.to.address{}'\n" in props


def test_every_disposition_has_one_cim_action() -> None:
    dispositions = set(_ACTIONS) | {
        d["esa"]["disposition"] for d in _golden_documents() if "disposition" in d.get("esa", {})
    }
    assert not set(splunk.CIM_ACTIONS) & splunk.CIM_ACTION_UNKNOWN
    assert dispositions <= set(splunk.CIM_ACTIONS) | splunk.CIM_ACTION_UNKNOWN
    assert set(splunk.CIM_ACTIONS.values()) <= {"delivered", "blocked", "quarantined", "deleted", "deferred"}


def test_the_splunk_pipeline_names_exactly_the_array_fields_the_rules_use() -> None:
    base = yaml.safe_load(sigma.PIPELINE.read_text(encoding="utf-8"))
    targets = next(t["mapping"] for t in base["transformations"] if t["type"] == "field_name_mapping").values()
    extra = yaml.safe_load(sigma.SPLUNK_PIPELINE.read_text(encoding="utf-8"))
    mapping = next(t["mapping"] for t in extra["transformations"] if t["type"] == "field_name_mapping")
    assert mapping == {f: fields.splunk_name(f) for f in targets if fields.splunk_name(f) != f}
    assert mapping == {
        "esa.envelope.recipients.address": "esa.envelope.recipients{}.address",
        "esa.envelope.rejected_recipients.address": "esa.envelope.rejected_recipients{}.address",
    }


def test_props_and_eventtypes_select_the_sourcetype_of_the_searches() -> None:
    app = splunk.APP_DIR / "default"
    props = parse_conf((app / "props.conf").read_text())
    st = splunk.sourcetype()
    assert set(props) == {"default", st} and props["default"] == {}
    assert props[st]["KV_MODE"] == "json" and "INDEXED_EXTRACTIONS" not in props[st]
    from enricher.config import Config

    # The largest document the enriched-sessions topic carries by default (larger ones go to the dead letters).
    assert int(props[st]["TRUNCATE"]) >= Config().kafka.sessions_max_bytes
    for name, stanza in parse_conf((app / "eventtypes.conf").read_text()).items():
        assert name == "default" or stanza["search"].startswith(f'sourcetype="{st}"')
    tags = parse_conf((app / "tags.conf").read_text())
    assert all("email" in tags[f"eventtype={e}"] for e in splunk.EVENTTYPES)


def test_correlation_searches_are_scheduled_and_disabled() -> None:
    searches = parse_conf((splunk.APP_DIR / "default" / "savedsearches.conf").read_text())
    searches.pop("default")
    _, corr = sigma._split(sigma.load_rules())  # noqa: SLF001
    assert len(corr) == 6 and set(searches) == {r.title for r in corr}
    for rule in corr:
        s = searches[rule.title]
        assert (s["disabled"], s["enableSched"], s["cron_schedule"]) == ("1", "1", "*/5 * * * *")
        span = splunk._minutes(rule.timespan.spec)  # noqa: SLF001
        assert int(s["dispatch.earliest_time"][1:-3]) >= 2 * span + splunk.LONGEST_SESSION_MINUTES
        assert s["alert.suppress.fields"].split(",")[0] == "_time" and f"span={rule.timespan.spec}" in s["search"]
        assert s["search"].lstrip("| ").startswith(("sourcetype=", "multisearch"))


def _documented_splunk_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "sigma.md").read_text(encoding="utf-8")
    return [shlex.split(line) for line in text.splitlines() if line.startswith("sigma convert -t splunk ")]


def test_sigma_cli_runs_the_documented_splunk_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from sigma.cli.convert import convert  # the command `sigma convert` runs (in-process: no interpreter start)

    monkeypatch.chdir(ROOT)
    commands = _documented_splunk_commands()
    assert len(commands) == 2, "docs/sigma.md documents the SPL and the savedsearches conversion"
    outputs = {}
    for argv in commands:
        result = CliRunner().invoke(convert, argv[2:])
        assert result.exit_code == 0, (argv, result.output)
        outputs["savedsearches" if "savedsearches" in argv else "spl"] = result.stdout
    # The plain SPL: every correlation query of out/splunk.spl.
    _, corr = sigma._split(sigma.load_rules())  # noqa: SLF001
    committed = dict(sigma.splunk_queries())
    assert all(committed[r.name] in outputs["spl"] for r in corr)
    assert all(q in (sigma.OUT_DIR / "splunk.spl").read_text() for q in committed.values())
    # savedsearches: the add-on's stanzas are sigma-cli's, plus the schedule and alert settings.
    cli = parse_conf(outputs["savedsearches"])
    app = parse_conf((splunk.APP_DIR / "default" / "savedsearches.conf").read_text())
    assert set(app) - {"default"} == {r.title for r in corr}
    for rule in corr:
        assert {k: app[rule.title][k] for k in ("search", "description")} == {
            k: cli[rule.title][k] for k in ("search", "description")
        }


def test_appinspect_passes_the_packaged_app(tmp_path: Path) -> None:
    pkg = splunk.package(tmp_path / "TA-esa-enricher.tar.gz")
    with tarfile.open(pkg) as tar:
        names = tar.getnames()
    assert names[0] == "TA-esa-enricher" and "TA-esa-enricher/default/app.conf" in names
    assert not any("/local" in n or "/." in n for n in names)
    out = tmp_path / "appinspect.json"
    cmd = [str(BIN / "splunk-appinspect"), "inspect", str(pkg), "--skip-trusted-libraries-update"]
    run = subprocess.run(
        [*cmd, "--data-format", "json", "--output-file", str(out)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    problems = [
        (c["name"], c["result"], [m.get("message") for m in c["messages"]])
        for r in report["reports"]
        for g in r["groups"]
        for c in g["checks"]
        if c["result"] not in ("success", "not_applicable")
    ]
    assert problems == []  # no failure, error, future failure, warning, nor skipped check (all 252 ran)
    summary = report["summary"]
    assert summary["success"] > 80 and summary["failure"] == summary["error"] == 0
