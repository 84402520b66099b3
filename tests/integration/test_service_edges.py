"""Edges of the service's life: a member with nothing to do, a polite stop, a port already taken."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import GOLDEN, PY, REPO, SEEDS, Stack, by_id, clean_env, wait_until

pytestmark = pytest.mark.integration


def test_a_member_without_partitions_still_exits_when_idle(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("idlemember", partitions=1)
    expected: dict[str, Any] = {}
    for case, (appliance, _, _) in SEEDS.items():
        stack.produce(GOLDEN / case / "input.log", appliance)
        expected.update(by_id(stack.replay(GOLDEN / case / "input.log", appliance)))
    keeper = stack.start(tag="keeper")  # a long-running member that owns the only partition
    wait_until(lambda: keeper.metric("esa_lines_received_total") > 0, 60, "the first member to read")
    # The range assignor gives the partition to the first member id in sort order: this one comes after.
    late = stack.variant("late", kafka={"client_id": f"{stack.config['kafka']['client_id']}-zz"})
    batch = stack.start(exit_when_idle=5, tag="batch", config=late)
    assert batch.wait(60) == 0, batch.log()[-3000:]  # it got nothing to do, and still ends
    assert "restored checkpoint" not in batch.log()
    assert keeper.alive()
    assert keeper.kill(signal.SIGTERM) == 0, keeper.log()[-3000:]
    final = stack.start(exit_when_idle=5, tag="final")
    assert final.wait(60) == 0, final.log()[-3000:]
    assert stack.es_docs(es_client) == expected
    assert stack.committed() == stack.end_offsets()


def test_sigterm_checkpoints_and_the_next_run_goes_on(make_stack: Callable[..., Stack], es_client: Any) -> None:
    stack = make_stack("sigterm")
    sample, app = REPO / "samples" / "demo-mail_logs.log", "esa1.corp.example"
    produced = stack.produce(sample, app)
    expected = by_id(stack.replay(sample, app))
    p = stack.start()
    wait_until(lambda: p.metric("esa_lines_received_total") >= produced["records"], 60, "everything read")
    assert p.kill(signal.SIGTERM) == 0, p.log()[-3000:]
    assert stack.committed() == {k: v for k, v in stack.end_offsets().items() if v}  # checkpointed on the way out
    written = set(stack.es_docs(es_client))
    assert written < set(expected)  # the last sessions are still open: they live in the state snapshot

    q = stack.start(exit_when_idle=5)
    assert q.wait(90) == 0, q.log()[-3000:]
    assert "restored checkpoint" in q.log()
    assert stack.es_docs(es_client) == expected


def test_metrics_port_in_use_is_a_configuration_error(make_stack: Callable[..., Stack]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = make_stack("port", setup=False, service={"metrics_port": port})
        p = subprocess.run(
            [PY, "-m", "enricher", "run", "-c", str(stack.config_path), "--exit-when-idle", "1"],
            capture_output=True, text=True, env=clean_env(), timeout=60,
        )
    assert p.returncode == 3, p.stderr[-2000:]
    assert "service.metrics_port" in p.stderr and str(port) in p.stderr
    assert "Traceback" not in p.stderr
