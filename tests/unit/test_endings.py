"""Endings never logged (`ending_not_logged`) and connection failures inherited by the message in flight.

The golden cases (`tests/golden/ending-*`, `inherit-*`) show the documents; these tests cover what a replay
cannot: batch ends of the service, processing-time ticks, checkpoints, lines of one second out of order.
"""

from __future__ import annotations

from typing import Any

from enricher.core.parsing.parser import Parser
from enricher.core.pipeline import Pipeline
from enricher.core.sessions.stitcher import StitchConfig, Stitcher

NEW = (
    "New SMTP ICID {icid} interface Data 1 (192.0.2.1) address 198.51.100.{icid} "
    "reverse dns host mx.example.net verified yes"
)


def _lines(*bodies: tuple[str, str]) -> list[str]:
    return [f"<22>Nov 27 {t} 2026 esa1 mail_logs: Info: {b}" for t, b in bodies]


def _pipeline(**cfg: Any) -> Pipeline:
    return Pipeline(Parser(), Stitcher(StitchConfig(**cfg)))


def _feed(p: Pipeline, lines: list[str], now: float | None = None) -> list[dict[str, Any]]:
    return [d for ln in lines for d in p.record_documents(ln, now=now)]


def _by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["event"]["id"]: d for d in docs}  # the last write wins, as in Elasticsearch


def _evidence(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["esa"]["abort"]["evidence"]  # type: ignore[no-any-return]


RECEIVED = _lines(
    ("12:00:00", NEW.format(icid=1)),
    ("12:00:01", "Start MID 10 ICID 1"),
    ("12:00:01", "MID 10 ICID 1 From: <a@example.com>"),
    ("12:00:02", "MID 10 ready 100 bytes from <a@example.com>"),
    ("12:00:02", "MID 10 queued for delivery"),
    ("12:00:03", "ICID 1 close"),
)


def test_batch_end_writes_ending_not_logged_then_the_real_ending_replaces_it() -> None:
    p = _pipeline()
    _feed(p, RECEIVED)
    drained = [d for d in p.drain() if d["esa"]["session"]["kind"] == "message"]
    assert len(drained) == 1
    first = drained[0]
    assert (first["abort_reason"], first["abort_layer"]) == ("ending_not_logged", "unknown")
    assert first["event"]["outcome"] == "unknown"
    ev = _evidence(first)
    assert ev["closed_by"] == "batch_end"
    assert (ev["last_line_kind"], ev["last_line_time"]) == ("queued", "2026-11-27T12:00:02.000Z")
    assert ev["seconds_before_close"] == 1.0  # the watermark is the ICID close, one second later
    later = _feed(
        p,
        _lines(
            ("12:00:05", "Message finished MID 10 done"),
            ("12:01:00", "ICID 99 close"),
        ),
    ) + list(p.flush())
    final = _by_id(later)[first["event"]["id"]]
    assert "abort_reason" not in final and final["esa"]["disposition"] == "queued"
    assert "abort" not in final["esa"]  # nothing of the earlier ending is left behind


def test_tick_expiry_is_dated_at_its_deadline() -> None:
    p = _pipeline(idle_timeout_seconds=600, quiet_seconds=60)
    _feed(p, RECEIVED, now=1000.0)
    docs = [d for d in p.tick(1000.0 + 900) if d["esa"]["session"]["kind"] == "message"]
    assert [d["esa"]["session"]["state"] for d in docs] == ["expired"]
    ev = _evidence(docs[0])
    assert ev["closed_by"] == "idle_timeout" and ev["idle_timeout_seconds"] == 600
    # Closed by processing time 900 s after 12:00:03, but dated at its deadline (the last line's 12:00:02 + 600 s):
    # which line's (or tick's) clock shows an expiry depends on the order lines arrive in, the deadline does not.
    assert ev["seconds_before_close"] == 600.0


def test_reused_icid_without_close_is_an_ending_not_logged() -> None:
    p = _pipeline()
    docs = _feed(
        p,
        _lines(
            ("12:00:00", NEW.format(icid=7)),
            ("12:00:00", "ICID 7 ACCEPT SG UNKNOWNLIST match sbrs[-1.0:10.0] SBRS 1.0 country Example"),
            ("12:30:00", NEW.format(icid=7)),
        ),
    )
    assert len(docs) == 1
    ev = _evidence(docs[0])
    assert docs[0]["abort_reason"] == "ending_not_logged"
    assert (ev["closed_by"], ev["last_line_kind"], ev["seconds_before_close"]) == ("icid_reused", "hat", 1800.0)


def test_last_line_kind_survives_a_checkpoint_and_needs_no_raw_lines() -> None:
    p = _pipeline(keep_raw=False)
    _feed(p, RECEIVED[:4])
    q = _pipeline(keep_raw=False)
    q.stitcher.restore(p.stitcher.snapshot())
    msg = [d for d in q.flush() if d["esa"]["session"]["kind"] == "message"][0]
    assert _evidence(msg)["last_line_kind"] == "ready"
    assert "raw" not in msg["esa"]


FAILED = [
    ("12:00:00", NEW.format(icid=2)),
    ("12:00:01", "Start MID 20 ICID 2"),
    ("12:00:01", "MID 20 ICID 2 From: <big@example.com>"),
    ("12:00:30", "Message aborted MID 20 Receiving aborted"),
    ("12:00:30", "Message finished MID 20 aborted"),
    ("12:00:30", "ICID 2 Receiving Failed: Message size exceeds limit"),
    ("12:00:31", "ICID 2 close"),
    ("12:05:00", "ICID 99 close"),
]


def test_failure_line_after_the_abort_lines_of_the_same_second_is_still_inherited() -> None:
    docs = _feed(p := _pipeline(), _lines(*FAILED)) + list(p.flush())
    kinds = [d["esa"]["session"]["kind"] for d in docs]
    assert kinds.count("connection") == 1  # ICID 99 only: ICID 2's failure is told by MID 20
    msg = next(d for d in docs if d["esa"]["session"]["kind"] == "message")
    assert (msg["abort_reason"], _evidence(msg)["inherited_from"]) == ("message_size_exceeded", "connection")


def test_a_message_received_after_all_does_not_take_the_connection_failure() -> None:
    # `ready` logged after the failure within the same second: the message was received; the connection's
    # failure is its own and gets its own document.
    lines = _lines(
        ("12:00:00", NEW.format(icid=3)),
        ("12:00:01", "Start MID 30 ICID 3"),
        ("12:00:01", "MID 30 ICID 3 From: <a@example.com>"),
        ("12:00:02", "ICID 3 Receiving Failed: Too Many Messages"),
        ("12:00:02", "MID 30 ready 100 bytes from <a@example.com>"),
        ("12:00:02", "ICID 3 close"),
        ("12:00:03", "Message finished MID 30 done"),
        ("12:05:00", "ICID 99 close"),
    )
    docs = _by_id(_feed(_pipeline(), lines))
    conn = docs["esa1:c3:1795780800"]
    assert (conn["abort_reason"], conn["abort_layer"]) == ("too_many_messages", "resource")
    assert "abort_reason" not in docs["esa1:m30:1795780801"]


def test_inheritance_does_not_depend_on_which_session_closes_first() -> None:
    # The message has no ending line: it closes at the end of input, long after its connection.
    lines = _lines(*[x for x in FAILED if "MID 20 Receiving" not in x[1] and "finished" not in x[1]])
    docs = _feed(p := _pipeline(), lines) + list(p.flush())
    assert [d["esa"]["session"]["kind"] for d in docs].count("connection") == 1  # ICID 99 only
    msg = next(d for d in docs if d["esa"]["session"]["kind"] == "message")
    assert msg["esa"]["session"]["state"] == "partial"
    assert (msg["abort_reason"], msg["abort_layer"]) == ("message_size_exceeded", "policy")
    assert _evidence(msg)["icid"] == 2 and _evidence(msg)["receiving_failed"] == "Message size exceeds limit"


def test_a_bare_finished_aborted_takes_the_connection_failure_over_aborted_without_reason() -> None:
    lines = _lines(*[x for x in FAILED if "MID 20 Receiving" not in x[1]])
    docs = _feed(p := _pipeline(), lines) + list(p.flush())
    msg = next(d for d in docs if d["esa"]["session"]["kind"] == "message")
    assert msg["esa"]["session"]["state"] == "complete"
    assert (msg["abort_reason"], _evidence(msg)["rule"]) == ("message_size_exceeded", "connection_inherited")


def test_a_session_already_idle_past_its_timeout_at_the_end_of_input_was_closed_by_the_timeout() -> None:
    """A connection opened by a line older than the idle timeout (on its appliance's clock) and never seen
    again ends the same way whether or not a later line moved the clock before the end of the input: the idle
    timeout closed it, not the end of the input (found by the restart property: a re-read tail leaves the
    clock where the checkpoint had it)."""
    lines = _lines(
        ("12:20:00", NEW.format(icid=2)),
        ("12:20:00", "ICID 2 close"),
        ("12:00:00", NEW.format(icid=1)),  # 20 minutes behind the clock; the idle timeout is 10
    )
    later = _lines(("12:20:05", NEW.format(icid=3)), ("12:20:05", "ICID 3 close"))
    ends = []
    for tail in ([], later):
        p = _pipeline(idle_timeout_seconds=600.0)
        docs = _by_id(_feed(p, lines + tail) + list(p.flush()))
        c1 = next(d for i, d in docs.items() if ":c1:" in i)
        ends.append((c1["abort_reason"], _evidence(c1)["closed_by"], _evidence(c1).get("idle_timeout_seconds")))
    assert ends[0] == ends[1] == ("ending_not_logged", "idle_timeout", 600.0)
