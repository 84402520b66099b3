"""docker-compose.yml and the Dockerfile stay true to the project, without a Docker engine.

- `docker compose config` validates the file when a Compose CLI is installed (it needs no daemon for that);
- always: the structure (pinned images, a healthcheck or a one-shot for every service, depends_on conditions
  that can be met), every `esa-enricher` command and flag the services run parses with the real CLI, and every
  ESA_* variable they set is one the configuration understands, with a value it accepts;
- the lab's security: Elasticsearch with security and HTTPS on, Kibana as `kibana_system` with its encryption keys,
  the detection rules imported, and no secret written in the file (services/compose/lab-init.sh generates them;
  tests/unit/test_lab_init.py runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
LAB_INIT = "/lab/lab-init.sh"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _compose_cli() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        try:
            if subprocess.run([*cmd, "version"], capture_output=True, timeout=30).returncode == 0:
                return cmd
        except (OSError, subprocess.TimeoutExpired):
            continue
    return None


def test_docker_compose_config_validates() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Compose CLI (`docker compose` / `docker-compose`) here; the structure tests below still run")
    p = subprocess.run(
        [*cli, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert p.returncode == 0, p.stderr


def test_the_file_follows_the_compose_specification() -> None:
    # compose-spec's models of the Compose specification (the same checks as `docker compose config`: known keys,
    # types, depends_on conditions), without a CLI. Its parser does not resolve YAML merge keys (`<<`), which
    # Compose does: PyYAML resolves them first, and the `x-` extension blocks (only anchors) are left out.
    from compose_spec import PyCompose

    data = {k: v for k, v in yaml.safe_load(COMPOSE.read_text()).items() if not k.startswith("x-")}
    spec = PyCompose.from_json(json.dumps(data)).to_spec()
    assert set(spec.services) == set(data["services"])
    bad = json.loads(json.dumps(data))
    bad["services"]["kibana"]["healthcheck"]["retries"] = "many"
    with pytest.raises(ValueError, match="expected u64"):  # the validation is real
        PyCompose.from_json(json.dumps(bad)).to_spec()


def _is_one_shot(svc: dict[str, Any]) -> bool:
    return str(svc.get("restart", "no")) == "no"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in _services(compose).items():
        image = svc.get("image")
        assert image or svc.get("build"), f"{name}: neither image nor build"
        if not image or svc.get("build") or "@sha256:" in image:
            continue
        _repo, sep, tag = image.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned to a version"


def test_the_lab_has_every_part(compose: dict[str, Any]) -> None:
    svcs = _services(compose)
    images = {n: s.get("image", "") for n, s in svcs.items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["elasticsearch"].startswith("docker.elastic.co/elasticsearch/elasticsearch:9.")
    assert images["kibana"].startswith("docker.elastic.co/kibana/kibana:")
    assert images["kibana"].rpartition(":")[2] == images["elasticsearch"].rpartition(":")[2], (
        "Kibana and ES versions differ"
    )
    env = svcs["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"], "Kafka runs in KRaft mode"
    es_env = svcs["elasticsearch"]["environment"]
    assert es_env["discovery.type"] == "single-node" and str(es_env["xpack.security.enabled"]) == "true"
    commands = {n: _argv(s)[1] for n, s in svcs.items() if _argv(s)[0]}
    assert commands["setup"][0] == "setup" and "--kibana" in commands["setup"]
    assert commands["collector"][0] == "listen"
    assert commands["enricher"][0] == "run"
    assert commands["replayer"][0] == "send" and "samples/demo-mail_logs.log" in commands["replayer"][1]
    # Published ports are the host's loopback only (a lab without security).
    for name, svc in svcs.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published on every address"


def test_every_service_has_a_healthcheck_or_is_one_shot(compose: dict[str, Any]) -> None:
    svcs = _services(compose)
    for name, svc in svcs.items():
        hc = svc.get("healthcheck")
        assert (hc and hc.get("test") and not hc.get("disable")) or _is_one_shot(svc), f"{name}: no healthcheck"
    for name, svc in svcs.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, spec in deps.items():
            assert dep in svcs, f"{name} depends on unknown {dep}"
            cond = spec.get("condition")
            if cond == "service_healthy":
                assert svcs[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy, but it has no healthcheck"
            elif cond == "service_completed_successfully":
                assert _is_one_shot(svcs[dep]), f"{name} waits for {dep} to complete, but {dep} restarts"
            else:
                pytest.fail(
                    f"{name} → {dep}: condition {cond!r} (use service_healthy or service_completed_successfully)"
                )


def _argv(svc: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(program, arguments) of a service that runs the enricher image; (None, []) for the others."""
    if not (svc.get("build") or str(svc.get("image", "")).startswith("esa-enricher")):
        return None, []
    entry = svc.get("entrypoint") or _dockerfile_entrypoint()
    command = svc.get("command") or []
    assert isinstance(command, list), "write commands as lists (no shell parsing in between)"
    entry = entry if isinstance(entry, list) else entry.split()
    if entry == ["esa-enricher"]:
        return "esa-enricher", [str(c) for c in command]
    if entry == [LAB_INIT, "enricher"]:  # lab-init.sh exports the Kibana password, then execs esa-enricher
        return "esa-enricher", [str(c) for c in command]
    if entry == ["python", "-m", "enricher.edges.sources.syslog"]:
        return "syslog", [str(c) for c in command]
    if entry[:3] == ["python", "-m", "enricher"]:
        return "esa-enricher", [str(c) for c in [*entry[3:], *command]]
    raise AssertionError(f"unexpected entrypoint {entry}")


def _dockerfile_entrypoint() -> list[str]:
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.M)
    assert m, "the Dockerfile has no exec-form ENTRYPOINT"
    return list(yaml.safe_load(m.group(1)))


def _parse(parser: argparse.ArgumentParser, args: list[str]) -> argparse.Namespace:
    try:
        return parser.parse_args(args)
    except SystemExit as exc:  # argparse's way of saying "unknown command or flag, or a bad value"
        raise AssertionError(f"the CLI refuses: {' '.join(args)}") from exc


def test_every_enricher_command_and_flag_exists(compose: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from enricher.cli import build_parser
    from enricher.cli.listen import build_parser as build_syslog_parser
    from enricher.cli.options import flag_overrides
    from enricher.config import load

    seen = set()
    for name, svc in _services(compose).items():
        program, args = _argv(svc)
        if program is None:
            continue
        parser = build_parser() if program == "esa-enricher" else build_syslog_parser()
        ns = _parse(parser, args)
        seen.add(args[0])
        if program == "syslog" and args[0] == "send":
            for f in ns.files:  # files the replayer reads exist in the image (COPY samples → /app/samples)
                assert f.startswith("/app/") and (ROOT / f.removeprefix("/app/")).is_file(), f"{name}: {f}"
        # Healthchecks poke the metrics port the command binds.
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
        if args[0] in ("listen", "run") and test:
            cfg = load(None, flag_overrides(ns))  # the command's settings, as its flags make them
            port = cfg.listen.metrics_port if args[0] == "listen" else cfg.service.metrics_port
            assert f":{port}/healthz" in test, f"{name}: healthcheck does not ask the metrics port {port}"
    assert {"setup", "listen", "run", "send"} <= seen
    capsys.readouterr()


def _read_by_the_code() -> set[str]:
    """ESA_* names the package reads itself (outside the configuration), e.g. ESA_KIBANA_PASSWORD."""
    return {m for f in (ROOT / "enricher").rglob("*.py") for m in re.findall(r'"(ESA_[A-Z0-9_]+)"', f.read_text())}


def test_every_esa_variable_is_understood_by_the_config(compose: dict[str, Any], tmp_path: Path) -> None:
    from enricher.config import ENV_ALIASES, Config, env_overrides, load

    fields = _config_keys(Config)
    for name, svc in _services(compose).items():
        if _argv(svc)[0] is None:  # not the enricher image (lab-init.sh reads its own ESA_LAB_* variables)
            continue
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        esa = {k: str(v) for k, v in env.items() if k.startswith("ESA_")}
        for key in list(esa):
            if key in ENV_ALIASES:
                continue
            if not key.startswith("ESA__"):
                assert key in _read_by_the_code(), f"{name}: {key} is neither a configuration key nor read by the code"
                del esa[key]
                continue
            dotted = ".".join(p.lower() for p in key[5:].split("__") if p)
            assert dotted in fields, f"{name}: {key} → {dotted} is not a configuration key"
            if dotted.endswith("_file") or dotted.endswith(
                "ca_certs"
            ):  # a file of the container: in a volume it mounts
                mounts = [str(v).split(":")[1] for v in svc.get("volumes", [])]
                assert any(esa[key].startswith(m + "/") for m in mounts), f"{name}: {esa[key]} is in no volume"
                (tmp_path / "f").write_text("x")
                esa[key] = str(tmp_path / "f")
        if esa:
            load(None, env_overrides(esa))  # values the configuration accepts (raises ConfigError otherwise)


def _config_keys(model: Any, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    out = set()
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _config_keys(ann, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_dockerfile_builds_the_package_from_the_repository() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"^RUN pip install .*(-e )?\.", text, re.M)
    stages = set(re.findall(r"^FROM \S+ AS (\S+)\s*$", text, re.M))
    for m in re.finditer(r"^COPY\s+(.+?)\s+\S+\s*$", text, re.M):
        srcs = m.group(1).split()
        if srcs[0].startswith("--from="):  # from an earlier build stage, not from the repository
            assert srcs[0].removeprefix("--from=") in stages, f"{m.group(0)}: no such build stage"
            continue
        for src in srcs:
            assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".services" in ignored  # never send the local services' data as build context


# -- the lab's security ---------------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ENCRYPTIONKEY", re.I)


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    for name, svc in _services(compose).items():
        for key, value in (svc.get("environment") or {}).items():
            if (
                not _SECRET_NAME.search(key)
                or key.endswith("_FILE")
                or key.upper() == key
                and key.endswith("_USERNAME")
            ):
                continue
            # A secret comes from the operator's environment (`${VAR:-}`), never a literal.
            assert re.fullmatch(r"\$\{[A-Z0-9_]+(:-)?\}", str(value)), f"{name}: {key} holds a literal"
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|encryptionkey)\s*[:=]\s*['\"]?\w{6,}", text.replace("_FILE", ""))


def test_elasticsearch_runs_with_security_and_https(compose: dict[str, Any]) -> None:
    svcs = _services(compose)
    env = svcs["elasticsearch"]["environment"]
    assert str(env["xpack.security.http.ssl.enabled"]) == "true" and "ELASTIC_PASSWORD" not in env
    conf = "/usr/share/elasticsearch/config/"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in svcs["elasticsearch"]["volumes"]}
    assert mounts[conf + "lab"] == "lab-secrets"  # TLS files must be under the config directory
    assert env["ELASTIC_PASSWORD_FILE"].startswith(conf + "lab/")
    for key in ("certificate", "key", "certificate_authorities"):
        assert env[f"xpack.security.http.ssl.{key}"].startswith("lab/")
    health = " ".join(svcs["elasticsearch"]["healthcheck"]["test"])
    assert "https://localhost:9200" in health and "--cacert" in health and "-u " in health
    assert svcs["elasticsearch"]["depends_on"]["lab-init"]["condition"] == "service_completed_successfully"
    assert svcs["lab-init"]["command"] == ["secrets", "certs"]


def test_kibana_connects_as_kibana_system_with_encryption_keys(compose: dict[str, Any]) -> None:
    svcs = _services(compose)
    kib = svcs["kibana"]
    assert kib["command"] == [LAB_INIT, "kibana"]  # exports ELASTICSEARCH_PASSWORD and the XPACK_*_ENCRYPTIONKEY
    env = kib["environment"]
    assert env["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert yaml.safe_load(env["ELASTICSEARCH_HOSTS"]) == ["https://elasticsearch:9200"]
    assert env["ELASTICSEARCH_SSL_CERTIFICATEAUTHORITIES"].startswith(env["LAB_DIR"] + "/")
    assert kib["depends_on"]["lab-users"]["condition"] == "service_completed_successfully"
    assert svcs["lab-users"]["command"] == ["users"]
    script = (ROOT / "services" / "compose" / "lab-init.sh").read_text()
    for setting in ("XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY", "ELASTICSEARCH_PASSWORD"):
        assert f"export {setting}" in script or re.search(rf"export .*\b{setting}\b", script), setting


def test_bind_mounts_exist_and_the_rules_are_imported(compose: dict[str, Any]) -> None:
    svcs = _services(compose)
    for name, svc in svcs.items():
        for v in svc.get("volumes", []):
            src = str(v).split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in compose["volumes"], f"{name}: volume {src} is not declared"
    det = svcs["lab-detections"]
    assert det["command"] == ["detections"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in det["volumes"]}
    assert mounts["/lab/rules"] == "./pipelines/sigma/out"  # lab-init.sh reads the rules NDJSON files there
    assert det["environment"]["ESA_LAB_DETECTIONS"] == "${ESA_LAB_DETECTIONS:-threshold}"
    assert det["depends_on"]["setup"]["condition"] == "service_completed_successfully"  # the alias exists first
    # The services that write to Elasticsearch use HTTPS with the lab's CA.
    for name in ("setup", "enricher"):
        env = svcs[name]["environment"]
        assert env["ESA_ES_URL"].startswith("https://") and env["ESA__ELASTICSEARCH__CA_CERTS"]


def test_the_burst_sample_of_the_lab_docs_is_a_burst() -> None:
    from enricher.cli import build_pipeline
    from enricher.config import load

    lines = (ROOT / "samples" / "lab-connection-lost-burst.log").read_text().splitlines()
    pipeline = build_pipeline(load(None, {"time.default_timezone": "UTC"}))
    docs = [*pipeline.process_lines(lines, "esa1.corp.example"), *pipeline.flush()]
    lost = [d for d in docs if str(d.get("abort_reason", "")).startswith("connection_lost")]
    assert len(lost) == len(docs) >= 6 and len({d["source"]["ip"] for d in lost}) == 1
