"""services/compose/lab-init.sh, the secured lab's one-shot steps, run for real (bash, curl) without Docker.

The steps that talk to Elasticsearch and Kibana run against a local HTTP server that records the requests (it
checks what the script sends, not what Elasticsearch or Kibana answer); `kibana` and `enricher` exec stubs that
print what they were given; `certs` runs a stand-in for elasticsearch-certutil that writes the same zip layout
(the real tool is in the Elasticsearch image only). curl and unzip come from services/system-deps.sh.
"""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "services" / "compose" / "lab-init.sh"
RULES = ROOT / "pipelines" / "sigma" / "out"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("unzip")), reason="curl or unzip is missing: run services/system-deps.sh"
)


def run(lab: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "LAB_DIR": str(lab), **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=base, timeout=60)


def test_the_script_is_executable_and_parses() -> None:
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_secrets_are_generated_once_private_and_per_user(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    p = run(lab, "secrets")
    assert p.returncode == 0, p.stderr
    files = {f.relative_to(lab).as_posix(): f for f in lab.rglob("*") if f.is_file()}
    assert set(files) == {
        "root/elastic.password",
        "root/kibana_system.password",
        "es/elastic.password",
        "kibana/elastic.password",
        "kibana/kibana_system.password",
        "kibana/encrypted_saved_objects.key",
        "kibana/security.key",
        "kibana/reporting.key",
        "enricher/elastic.password",
    }
    for name, f in files.items():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, name  # Elasticsearch refuses a *_FILE of another mode
    if os.geteuid() == 0:  # each container user owns its copy
        assert files["es/elastic.password"].stat().st_uid == 1000
        assert files["kibana/kibana_system.password"].stat().st_uid == 1000
        assert files["enricher/elastic.password"].stat().st_uid == 10001
    values = {n: f.read_text() for n, f in files.items()}
    elastic = values["root/elastic.password"]
    assert len(elastic) >= 24 and elastic == values["es/elastic.password"] == values["enricher/elastic.password"]
    assert values["kibana/kibana_system.password"] != elastic
    keys = [v for n, v in values.items() if n.endswith(".key")]
    assert len(set(keys)) == 3 and all(len(k) >= 32 for k in keys)  # Kibana wants 32 characters or more
    assert elastic not in p.stdout + p.stderr  # a secret is never printed
    assert run(lab, "secrets").returncode == 0  # a second start keeps them
    assert {n: f.read_text() for n, f in files.items()} == values


def test_the_operator_may_choose_the_elastic_password(tmp_path: Path) -> None:
    p = run(tmp_path, "secrets", env={"ESA_LAB_ELASTIC_PASSWORD": "correct horse battery"})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "es" / "elastic.password").read_text() == "correct horse battery"
    assert run(tmp_path / "x", "secrets", env={"ESA_LAB_ELASTIC_PASSWORD": "short"}).returncode != 0


class _Recorder(http.server.BaseHTTPRequestHandler):
    answer: bytes = b"{}"
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        )
        answer = b'{"acknowledged":true,"trial_was_started":true}' if "/_license/" in self.path else type(self).answer
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[type[_Recorder]]:
    _Recorder.seen, _Recorder.answer = [], b"{}"
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Recorder.url = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
    yield _Recorder
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_users_sets_the_kibana_system_password_as_elastic(tmp_path: Path, server: Any) -> None:
    pw = 'with "quotes" and \\ backslash'  # escaped for curl's config file
    assert run(tmp_path, "secrets", env={"ESA_LAB_ELASTIC_PASSWORD": pw}).returncode == 0
    p = run(tmp_path, "users", env={"LAB_ES_URL": server.url})
    assert p.returncode == 0, p.stderr
    (req,) = server.seen
    assert req["path"] == "/_security/user/kibana_system/_password"
    assert req["headers"]["authorization"] == _basic("elastic", pw)
    assert json.loads(req["body"]) == {"password": (tmp_path / "root" / "kibana_system.password").read_text()}
    assert pw not in p.stdout + p.stderr


def _imported(req: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules of an import request (its multipart field `file`, named *.ndjson as Kibana requires)."""
    assert req["path"] == "/api/detection_engine/rules/_import?overwrite=true"
    assert req["headers"]["kbn-xsrf"] == "true"
    raw = f"Content-Type: {req['headers']['content-type']}\r\n\r\n".encode() + req["body"]
    (part,) = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw).iter_parts()
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename().endswith(".ndjson")
    return [json.loads(line) for line in part.get_payload(decode=True).decode().splitlines()]


def _rules(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (RULES / name).read_text().splitlines()]


def test_detections_imports_the_rules_and_fails_on_a_refusal(tmp_path: Path, server: Any) -> None:
    assert run(tmp_path, "secrets").returncode == 0
    env = {"LAB_KIBANA_URL": server.url, "LAB_ES_URL": server.url, "LAB_RULES_DIR": str(RULES)}
    server.answer = b'{"success":true,"success_count":9,"errors":[]}'
    p = run(tmp_path, "detections", env=env)
    assert p.returncode == 0, p.stderr
    (req,) = server.seen
    assert req["headers"]["authorization"] == _basic("elastic", (tmp_path / "root" / "elastic.password").read_text())
    assert _imported(req) == _rules("elastic-security-rules.ndjson")
    server.answer = b'{"success":false,"errors":[{"rule_id":"x","error":{"message":"bad"}}]}'
    p = run(tmp_path, "detections", env=env)
    assert p.returncode != 0 and "refused the detection rules" in p.stderr and "bad" in p.stderr


def test_detections_with_esql_replaces_the_threshold_rules(tmp_path: Path, server: Any) -> None:
    assert run(tmp_path, "secrets").returncode == 0
    env = {"LAB_KIBANA_URL": server.url, "LAB_ES_URL": server.url, "LAB_RULES_DIR": str(RULES)}
    server.answer = b'{"success":true,"errors":[]}'
    p = run(tmp_path, "detections", env={**env, "ESA_LAB_DETECTIONS": "esql"})
    assert p.returncode == 0, p.stderr
    trial, imp = server.seen
    assert trial["path"] == "/_license/start_trial?acknowledge=true"  # alert suppression is a Platinum feature
    base = [r for r in _rules("elastic-security-rules.ndjson") if r["type"] != "threshold"]
    esql = _rules("elastic-security-esql-rules.ndjson")
    assert base and esql and _imported(imp) == base + esql
    assert {r["type"] for r in _imported(imp)} == {"query", "esql"}
    assert run(tmp_path, "detections", env={**env, "ESA_LAB_DETECTIONS": "eql"}).returncode != 0


def _stub(directory: Path, name: str) -> Path:
    directory.mkdir(exist_ok=True)
    stub = directory / name
    stub.write_text(
        '#!/usr/bin/env bash\nenv | grep -E "^(ELASTICSEARCH_PASSWORD|XPACK_|ESA_KIBANA)" | sort\necho "ARGS $*"\n'
    )
    stub.chmod(0o755)
    return stub


def test_kibana_starts_with_its_secrets_from_the_volume(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert run(lab, "secrets").returncode == 0
    stub = _stub(tmp_path / "bin", "kibana-docker")
    p = run(lab, "kibana", "--x", env={"KIBANA_DOCKER": str(stub)})
    assert p.returncode == 0, p.stderr
    got = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    assert got == {
        "ELASTICSEARCH_PASSWORD": (lab / "kibana" / "kibana_system.password").read_text(),
        "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY": (lab / "kibana" / "encrypted_saved_objects.key").read_text(),
        "XPACK_SECURITY_ENCRYPTIONKEY": (lab / "kibana" / "security.key").read_text(),
        "XPACK_REPORTING_ENCRYPTIONKEY": (lab / "kibana" / "reporting.key").read_text(),
    }
    assert "ARGS --x" in p.stdout


def test_enricher_runs_esa_enricher_with_the_kibana_password(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    assert run(lab, "secrets").returncode == 0
    bin_dir = _stub(tmp_path / "bin", "esa-enricher").parent
    p = run(lab, "enricher", "setup", "--kibana", "http://kibana:5601", env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert p.returncode == 0, p.stderr
    assert f"ESA_KIBANA_PASSWORD={(lab / 'enricher' / 'elastic.password').read_text()}" in p.stdout
    assert "ARGS setup --kibana http://kibana:5601" in p.stdout


def test_a_missing_secret_is_a_clear_error(tmp_path: Path) -> None:
    p = run(tmp_path, "users", env={"LAB_ES_URL": "http://127.0.0.1:9"})
    assert p.returncode != 0 and "root/elastic.password is missing" in p.stderr


# What `elasticsearch-certutil ca|cert --pem --out X.zip` writes (the layout lab-init.sh unpacks), content aside.
_CERTUTIL = """#!/usr/bin/env python3
import sys, zipfile
args = sys.argv[1:]
out = args[args.index("--out") + 1]
names = ["ca/ca.crt", "ca/ca.key"] if args[0] == "ca" else [
    f"{args[args.index('--name') + 1]}/{args[args.index('--name') + 1]}.{ext}" for ext in ("crt", "key")]
with zipfile.ZipFile(out, "w") as z:
    for n in names:
        z.writestr(n, "PEM " + n)
"""


def test_certs_are_placed_for_each_reader(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    certutil = tmp_path / "certutil"
    certutil.write_text(_CERTUTIL)
    certutil.chmod(0o755)
    assert run(lab, "secrets").returncode == 0
    p = run(lab, "certs", env={"CERTUTIL": str(certutil)})
    assert p.returncode == 0, p.stderr
    modes = {
        "ca/ca.crt": (0o644, "ca/ca.crt"),  # every client verifies with it
        "root/ca.key": (0o600, "ca/ca.key"),  # nobody else signs
        "es/http.crt": (0o644, "elasticsearch/elasticsearch.crt"),
        "es/http.key": (0o600, "elasticsearch/elasticsearch.key"),  # Elasticsearch's (uid 1000)
    }
    for name, (mode, content) in modes.items():
        f = lab / name
        assert stat.S_IMODE(f.stat().st_mode) == mode and f.read_text() == "PEM " + content, name
    if os.geteuid() == 0:
        assert (lab / "es" / "http.key").stat().st_uid == 1000
    before = (lab / "es" / "http.crt").stat().st_mtime_ns
    assert run(lab, "certs", env={"CERTUTIL": "/nonexistent"}).returncode == 0  # kept: certutil not needed again
    assert (lab / "es" / "http.crt").stat().st_mtime_ns == before
