"""Helpers of the integration tests: one isolated "stack" (topics, group, index prefix) per test, the
enricher run as a real subprocess, and readers for what ended up in Kafka and Elasticsearch.

Nothing here replaces Kafka or Elasticsearch: the CLI (`python -m enricher …`) talks to the real services.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
PY = sys.executable
# The consumer clients `kafka.client` selects: the flows that depend on the client run over both.
KAFKA_CLIENTS = ("kafka-python", "confluent")
# The seed's three examples and the appliance each is produced and replayed as (native files name no host).
SEEDS = {
    "seed-connection-lost": ("esa-seed-a.example", "connection_lost", "transport"),
    "seed-inbound-timeout": ("esa-seed-b.example", "inbound_timeout", "timeout"),
    "seed-sender-quit": ("esa-seed-c.example", "sender_quit", "application"),
}


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `pred` until it returns something truthy (exceptions count as not yet); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            got = pred()
            if got:
                return got
            last = got
        except Exception as exc:  # noqa: BLE001 - "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def dump_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a config file: scalars at the top, one level of tables, one of sub-tables."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for table, body in data.items():
        if not isinstance(body, dict):
            continue
        lines.append(f"\n[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
        for sub, sb in body.items():
            if isinstance(sb, dict):
                lines.append(f"\n[{table}.{sub}]")
                lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sb.items()]
    return "\n".join(lines) + "\n"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: no ESA_* variable leaks in, the config file decides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESA_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


class EnricherProcess:
    """`python -m enricher run -c <cfg>` as a real child process, with its /metrics and /healthz."""

    _PORT_RE = re.compile(r"metrics and health on http://([0-9.]+):(\d+)/metrics")

    def __init__(self, stack: Stack, exit_when_idle: float | None, tag: str, config: Path | None = None) -> None:
        self.stack = stack
        self.tag = tag
        self.log_path = stack.dir / f"enricher-{tag}.log"
        args = [PY, "-m", "enricher", "run", "-c", str(config or stack.config_path)]
        if exit_when_idle is not None:
            args += ["--exit-when-idle", str(exit_when_idle)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=clean_env(), cwd=stack.dir)
        self.started = time.monotonic()
        self._port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        """The metrics port it bound (it is configured with port 0: any free port)."""
        if self._port is None:

            def found() -> int | None:
                m = self._PORT_RE.search(self.log())
                if m is None and self.proc.poll() is not None:
                    raise AssertionError(f"enricher {self.tag} exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
                return int(m.group(2)) if m else None

            self._port = wait_until(found, 60, f"enricher {self.tag} to serve /metrics")
        return self._port

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def healthz(self) -> tuple[int, str]:
        return self._get("/healthz")

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        code, text = self._get("/metrics")
        assert code == 200, code
        return parse_metrics(text)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 when none)."""
        return sum(v for n, lab, v in self.metrics() if n == name and all(lab.get(k) == x for k, x in labels.items()))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> int:
        os.kill(self.proc.pid, sig)
        return self.wait(60)

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"enricher {self.tag} still running after {timeout:.0f} s:\n{self.log()[-3000:]}") from None
        self._log.close()
        return rc

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


@dataclass
class Stack:
    """One test's own topics, consumer group and index prefix, and the config file that names them."""

    token: str
    kafka: str
    es_url: str
    dir: Path
    partitions: int
    config: dict[str, Any]
    processes: list[EnricherProcess] = field(default_factory=list)

    @classmethod
    def create(cls, name: str, kafka: str, es_url: str, directory: Path, partitions: int, overrides: dict[str, Any]) -> Stack:
        token = f"{name}-{uuid.uuid4().hex[:8]}".lower()
        cfg: dict[str, Any] = {
            "time": {"reference_time": "2026-12-31T00:00:00Z"},
            "kafka": {
                "bootstrap_servers": kafka,
                "topic": f"it-{token}",
                "group_id": f"it-{token}",
                "state_topic": f"it-{token}-state",
                "dead_letter_topic": f"it-{token}-dlq",
                "sessions_topic": f"it-{token}-sessions",  # written only where service.outputs has kafka
                "client_id": f"it-{token}",
            },
            "elasticsearch": {"url": es_url, "index_prefix": f"esa-t-{token}", "flush_interval_seconds": 1.0},
            "service": {"checkpoint_interval_seconds": 2.0, "metrics_port": 0},
        }
        for section, values in overrides.items():
            if isinstance(values, dict):
                cfg.setdefault(section, {}).update(values)
            else:
                cfg[section] = values
        s = cls(token, kafka, es_url, directory, partitions, cfg)
        s.config_path.write_text(dump_toml(cfg))
        return s

    # -- names ----------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / "enricher.toml"

    @property
    def topic(self) -> str:
        return str(self.config["kafka"]["topic"])

    @property
    def group(self) -> str:
        return str(self.config["kafka"]["group_id"])

    @property
    def dlq(self) -> str:
        return str(self.config["kafka"]["dead_letter_topic"])

    @property
    def state_topic(self) -> str:
        return str(self.config["kafka"]["state_topic"])

    @property
    def sessions_topic(self) -> str:
        return str(self.config["kafka"]["sessions_topic"])

    @property
    def prefix(self) -> str:
        return str(self.config["elasticsearch"]["index_prefix"])

    # -- the CLI --------------------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [PY, "-m", "enricher", *args], capture_output=True, text=True, env=clean_env(), cwd=self.dir, timeout=timeout
        )
        assert p.returncode == 0, f"esa-enricher {' '.join(args)} → {p.returncode}\n{p.stderr[-3000:]}"
        return p

    def setup(self) -> dict[str, Any]:
        p = self.cli("setup", "-c", str(self.config_path), "--partitions", str(self.partitions))
        return json.loads(p.stderr.strip().splitlines()[-1])

    def produce(self, path: Path, appliance: str | None = None) -> dict[str, Any]:
        args = ["produce", "-c", str(self.config_path), str(path)]
        if appliance:
            args += ["--appliance", appliance]
        p = self.cli(*args, timeout=1200)
        return json.loads(p.stderr.strip().splitlines()[-1])

    def produce_async(self, path: Path, appliance: str | None = None) -> subprocess.Popen[bytes]:
        args = [PY, "-m", "enricher", "produce", "-c", str(self.config_path), str(path)]
        if appliance:
            args += ["--appliance", appliance]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(), cwd=self.dir)

    def replay(self, path: Path, appliance: str | None = None, out: Path | None = None) -> list[dict[str, Any]]:
        """`esa-enricher replay` of the same input with the same config: the reference documents."""
        out = out or self.dir / f"replay-{path.stem}-{uuid.uuid4().hex[:6]}.ndjson"
        args = ["replay", "-c", str(self.config_path), "--no-progress", "-o", str(out), str(path)]
        if appliance:
            args += ["--appliance", appliance]
        self.cli(*args, timeout=1200)
        with out.open("rb") as f:
            return [json.loads(line) for line in f]

    def variant(self, tag: str, **overrides: dict[str, Any]) -> Path:
        """Another config file: this stack's, with some sections' keys changed."""
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in self.config.items()}
        for section, values in overrides.items():
            cfg.setdefault(section, {}).update(values)
        path = self.dir / f"enricher-{tag}.toml"
        path.write_text(dump_toml(cfg))
        return path

    def start(self, exit_when_idle: float | None = None, tag: str | None = None, config: Path | None = None) -> EnricherProcess:
        p = EnricherProcess(self, exit_when_idle, tag or str(len(self.processes) + 1), config)
        self.processes.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.processes:
            p.stop()

    # -- Kafka ----------------------------------------------------------------------------------------------
    def _admin(self) -> Any:
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.kafka, client_id=f"it-admin-{self.token}")

    def committed(self) -> dict[int, int]:
        """The enricher group's committed offsets of the raw topic, by partition (consumer.committed())."""
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(
            bootstrap_servers=self.kafka, group_id=self.group, enable_auto_commit=False, client_id=f"it-probe-{self.token}"
        )
        try:  # never subscribes nor polls: it does not join the group, it only asks the coordinator
            out = {}
            for p in sorted(c.partitions_for_topic(self.topic) or ()):
                off = c.committed(TopicPartition(self.topic, p))
                if off is not None:
                    out[p] = off
            return out
        finally:
            c.close(autocommit=False)

    def end_offsets(self, topic: str | None = None) -> dict[int, int]:
        from kafka import KafkaConsumer, TopicPartition

        topic = topic or self.topic
        c = KafkaConsumer(bootstrap_servers=self.kafka, client_id=f"it-reader-{self.token}")
        try:
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            return {tp.partition: off for tp, off in c.end_offsets(tps).items()}
        finally:
            c.close()

    def read_topic(self, topic: str) -> list[Any]:
        """Every record of a topic (all partitions, from the beginning to the current end)."""
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.kafka, client_id=f"it-reader-{self.token}", enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            c.assign(tps)
            c.seek_to_beginning(*tps)
            ends = c.end_offsets(tps)
            out: list[Any] = []
            deadline = time.monotonic() + 120
            while any(c.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, f"reading {topic} timed out"
                for records in c.poll(timeout_ms=500).values():
                    out.extend(records)
            return out
        finally:
            c.close()

    def producer(self, **extra: Any) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.kafka, acks="all", **extra)

    # -- Elasticsearch --------------------------------------------------------------------------------------
    def es_hits(self, es: Any) -> list[dict[str, Any]]:
        """Every document behind the read alias (after a refresh)."""
        from elasticsearch import helpers

        es.indices.refresh(index=self.prefix)
        return list(helpers.scan(es, index=self.prefix, query={"query": {"match_all": {}}}, size=2000))

    def es_docs(self, es: Any) -> dict[str, dict[str, Any]]:
        """_id → _source without `event.ingested`, failing on an id present twice (e.g. in two monthly indices)
        or on a document the sink wrote without `event.ingested` (the write time: replay's documents lack it)."""
        hits = self.es_hits(es)
        ids = [h["_id"] for h in hits]
        dupes = {i for i in ids if ids.count(i) > 1} if len(ids) != len(set(ids)) else set()
        assert not dupes, f"documents present more than once behind the alias: {sorted(dupes)[:5]}"
        missing = [h["_id"] for h in hits if h["_source"]["event"].pop("ingested", None) is None]
        assert not missing, f"documents without event.ingested: {missing[:5]}"
        return {h["_id"]: h["_source"] for h in hits}

    def es_fields(self, es: Any, fields: list[str]) -> dict[str, dict[str, Any]]:
        """_id → {dotted field: value} for every document behind the alias (only these fields are fetched)."""
        from elasticsearch import helpers

        es.indices.refresh(index=self.prefix)
        out: dict[str, dict[str, Any]] = {}
        dupes = []
        for h in helpers.scan(es, index=self.prefix, query={"query": {"match_all": {}}, "_source": fields}, size=5000):
            if h["_id"] in out:
                dupes.append(h["_id"])
            out[h["_id"]] = {f: get_field(h["_source"], f) for f in fields}
        assert not dupes, f"documents present more than once behind the alias: {dupes[:5]}"
        return out

    def es_count(self, es: Any) -> int:
        es.indices.refresh(index=self.prefix)
        return int(es.count(index=self.prefix)["count"])

    # -- clean-up -------------------------------------------------------------------------------------------
    def cleanup(self, es: Any) -> None:
        try:
            es.options(ignore_status=404).indices.delete(index=f"{self.prefix}-*", expand_wildcards="all")
            es.options(ignore_status=404).indices.delete_index_template(name=self.prefix)
            for n in (f"{self.prefix}-settings", f"{self.prefix}-mappings"):
                es.options(ignore_status=404).cluster.delete_component_template(name=n)
        except Exception as exc:  # noqa: BLE001 - clean-up is best effort
            print(f"clean-up of {self.prefix} failed: {exc}")
        try:
            admin = self._admin()
            try:
                existing = set(admin.list_topics())
                gone = [t for t in (self.topic, self.state_topic, self.dlq, self.sessions_topic) if t in existing]
                if gone:
                    admin.delete_topics(gone)
                getattr(admin, "delete_groups", None) and admin.delete_groups([self.group])
            finally:
                admin.close()
        except Exception as exc:  # noqa: BLE001
            print(f"clean-up of the topics of {self.token} failed: {exc}")


def ndjson_fields(path: Path, fields: list[str]) -> dict[str, dict[str, Any]]:
    """event.id → {dotted field: value} of an NDJSON file of session documents (error documents left out)."""
    import orjson

    out: dict[str, dict[str, Any]] = {}
    with path.open("rb") as f:
        for line in f:
            d = orjson.loads(line)
            i = (d.get("event") or {}).get("id")
            if i:
                out[i] = {k: get_field(d, k) for k in fields}
    return out


def generate_corpus(path: Path, lines: int, seed: int, appliances: int = 4) -> dict[str, Any]:
    """bench/gen_corpus.py (deterministic); returns its sidecar (`sessions`, `abort_reason`, …)."""
    subprocess.run(
        [PY, str(REPO / "bench" / "gen_corpus.py"), "--lines", str(lines), "--seed", str(seed),
         "--appliances", str(appliances), "--out", str(path)],
        check=True, capture_output=True, timeout=600,
    )
    meta: dict[str, Any] = json.loads(path.with_suffix(".meta.json").read_text())
    return meta


def by_id(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Session documents by event.id (the last one wins, as in Elasticsearch); error documents left out."""
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        i = (d.get("event") or {}).get("id")
        if i:
            out[i] = d
    return out


def get_field(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
