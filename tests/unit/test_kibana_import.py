"""`setup --kibana`: the import client against a local fake of Kibana's import endpoint, over HTTP and over real TLS.

Kibana cannot run here; the fake answers like Kibana's `POST /api/saved_objects/_import` and records what it got.
The TLS is real: a ThreadingHTTPServer wrapped in an `ssl` server context whose certificate comes from a CA the test
makes (tests/tls_ca.py), and the real CLI (`esa-enricher setup --skip-kafka --skip-elasticsearch --kibana ...`).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import http.server
import json
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enricher.assets import kibana
from enricher.assets.kibana_import import KibanaImportError, import_bundle
from enricher.cli import build_parser, main
from enricher.cli.options import flag_overrides
from enricher.config import KibanaSettings
from tests.tls_ca import TestCA, fingerprint

SECRET = "s3cret-Pa55"  # must never show in a message or a log line
OBJECTS = [(o["type"], o["id"]) for o in kibana.bundle_objects()]


def _kibana_answer(overwrite: bool = False) -> dict[str, Any]:
    results = [{"type": t, "id": i, "meta": {}, **({"overwrite": True} if overwrite else {})} for t, i in OBJECTS]
    return {"success": True, "successCount": len(results), "successResults": results}


@dataclass
class FakeKibana:
    """What the fake was sent, and what it answers next."""

    url: str
    answer: tuple[int, dict[str, Any]] = field(default_factory=lambda: (200, _kibana_answer()))
    seen: list[dict[str, Any]] = field(default_factory=list)


def _serve(tls: ssl.SSLContext | None) -> Iterator[FakeKibana]:
    fake = FakeKibana("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}  # header names are case-insensitive
            fake.seen.append({"path": self.path, "headers": headers, "body": body})
            status, payload = fake.answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def fake_kibana() -> Iterator[FakeKibana]:
    yield from _serve(None)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("kibana-ca"))


@pytest.fixture
def tls_kibana(ca: TestCA) -> Iterator[FakeKibana]:
    cert, key = ca.issue("kibana")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    yield from _serve(ctx)


def _file_part(req: dict[str, Any]) -> Any:
    raw = f"Content-Type: {req['headers']['content-type']}\r\n\r\n".encode() + req["body"]
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = list(msg.iter_parts())
    assert len(parts) == 1
    return parts[0]


def test_request_shape_keeps_ids_and_reports_each_object(fake_kibana: FakeKibana) -> None:
    kb = KibanaSettings(url=fake_kibana.url, username="elastic", password=SECRET, space="security")
    report = import_bundle(kb)
    assert report["space"] == "security" and report["imported"] == len(OBJECTS) > 0
    assert [(o["type"], o["id"], o["result"]) for o in report["objects"]] == [(t, i, "created") for t, i in OBJECTS]
    (req,) = fake_kibana.seen
    assert req["path"] == "/s/security/api/saved_objects/_import?overwrite=true&createNewCopies=false"
    assert req["headers"]["kbn-xsrf"] == "true"
    assert req["headers"]["authorization"] == "Basic " + base64.b64encode(f"elastic:{SECRET}".encode()).decode()
    part = _file_part(req)
    assert part.get_param("name", header="content-disposition") == "file"
    assert part.get_filename() == "esa-enricher.ndjson"
    assert part.get_payload(decode=True) == kibana.BUNDLE.read_bytes()


def test_api_key_default_space_base_path_and_overwrites(fake_kibana: FakeKibana) -> None:
    fake_kibana.answer = (200, _kibana_answer(overwrite=True))
    report = import_bundle(KibanaSettings(url=fake_kibana.url + "/kibana/", api_key="abc=="))
    (req,) = fake_kibana.seen
    assert req["path"] == "/kibana/api/saved_objects/_import?overwrite=true&createNewCopies=false"
    assert req["headers"]["authorization"] == "ApiKey abc=="
    assert report["space"] == "default" and {o["result"] for o in report["objects"]} == {"overwritten"}


def test_every_failure_is_a_clear_error_without_secrets(fake_kibana: FakeKibana) -> None:
    kb = KibanaSettings(url=fake_kibana.url, username="analyst", password=SECRET)
    cases = [
        ((200, {"success": False, "successCount": 0, "errors": [
            {"type": "dashboard", "id": "esa-aborted-sessions", "error": {
                "type": "missing_references", "references": [{"type": "search", "id": "gone"}]}}]}),
         r"dashboard/esa-aborted-sessions: missing_references search/gone"),
        ((200, {**_kibana_answer(), "successResults": [
            {"type": "dashboard", "id": "esa-aborted-sessions", "destinationId": "0f3c-new"}]}),
         r"new id 0f3c-new in space 'default' .*ids are unique across spaces"),
        ((401, {"statusCode": 401, "message": "unable to authenticate user [analyst]"}),
         r"refused user 'analyst' \(HTTP 401\)"),
        ((400, {"message": "Unexpected token"}), r"HTTP 400 .*Unexpected token"),
    ]  # fmt: skip
    for answer, message in cases:
        fake_kibana.answer = answer
        with pytest.raises(KibanaImportError, match=message) as exc:
            import_bundle(kb)
        assert SECRET not in str(exc.value)
    with pytest.raises(KibanaImportError, match="cannot reach Kibana"):
        import_bundle(KibanaSettings(url="http://127.0.0.1:9", request_timeout_seconds=5))


def _setup(url: str, *flags: str) -> list[str]:
    return ["setup", "--skip-kafka", "--skip-elasticsearch", "--kibana", url, "--kibana-user", "analyst", *flags]


def test_setup_over_tls_with_a_private_ca(
    tls_kibana: FakeKibana, ca: TestCA, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ESA_KIBANA_PASSWORD", SECRET)
    assert main(_setup(tls_kibana.url, "--kibana-ca-certs", str(ca.ca_file), "--kibana-space", "soc")) == 0
    report = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["kibana"]
    assert report["imported"] == len(OBJECTS) and report["space"] == "soc"
    assert tls_kibana.seen[0]["path"].startswith("/s/soc/api/saved_objects/_import?")

    # Not trusted: no CA given (system roots), or another CA. Nothing reaches the server.
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    for flags, hint in (((), "set kibana.ca_certs"), (("--kibana-ca-certs", str(other.ca_file)), "not issued by")):
        assert main(_setup(tls_kibana.url, *flags)) != 0
        err = capsys.readouterr().err
        assert "TLS certificate at " + tls_kibana.url + " is not trusted" in err and hint in err
    # Pinned: the right fingerprint (colons, any case) imports; a wrong one stops before sending anything.
    pin = fingerprint(ca.directory / "kibana.pem")
    assert main(_setup(tls_kibana.url, "--kibana-fingerprint", pin.lower())) == 0
    assert main(_setup(tls_kibana.url, "--kibana-fingerprint", "AB" * 32)) != 0
    assert "not the one kibana.ssl_assert_fingerprint pins: nothing was sent" in capsys.readouterr().err
    # Verification switched off (kibana.verify_certs = false).
    assert main(_setup(tls_kibana.url, "--kibana-no-verify")) == 0
    assert len(tls_kibana.seen) == 3  # the CA run, the pinned run, the unverified run
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + caplog.text


def test_config_file_settings_and_a_bad_ca_file(tls_kibana: FakeKibana, ca: TestCA, tmp_path: Path) -> None:
    cfg = tmp_path / "esa.toml"
    cfg.write_text(f'[kibana]\nurl = "{tls_kibana.url}"\nca_certs = "{ca.ca_file}"\napi_key = "k=="\n')
    assert main(["setup", "--skip-kafka", "--skip-elasticsearch", "-c", str(cfg)]) == 0
    assert tls_kibana.seen[0]["headers"]["authorization"] == "ApiKey k=="
    with pytest.raises(KibanaImportError, match="kibana.ca_certs: cannot load"):
        import_bundle(KibanaSettings(url=tls_kibana.url, ca_certs=str(tmp_path / "missing.pem")))
    assert flag_overrides(build_parser().parse_args(["setup"])) == {}  # no flag given: the file decides
