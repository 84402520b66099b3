"""Build the Splunk add-on `pipelines/splunk/TA-esa-enricher` (docs/splunk.md) and package it for Splunk.

`python -m enricher.assets.splunk` rewrites the generated files of the app, `--check` exits 1 when the committed
ones differ from a fresh build, `--package FILE` writes the app as the .tar.gz Splunk installs. The generated files:
`app.conf` (version), `props.conf` (the CIM aliases, from the document fields they read), `eventtypes.conf` +
`tags.conf` (CIM Email datasets), `savedsearches.conf` (pySigma SplunkBackend `savedsearches` output of the
correlation rules, scheduled and disabled). Hand-written: README.md, metadata/default.meta. Needs the `sigma` extra.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

from enricher import __version__
from enricher.assets import sigma

APP_NAME = "TA-esa-enricher"
APP_DIR = sigma.ROOT / "pipelines" / "splunk" / APP_NAME

# Fields whose value is a JSON array in the documents (a prefix of a path: an array of objects). Splunk's JSON
# extraction names what is inside an array with `{}` (`email.to.address{}`, `esa.envelope.recipients{}.address`);
# tests/unit/test_splunk_app.py checks this set against every array in the golden documents.
ARRAY_FIELDS = frozenset(
    {
        "email.attachments", "email.from.address", "email.to.address", "esa.abort.evidence.rid", "esa.amp_files",
        "esa.amp_not_uploaded", "esa.auth.dkim", "esa.bounces", "esa.bounces.rid", "esa.children", "esa.delays",
        "esa.deliveries", "esa.deliveries.rids", "esa.envelope.recipients", "esa.envelope.rejected_recipients",
        "esa.files", "esa.pending", "esa.pending.rids", "esa.policies", "esa.raw", "esa.reroutes", "esa.responses",
        "esa.responses.rids", "esa.scan_issues", "esa.sdr", "event.category", "event.type", "related.hash",
        "related.hosts", "related.ip", "related.user",
    }
)

# CIM Email field -> the document field it is (a FIELDALIAS). The document fields must be mapped fields
# (pipelines/elasticsearch/esa-sessions-mappings.json, checked by the unit test).
CIM_ALIASES = {
    "src": "source.ip",
    "src_user": "esa.envelope.from",
    "dest": "destination.ip",
    "message_id": "email.message_id",
    "internal_message_id": "email.local_id",
    "subject": "email.subject",
    "protocol": "network.protocol",
    "user": "user.name",
    "size": "esa.size",
    "signature": "abort_reason",
    "signature_extra": "abort_layer",
    "filter_action": "esa.disposition",
    "dvc": "observer.hostname",
}
# CIM Email fields that are multivalue (a JSON array of strings in the documents): an EVAL copies the array.
CIM_ARRAYS = {
    "recipient": "email.to.address",
    "file_name": "email.attachments.file.name",
    "file_hash": "email.attachments.file.hash.sha256",
}
# esa.disposition (enricher/core/classify/rules.py) -> CIM Email `action` (prescribed: delivered, blocked, quarantined,
# deleted; `deferred` for mail still on its way).
CIM_ACTIONS = {
    "delivered": "delivered",
    "released": "delivered",
    "possible_delivery": "delivered",
    "queued": "delivered",
    "done": "delivered",
    "quarantined": "quarantined",
    "deleted": "deleted",
    "dropped": "blocked",
    "bounced": "blocked",
    "rejected": "blocked",
    "aborted": "blocked",
    "not_delivered": "blocked",
    "auth_failed": "blocked",
    "tls_failed": "blocked",
    "killed": "blocked",
    "delayed": "deferred",
    "in_progress": "deferred",
}
# Dispositions that say nothing about what happened to mail (a connection that closed, was lost or timed out, an
# ending not known): `action = unknown`. Every disposition is in exactly one of the two (checked by a unit test).
CIM_ACTION_UNKNOWN = frozenset({"closed", "failed", "lost", "timed_out", "unknown"})
# Eventtype -> (extra search terms after the sourcetype, CIM tags). A message is a delivery; a connection the
# gateway refused, or a message a policy stopped, is also a filtering event.
EVENTTYPES = {
    "esa_enricher_message": ('esa.session.kind="message"', ("email", "delivery")),
    "esa_enricher_connection": ('esa.session.kind="connection"', ("email", "filter")),
    "esa_enricher_policy": ('abort_layer="policy"', ("email", "filter")),
}
# The largest document the enriched-sessions topic carries is ~1 MB (kafka.sessions_max_bytes): Splunk's default
# TRUNCATE (10,000 bytes) would cut a long session's esa.raw and leave invalid JSON behind.
TRUNCATE_BYTES = 2 * 1024 * 1024
# A session is written when it ends, while _time is its start (`@timestamp`): a search over the last `timespan`
# of _time would never see a burst of long sessions (an inbound timeout lasts 300 s). Each search looks back over
# two windows (the one being completed and the one before), the longest session it must still count (2 h: longer
# ones are written after their window has left the look-back), one run interval and the enricher's write delay
# (sigma.write_delay_seconds, in whole minutes), and alerts once per window and group (suppression over the same
# look-back).
LONGEST_SESSION_MINUTES = 120
_SEVERITY = {"informational": 2, "low": 3, "medium": 4, "high": 5, "critical": 6}
_TIMESPAN_MINUTES = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}


def sourcetype() -> str:
    """The sourcetype of the session documents, as pipelines/sigma/pipeline-splunk.yml adds it to every search."""
    p = yaml.safe_load(sigma.SPLUNK_PIPELINE.read_text(encoding="utf-8"))
    for t in p["transformations"]:
        if t["type"] == "add_condition" and "sourcetype" in t["conditions"]:
            return str(t["conditions"]["sourcetype"])
    raise ValueError(f"{sigma.SPLUNK_PIPELINE} adds no sourcetype condition")


def splunk_name(field: str) -> str:
    """The name Splunk's JSON extraction gives a document field (`{}` after each array on its path)."""
    parts = field.split(".")
    out = ""
    for i, part in enumerate(parts):
        out += ("." if i else "") + part
        if ".".join(parts[: i + 1]) in ARRAY_FIELDS:
            out += "{}"
    return out


def _settings(pairs: dict[str, Any]) -> str:
    return "".join(f"{k} = {v}\n" for k, v in pairs.items())


def props_conf() -> str:
    """props.conf: line breaking, timestamp, search-time JSON extraction and the CIM Email aliases."""
    head = f"""\
# Generated by `esa-enricher assets splunk` (enricher/assets/splunk.py): edit there, not here.
# One esa-enricher session document (JSON, one per line) per event; docs/splunk.md explains each choice.
[{sourcetype()}]
# Each document is one line (NDJSON from a file, the HEC /raw endpoint, Splunk Connect for Kafka with a newline
# line breaker): no line merging. The event breaker lets a universal forwarder spread a file over indexers.
SHOULD_LINEMERGE = false
LINE_BREAKER = ([\\r\\n]+)
EVENT_BREAKER_ENABLE = true
EVENT_BREAKER = ([\\r\\n]+)
# esa.raw holds every raw line of the session: larger than Splunk's 10,000-byte default for long sessions.
TRUNCATE = {TRUNCATE_BYTES}
# _time is @timestamp, the session's start (ISO 8601, UTC, milliseconds, `Z`), the document's first key.
TIME_PREFIX = \\{{"@timestamp":"
TIME_FORMAT = %Y-%m-%dT%H:%M:%S.%3NZ
MAX_TIMESTAMP_LOOKAHEAD = 24
TZ = UTC
# Search-time JSON extraction (KV_MODE = json), not INDEXED_EXTRACTIONS: it works the same for every way in
# (file monitor, HEC /raw or /event, Splunk Connect for Kafka), costs no index space (esa.raw would be indexed
# as a field), and the CIM data model builds its own summaries for the fields it needs.
KV_MODE = json
# The punctuation of a JSON document says nothing: do not index it.
ANNOTATE_PUNCT = false
CHARSET = UTF-8
category = Email
pulldown_type = true
description = esa-enricher session documents (Cisco Secure Email Gateway mail_logs, one document per message)

# CIM Email data model
EVAL-vendor_product = 'observer.vendor'." ".'observer.product'
EVAL-duration = 'event.duration'/1000000000
"""
    lines = [head]
    for cim, field in sorted(CIM_ALIASES.items()):
        lines.append(f"FIELDALIAS-{cim} = {splunk_name(field)} AS {cim}\n")
    for cim, field in sorted(CIM_ARRAYS.items()):
        lines.append(f"EVAL-{cim} = '{splunk_name(field)}'\n")
    recipients = splunk_name(CIM_ARRAYS["recipient"])
    lines.append(f"EVAL-recipient_count = mvcount('{recipients}')\n")
    lines.append(
        f"EVAL-recipient_domain = mvdedup(mvmap('{recipients}', lower(replace('{recipients}', \"^.*@\", \"\"))))\n"
    )
    lines.append(f'EVAL-src_user_domain = lower(replace(\'{CIM_ALIASES["src_user"]}\', "^.*@", ""))\n')
    cases = ", ".join(f'\'esa.disposition\'="{k}", "{v}"' for k, v in CIM_ACTIONS.items())
    lines.append(f'EVAL-action = case({cases}, true(), "unknown")\n')
    return "".join(lines)


def eventtypes_conf() -> str:
    """eventtypes.conf: the session documents and the CIM Email datasets they belong to."""
    out = ["# Generated by `esa-enricher assets splunk` (enricher/assets/splunk.py).\n"]
    out.append(f'[esa_enricher_session]\nsearch = sourcetype="{sourcetype()}"\n')
    for name, (terms, _) in EVENTTYPES.items():
        out.append(f'\n[{name}]\nsearch = sourcetype="{sourcetype()}" {terms}\n')
    return "".join(out)


def tags_conf() -> str:
    """tags.conf: the CIM Email tags of each eventtype."""
    out = ["# Generated by `esa-enricher assets splunk` (enricher/assets/splunk.py): CIM Email tags.\n"]
    for name, (_, tags) in EVENTTYPES.items():
        out.append(f"\n[eventtype={name}]\n" + "".join(f"{t} = enabled\n" for t in tags))
    return "".join(out)


def _minutes(timespan: str) -> int:
    return int(int(timespan[:-1]) * _TIMESPAN_MINUTES[timespan[-1]])


def _query_settings(rule: Any) -> dict[str, str]:
    """Per search: scheduled every 5 minutes, disabled until an admin enables it, one alert per window and group."""
    level = rule.level.name.lower() if rule.level else "low"
    write_delay = math.ceil(sigma.write_delay_seconds() / 60)
    lookback = 2 * _minutes(rule.timespan.spec) + LONGEST_SESSION_MINUTES + sigma.SCHEDULE_MINUTES + write_delay
    return {
        "disabled": "1",
        "enableSched": "1",
        "cron_schedule": f"*/{sigma.SCHEDULE_MINUTES} * * * *",
        "dispatch.earliest_time": f"-{lookback}m@m",
        "dispatch.latest_time": "now",
        "counttype": "number of events",
        "relation": "greater than",
        "quantity": "0",
        "alert.track": "1",
        "alert.severity": str(_SEVERITY.get(level, 3)),
        "alert.digest_mode": "0",
        # The same window is seen by every run during the look-back: alert once per window and group.
        "alert.suppress": "1",
        "alert.suppress.fields": ",".join(["_time", *(rule.group_by or [])]),
        "alert.suppress.period": f"{lookback}m",
    }


def savedsearches_conf() -> str:
    """savedsearches.conf: pySigma SplunkBackend `savedsearches` stanzas of every correlation rule.

    The base rules are not saved searches of their own (informational building blocks). pySigma's `[default]`
    stanza (`dispatch.earliest_time = -30d`) is left out: a `[default]` in an app's savedsearches.conf applies to
    every saved search of the instance that does not set the value, and each search here sets its own.
    """
    from sigma.backends.splunk import SplunkBackend

    fmt = "savedsearches"
    backend = SplunkBackend(sigma.pipeline(splunk=True), query_settings=_query_settings)
    backend.init_processing_pipeline(fmt)
    collection = sigma.load_rules()
    collection.resolve_rule_references()
    base, corr = sigma._split(collection)  # noqa: SLF001 - the same split sigma.py's outputs use
    for rule in base:  # a correlation reads its base rules' conversions (stored on them); their stanzas are dropped
        backend.convert_rule(rule, fmt)
    stanzas = [q for rule in corr for q in backend.convert_correlation_rule(rule, fmt)]
    return (
        "# Generated by `esa-enricher assets splunk` from pipelines/sigma/rules (pySigma SplunkBackend).\n"
        + "\n".join(stanzas)
        + "\n"
    )


def app_conf() -> str:
    """app.conf: the add-on's identity, version = the package's."""
    return f"""\
# Generated by `esa-enricher assets splunk` (enricher/assets/splunk.py): the version is esa-enricher's.
[install]
is_configured = false
state = enabled
build = 1

[launcher]
author = esa-enricher
version = {__version__}
description = Field extraction, CIM Email mapping and correlation searches for esa-enricher session documents (Cisco Secure Email Gateway).

[package]
id = {APP_NAME}
check_for_updates = false

[ui]
is_visible = false
label = esa-enricher Add-on

[id]
name = {APP_NAME}
version = {__version__}
"""


def app_manifest() -> str:
    """app.manifest (schema 2.0.0): what AppInspect and Splunk's packaging tools read about the add-on."""
    project = tomllib.loads((sigma.ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    manifest = {
        "schemaVersion": "2.0.0",
        "info": {
            "title": "esa-enricher Add-on",
            "id": {"group": None, "name": APP_NAME, "version": __version__},
            "author": [{"name": "esa-enricher", "email": None, "company": None}],
            "releaseDate": None,
            "description": project["description"],
            "classification": {
                "intendedAudience": "Security",
                "categories": ["Security, Fraud & Compliance"],
                "developmentStatus": "Production/Stable",
            },
            "commonInformationModels": {"Email": ">=4.0.0"},
            "license": {"name": project["license"], "text": None, "uri": None},
            "privacyPolicy": {"name": None, "text": None, "uri": None},
            "releaseNotes": {"name": None, "text": None, "uri": None},
        },
        "dependencies": None,
        "tasks": None,
        "inputGroups": None,
        "incompatibleApps": None,
        "platformRequirements": None,
        "supportedDeployments": ["_standalone", "_distributed", "_search_head_clustering"],
        "targetWorkloads": ["_search_heads", "_indexers"],
    }
    return json.dumps(manifest, indent=2) + "\n"


def render() -> dict[str, str]:
    """Every generated file of the app (path relative to the app directory) -> its content."""
    return {
        "app.manifest": app_manifest(),
        "default/app.conf": app_conf(),
        "default/props.conf": props_conf(),
        "default/eventtypes.conf": eventtypes_conf(),
        "default/tags.conf": tags_conf(),
        "default/savedsearches.conf": savedsearches_conf(),
    }


def write(app_dir: Path = APP_DIR) -> list[Path]:
    """Write the generated files; returns the paths written."""
    paths = []
    for rel, text in render().items():
        path = app_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale(app_dir: Path = APP_DIR) -> list[str]:
    """Generated files that differ from a fresh build (or are missing)."""
    return [
        rel
        for rel, text in render().items()
        if not (app_dir / rel).exists() or (app_dir / rel).read_text(encoding="utf-8") != text
    ]


def package(out: Path, app_dir: Path = APP_DIR) -> Path:
    """Write the app as Splunk installs it: a .tar.gz with the app directory at its top, reproducible."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        # local/ is the user's (never shipped); no hidden or compiled files.
        files = sorted(
            p
            for p in app_dir.rglob("*")
            if p.is_file()
            and not any(s.startswith((".", "local")) for s in p.relative_to(app_dir).parts)
            and p.suffix != ".pyc"
        )
        dirs = sorted({d for f in files for d in f.relative_to(app_dir).parents if str(d) != "."})
        for rel in [Path("."), *dirs]:
            info = tarfile.TarInfo(str(Path(app_dir.name) / rel) if str(rel) != "." else app_dir.name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for f in files:
            data = f.read_bytes()
            info = tarfile.TarInfo(str(Path(app_dir.name) / f.relative_to(app_dir)))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(buf.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m enricher.assets.splunk [--check] [--package FILE]`."""
    ap = argparse.ArgumentParser(prog="python -m enricher.assets.splunk", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help=f"exit 1 when pipelines/splunk/{APP_NAME} is not up to date")
    ap.add_argument("--package", metavar="FILE", type=Path, help="also write the app as a .tar.gz for Splunk")
    a = ap.parse_args(argv)
    if a.check:
        diff = stale()
        sys.stderr.write(f"out of date: {', '.join(diff)}\n" if diff else "up to date\n")
        if diff:
            return 1
    else:
        for path in write():
            sys.stderr.write(f"wrote {path.relative_to(sigma.ROOT)}\n")
    if a.package:
        sys.stderr.write(f"wrote {package(a.package)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
