"""kill -9 of the enricher at random moments while it works through a corpus: every session exactly once.

The corpus comes from bench/gen_corpus.py (deterministic) and is produced into Kafka *while* the enricher
runs; the enricher is killed with SIGKILL several times at random moments (after it has started reading),
restarted each time, and a last run with --exit-when-idle finishes the stream. Then Elasticsearch must hold
exactly the corpus' sessions: the count and abort_reason counts of the generator's sidecar, and the set of
`event.id`s (with each session's abort_reason, line count and state) of `esa-enricher replay` of the same file.

Size: by default 250,000 lines (about 14,000 sessions, CI); `ESA_FULL_CRASH_TEST=1` runs 1,100,000 lines
(about 63,000 sessions, ≥ 50,000 of them messages). `ESA_CRASH_LINES`, `ESA_CRASH_KILLS` and `ESA_CRASH_SEED`
override; the seed of the kill moments is printed, so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.harness import KAFKA_CLIENTS, PY, Stack, clean_env, generate_corpus, ndjson_fields, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FULL = os.environ.get("ESA_FULL_CRASH_TEST") == "1"
LINES = int(os.environ.get("ESA_CRASH_LINES", 1_100_000 if FULL else 250_000))
KILLS = int(os.environ.get("ESA_CRASH_KILLS", 5 if FULL else 4))
FIELDS = ["event.id", "abort_reason", "abort_layer", "esa.session.lines", "esa.session.state"]


@pytest.mark.parametrize("client", KAFKA_CLIENTS)
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    make_stack: Callable[..., Stack], es_client: Any, client: str
) -> None:
    seed = int(os.environ.get("ESA_CRASH_SEED", random.SystemRandom().randrange(1 << 30)))
    replay_with = f"ESA_CRASH_SEED={seed} ESA_CRASH_LINES={LINES} ESA_CRASH_KILLS={KILLS} client={client}"
    print(replay_with)

    def broke(invariant: str, detail: object = "") -> str:
        """The failure message: which invariant broke, how to replay the run, and the kills so far."""
        return f"invariant broken: {invariant} [{replay_with}; kills {timeline}] {detail}"

    rng = random.Random(seed)
    # librdkafka restores inside the assignment callback (seeks applied with the assignment), kafka-python from
    # the main loop after a pause: a kill between a snapshot and its commit tests each.
    stack = make_stack("crash", partitions=4, kafka={"client": client})
    t0 = time.monotonic()
    corpus = stack.dir / "corpus.log"
    # Six appliances: their host names spread over partitions 0, 1 and 3 (esa1..esa4 all hash to 3 of 4).
    meta = generate_corpus(corpus, LINES, seed=4242, appliances=6)
    if FULL:
        assert meta["message_sessions"] >= 50_000

    # The reference (replay) and the stream into Kafka run while the enricher works and gets killed.
    reference = stack.dir / "replay.ndjson"
    replay = subprocess.Popen(
        [PY, "-m", "enricher", "replay", "-c", str(stack.config_path), "--no-progress", "-o", str(reference), str(corpus)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(), cwd=stack.dir,
    )
    producer = stack.produce_async(corpus)

    timeline: list[tuple[int, float, int]] = []
    restores = 0
    # KILLS kills; on a busy machine a kill may come before the run has read a record (still restoring): then up
    # to KILLS more, until two kills came in the middle of reading.
    for i in range(2 * KILLS):
        if i >= KILLS and sum(1 for _, _, lines in timeline if lines > 0) >= 2:
            break
        if producer.poll() is not None and stack.committed() == {k: v for k, v in stack.end_offsets().items() if v}:
            break  # everything is read and committed already: a kill now would prove nothing more
        p = stack.start(tag=f"killed-{i}")
        started = time.monotonic()
        # Joined (after the dead member's session timed out) and working: reading, or restoring.
        wait_until(
            lambda p=p: p.metric("esa_lines_received_total") > 0 or p.metric("esa_state_restores_total") > 0,
            120,
            f"run {i} to start working ({replay_with})",
        )
        time.sleep(rng.uniform(0.5, 7.0))
        lines = p.metric("esa_lines_received_total")
        restores += int(p.metric("esa_state_restores_total"))
        assert p.kill(signal.SIGKILL) == -signal.SIGKILL, broke("SIGKILL ends the enricher")
        timeline.append((i, round(time.monotonic() - started, 1), int(lines)))
    assert sum(1 for _, _, lines in timeline if lines > 0) >= 2, broke("at least two kills in the middle of reading")
    assert producer.wait(1200) == 0, broke("the corpus is produced", producer.stderr.read().decode() if producer.stderr else "")
    # Syslog corpus: one record per line.
    assert sum(stack.end_offsets().values()) == meta["lines"], broke("every corpus line is one record in Kafka")

    final = stack.start(exit_when_idle=10, tag="final")
    rc = final.wait(1800)
    assert rc == 0, broke("the final run exits 0", final.log()[-4000:])
    assert "restored checkpoint" in final.log(), broke("the final run restores a checkpoint")
    print(f"kills (run, seconds after start, lines read before the kill): {timeline}; restores seen: {restores}")
    print(f"whole test so far: {time.monotonic() - t0:.0f} s")
    assert restores > 0, broke("a killed run restored a checkpoint (else the kills all came too early)")
    ends = stack.end_offsets()
    assert len([n for n in ends.values() if n]) >= 3, broke("the corpus spreads over three partitions or more", ends)
    committed = stack.committed()
    assert committed == {k: v for k, v in ends.items() if v}, broke("every partition is committed to its end", (committed, ends))

    assert replay.wait(1200) == 0, broke("the reference replay succeeds", replay.stderr.read().decode() if replay.stderr else "")
    expected = ndjson_fields(reference, FIELDS)
    assert len(expected) == meta["sessions"], broke("the replay has the generator's sessions", (len(expected), meta["sessions"]))
    try:
        got = stack.es_fields(es_client, FIELDS)
    except AssertionError as exc:  # an id behind the alias twice (two monthly indices)
        raise AssertionError(broke("no duplicate: each session once behind the alias", exc)) from None
    count = stack.es_count(es_client)
    lost, extra = set(expected) - set(got), set(got) - set(expected)
    assert not lost, broke("no loss: every session of the replay is in Elasticsearch", f"{len(lost)} missing, e.g. {sorted(lost)[:5]}")
    assert not extra, broke("no extra session: nothing the replay lacks", f"{len(extra)} extra, e.g. {sorted(extra)[:5]}")
    assert len(got) == count == meta["sessions"], broke("no duplicate: as many documents as sessions", (len(got), count))
    reasons = Counter(d["abort_reason"] for d in got.values() if d["abort_reason"])
    assert reasons == Counter(meta["abort_reason"]), broke("abort_reason counts as generated", reasons - Counter(meta["abort_reason"]))
    differ = [i for i in expected if got[i] != expected[i]]
    assert not differ, broke(
        "each session's fields equal the replay's (no partial or stale version)", [(i, got[i], expected[i]) for i in differ[:5]]
    )

