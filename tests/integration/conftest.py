"""Fixtures of the integration tests: real Kafka and Elasticsearch, never mocks.

Where the services come from (session-scoped, resolved once):
1. `ESA_KAFKA_BOOTSTRAP` / `ESA_ES_URL` when set (what `.ci/run` and `make services-up` export);
2. else, when a Docker engine answers (`docker info`), testcontainers: Kafka in KRaft mode and an
   Elasticsearch 9 node with security off (images: `ESA_IT_KAFKA_IMAGE`, `ESA_IT_ES_IMAGE`);
3. else the project's own scripts, `services/kafka/kafka.sh up` and `services/elasticsearch/es.sh up`
   (stopped again at the end of the session when this session started them).

Every test gets its own topics, consumer group and index prefix (`stack` fixture, see harness.py), so tests
do not interfere with each other or with the lab, and reruns start clean.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.integration.harness import REPO, Stack, wait_until

KAFKA_SH = REPO / "services" / "kafka" / "kafka.sh"
ES_SH = REPO / "services" / "elasticsearch" / "es.sh"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _script(path: Any, command: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(path), command], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def _script_value(proc: subprocess.CompletedProcess[str], name: str) -> str:
    m = re.search(rf"^{name}=(\S+)$", proc.stdout, re.M)
    if proc.returncode != 0 or m is None:
        pytest.fail(f"could not start the service ({name}): rc={proc.returncode}\n{proc.stderr[-3000:]}", pytrace=False)
    return m.group(1)


@dataclass
class Provider:
    """Where the services of this test session come from, and what to stop at the end."""

    docker: bool | None = None
    containers: dict[str, Any] = field(default_factory=dict)
    started_by_us: list[Callable[[], None]] = field(default_factory=list)

    def use_docker(self) -> bool:
        if self.docker is None:
            self.docker = os.environ.get("ESA_IT_NO_DOCKER") != "1" and _docker_answers()
        return self.docker


@pytest.fixture(scope="session")
def _provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    for stop in reversed(p.started_by_us):
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - teardown must go on
            print(f"stopping a service failed: {exc}")


@pytest.fixture(scope="session")
def kafka_bootstrap(_provider: Provider) -> str:
    """host:port of a real Kafka broker."""
    env = os.environ.get("ESA_KAFKA_BOOTSTRAP")
    if env:
        return env
    if _provider.use_docker():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.kafka import KafkaContainer  # type: ignore[no-redef]

        c = KafkaContainer(os.environ.get("ESA_IT_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")).with_kraft()
        c.start()
        _provider.containers["kafka"] = c
        _provider.started_by_us.append(c.stop)
        return str(c.get_bootstrap_server())
    was_running = _script(KAFKA_SH, "status").returncode == 0
    bootstrap = _script_value(_script(KAFKA_SH, "up"), "ESA_KAFKA_BOOTSTRAP")
    if not was_running:
        _provider.started_by_us.append(lambda: _script(KAFKA_SH, "down"))
    return bootstrap


@pytest.fixture(scope="session")
def es_url(_provider: Provider) -> str:
    """URL of a real Elasticsearch node."""
    env = os.environ.get("ESA_ES_URL")
    if env:
        return env
    if _provider.use_docker():
        try:
            from testcontainers.community.elasticsearch import ElasticSearchContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.elasticsearch import ElasticSearchContainer  # type: ignore[no-redef]

        image = os.environ.get("ESA_IT_ES_IMAGE", "docker.elastic.co/elasticsearch/elasticsearch:9.5.3")
        c = (
            ElasticSearchContainer(image, mem_limit="3G")
            .with_env("xpack.security.enabled", "false")
            .with_env("ES_JAVA_OPTS", "-Xms512m -Xmx1g")
        )
        c.start()
        _provider.containers["elasticsearch"] = c
        _provider.started_by_us.append(c.stop)
        return f"http://{c.get_container_host_ip()}:{c.get_exposed_port(c.port)}"
    was_running = _script(ES_SH, "status").returncode == 0
    url = _script_value(_script(ES_SH, "up"), "ESA_ES_URL")
    if not was_running:
        _provider.started_by_us.append(lambda: _script(ES_SH, "down"))
    return url


@pytest.fixture(scope="session")
def es_client(es_url: str) -> Iterator[Any]:
    """A client of the Elasticsearch node (fails when it does not answer)."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_url, request_timeout=60, retry_on_timeout=True, max_retries=3)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="60s")
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        client.close()
        pytest.fail(f"Elasticsearch at {es_url} does not answer: {exc}", pytrace=False)
    yield client
    client.close()


class EsOutage:
    """Stops and restarts the real Elasticsearch node (a real outage: the process is gone, or frozen)."""

    def __init__(self, stop: Callable[[], None], start: Callable[[], None], how: str) -> None:
        self._stop, self._start, self.how = stop, start, how
        self.down = False

    def stop(self) -> None:
        self._stop()
        self.down = True

    def start(self) -> None:
        self._start()
        self.down = False


@pytest.fixture
def es_outage(es_url: str, _provider: Provider, es_client: Any) -> Iterator[EsOutage]:
    """A way to take the test's Elasticsearch node down for real; skips when the node is not ours to stop."""
    container = _provider.containers.get("elasticsearch")
    if container is not None:
        wrapped = container.get_wrapped_container()
        outage = EsOutage(wrapped.pause, wrapped.unpause, "docker pause")
    else:
        u = urlparse(es_url)
        if u.hostname not in ("127.0.0.1", "localhost") or u.port is None:
            pytest.skip(f"Elasticsearch at {es_url} is not a local es.sh node: cannot stop it")
        env = {"ESA_ES_PORT": str(u.port)}
        if _script(ES_SH, "status", env).returncode != 0:
            pytest.skip(f"Elasticsearch at {es_url} is not run by services/elasticsearch/es.sh: cannot stop it")

        def stop() -> None:
            r = _script(ES_SH, "down", env)
            assert r.returncode == 0, r.stderr

        def start() -> None:
            r = _script(ES_SH, "up", env)
            assert r.returncode == 0, r.stderr

        outage = EsOutage(stop, start, "es.sh down/up")
    yield outage
    if outage.down:  # the test failed in the middle: leave the node running for the next tests
        outage.start()
    wait_until(lambda: es_client.cluster.health(wait_for_status="yellow", timeout="5s") is not None, 120, "ES back")


@pytest.fixture
def make_stack(
    kafka_bootstrap: str, es_url: str, es_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Stack]]:
    """`make_stack(name, partitions=4, **config)`: unique topics, group and index prefix, set up for real."""
    made: list[Stack] = []

    def make(name: str, partitions: int = 4, setup: bool = True, **config: Any) -> Stack:
        s = Stack.create(name, kafka_bootstrap, es_url, tmp_path_factory.mktemp(name), partitions, config)
        made.append(s)
        if setup:
            s.setup()
        return s

    yield make
    for s in made:
        s.stop_all()
        if os.environ.get("ESA_IT_KEEP") != "1":
            s.cleanup(es_client)
