"""A message shows its connection as of its cut (`Message finished` + grace): lines of the connection stamped
before it are in the message's document whatever order they arrive in, lines stamped after it are not, and
the message is written once (docs/decisions/late-lines.md section 3)."""

from __future__ import annotations

from typing import Any

from tests.metamorphic import assert_same, records_of, replay, replay_config, replay_with_restarts

# Connection 6201 carries MID 8201 (finished at :02, cut at :07) and MID 8202, which starts after that cut.
IN_ORDER = [
    "Fri Nov 27 15:10:00 2026 Info: New SMTP ICID 6201 interface Data 1 (192.0.2.10) address 198.51.100.131 reverse dns host mail.example.org verified yes",
    "Fri Nov 27 15:10:01 2026 Info: Start MID 8201 ICID 6201",
    "Fri Nov 27 15:10:01 2026 Info: MID 8201 ICID 6201 From: <nina@example.org>",
    "Fri Nov 27 15:10:02 2026 Info: MID 8201 ICID 6201 RID 0 To: <oscar@example.com>",
    "Fri Nov 27 15:10:02 2026 Info: MID 8201 ready 5120 bytes from <nina@example.org>",
    "Fri Nov 27 15:10:02 2026 Info: Message aborted MID 8201 Dropped by filter 'drop_zip_attachments'",
    "Fri Nov 27 15:10:02 2026 Info: Message finished MID 8201 done",
    "Fri Nov 27 15:10:05 2026 Info: ICID 6201 TLS success protocol TLSv1.2 cipher ECDHE-RSA-AES256-GCM-SHA384",
    "Fri Nov 27 15:10:08 2026 Info: Start MID 8202 ICID 6201",
    "Fri Nov 27 15:10:08 2026 Info: MID 8202 ICID 6201 From: <nina@example.org>",
    "Fri Nov 27 15:10:09 2026 Info: Message finished MID 8202 done",
    "Fri Nov 27 15:10:10 2026 Info: ICID 6201 close",
    "Fri Nov 27 15:10:30 2026 Info: New SMTP ICID 6202 interface Data 1 (192.0.2.10) address 198.51.100.132 reverse dns host relay.example.net verified yes",
]
TLS = 7
LATE = [*IN_ORDER[:TLS], *IN_ORDER[TLS + 1 : TLS + 3], IN_ORDER[TLS], *IN_ORDER[TLS + 3 :]]  # 3 s late, after :08


def _by_id(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["event"]["id"]: d for d in docs}


def test_a_connection_line_before_the_cut_is_in_the_message_wherever_it_arrives() -> None:
    cfg = replay_config()
    want = replay(records_of(IN_ORDER, cfg), cfg)
    first = _by_id(want)["esa:m8201:1795792201"]["esa"]
    assert first["connection"]["tls"]["protocol"] == "TLSv1.2"
    assert first["connection"]["message_count"] == 1  # MID 8202 started after 8201's cut
    assert "closed_time" not in first["connection"]  # the close is stamped after it
    assert "writes" not in first["session"]
    late = records_of(LATE, cfg)
    assert_same(want, replay(late, cfg), "TLS line 3 s late", lists_in_any_order=True)
    # Checkpointed after MID 8202's start (8201 keeps its copy of the connection), restarted, then the late line.
    restarted = replay_with_restarts(late, cfg, [(TLS + 2, TLS + 2, TLS + 2)])
    assert_same(want, restarted, "restarted before the late TLS line", lists_in_any_order=True)
