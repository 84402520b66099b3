"""The Elasticsearch sink, `setup` and the Kibana import client's TLS against a secured node (x-pack security on).

The node is es.sh's secure profile (tests/integration/secure_es.py), started once for this module: TLS on HTTP with a
CA the test makes, an API key and a native user made through the security API. Right CA + right credentials →
documents indexed; wrong CA → a clear TLS error; wrong API key or password → a clear credentials error; the secrets
are never in a log line or a message.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enricher.assets.kibana_import import KibanaImportError, import_bundle
from enricher.config import ElasticsearchSettings, KibanaSettings
from enricher.sinks.elasticsearch import ElasticsearchAccessError, ElasticsearchSink, make_client
from tests.integration import secure_es
from tests.integration.harness import PY, REPO, clean_env
from tests.tls_ca import TestCA, fingerprint

pytestmark = pytest.mark.integration

DEMO = REPO / "samples" / "demo-mail_logs.log"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[secure_es.SecureNode]:
    try:
        n = secure_es.start(tmp_path_factory.mktemp("secure-es"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield n
    n.es_sh("down")


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    import json

    out = tmp_path_factory.mktemp("replay") / "demo.ndjson"
    subprocess.run([PY, "-m", "enricher", "replay", "--no-progress", "-o", str(out), str(DEMO)],
                   check=True, capture_output=True, env=clean_env(), timeout=300)  # fmt: skip
    return [json.loads(line) for line in out.read_text().splitlines()]


def _secrets(node: secure_es.SecureNode) -> list[str]:
    return [node.admin_password, node.user_password, node.api_key, node.api_key_secret]


def _setup(node: secure_es.SecureNode, tmp_path: Path, **es: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(ESA_ES_URL=node.url, ESA__ELASTICSEARCH__INDEX_PREFIX=secure_es.PREFIX, **es)
    return subprocess.run([PY, "-m", "enricher", "setup", "--skip-kafka"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip


def _write(settings: ElasticsearchSettings, docs: list[dict[str, Any]]) -> None:
    sink = ElasticsearchSink(make_client(settings), secure_es.PREFIX, lambda d, e, s: pytest.fail(f"dead letter: {e}"))
    for d in docs:
        sink.add(d)
    sink.flush()


def _count(node: secure_es.SecureNode) -> int:
    node.call("POST", f"/{secure_es.PREFIX}/_refresh")
    return int(node.call("GET", f"/{secure_es.PREFIX}/_count")["count"])


def test_setup_and_sink_with_the_right_ca_and_credentials(
    node: secure_es.SecureNode, docs: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ca = str(node.ca.ca_file)
    p = _setup(node, tmp_path, ESA_ES_API_KEY=node.api_key, ESA__ELASTICSEARCH__CA_CERTS=ca)
    assert p.returncode == 0, p.stderr
    assert f"index template {secure_es.PREFIX}" in p.stderr
    half = len(docs) // 2
    _write(ElasticsearchSettings(url=node.url, ca_certs=ca, api_key=node.api_key), docs[:half])
    # basic auth as the native user made through the security API, the certificate pinned instead of a CA
    pin = fingerprint(node.ca.directory / "node.pem")
    _write(ElasticsearchSettings(url=node.url, ssl_assert_fingerprint=pin, username=node.user, password=node.user_password), docs[half:])
    assert _count(node) == len({d["event"]["id"] for d in docs})
    for secret in _secrets(node):
        assert secret not in p.stdout + p.stderr + caplog.text


def test_wrong_ca_or_credentials_are_clear_errors_without_secrets(
    node: secure_es.SecureNode, docs: list[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    ca = str(node.ca.ca_file)
    wrong_key = node.api_key[:-6] + ("AAAAAA" if not node.api_key.endswith("AAAAAA") else "BBBBBB")
    cases = [
        (ElasticsearchSettings(url=node.url, ca_certs=str(other.ca_file), api_key=node.api_key),
         "TLS certificate is not accepted", {"ESA__ELASTICSEARCH__CA_CERTS": str(other.ca_file), "ESA_ES_API_KEY": node.api_key}),
        (ElasticsearchSettings(url=node.url, ca_certs=ca, api_key=wrong_key),
         "refused the credentials (HTTP 401", {"ESA__ELASTICSEARCH__CA_CERTS": ca, "ESA_ES_API_KEY": wrong_key}),
        (ElasticsearchSettings(url=node.url, ca_certs=ca, username=node.user, password="not-" + node.user_password),
         "refused the credentials (HTTP 401",
         {"ESA__ELASTICSEARCH__CA_CERTS": ca, "ESA_ES_USERNAME": node.user, "ESA_ES_PASSWORD": "not-" + node.user_password}),
    ]  # fmt: skip
    for settings, message, env in cases:
        with pytest.raises(ElasticsearchAccessError, match=message.replace("(", r"\(")) as exc:
            _write(settings, docs[:3])
        p = _setup(node, tmp_path, **env)
        assert p.returncode != 0 and message in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
        shown = str(exc.value) + p.stdout + p.stderr + caplog.text
        for secret in [*_secrets(node), wrong_key, "not-" + node.user_password]:
            assert secret not in shown


def test_kibana_import_client_tls_against_the_secured_node(node: secure_es.SecureNode, tmp_path: Path) -> None:
    """The node is not Kibana: a handshake that passes ends in Elasticsearch's HTTP answer, one that fails says TLS."""
    other = TestCA.create(tmp_path / "other", "someone else's CA")
    pin = fingerprint(node.ca.directory / "node.pem")
    for ok in (KibanaSettings(url=node.url, ca_certs=str(node.ca.ca_file), username="nobody", password="x"),
               KibanaSettings(url=node.url, ssl_assert_fingerprint=pin, username="nobody", password="x")):  # fmt: skip
        with pytest.raises(KibanaImportError, match=r"refused user 'nobody' \(HTTP 401\)"):
            import_bundle(ok)
    with pytest.raises(KibanaImportError, match="TLS certificate at .* is not trusted"):
        import_bundle(KibanaSettings(url=node.url, ca_certs=str(other.ca_file)))
    with pytest.raises(KibanaImportError, match="fingerprint .* nothing was sent"):
        import_bundle(KibanaSettings(url=node.url, ssl_assert_fingerprint="00" * 32))
