"""The replay command as a user runs it: outputs, summary, errors and exit codes."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from enricher.cli import EXIT_CONFIG, EXIT_INPUT, EXIT_USAGE, main
from tests.conftest import ROOT

DEMO = ROOT / "samples" / "demo-mail_logs.log"


def summary_of(err: str) -> dict:
    return json.loads(err.strip().splitlines()[-1])


def test_demo_sample_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.ndjson"
    assert main(["replay", str(DEMO), "-o", str(out), "--no-progress"]) == 0
    s = summary_of(capsys.readouterr().err)
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    # MID 9001 is written twice (same id): its bounce, MID 9006, names it as parent after it was written.
    assert s["lines"] == 85 and s["unparsed"] == 0 and s["sessions"] == len(docs) == 9
    assert s["aborted"] == {
        "antispam_drop": 1,
        "connection_lost": 1,
        "connection_lost_before_mail_from": 1,
        "hard_bounce": 1,
        "hat_reject": 1,
        "inbound_timeout": 1,
        "sender_quit": 1,
    }
    assert len({d["event"]["id"] for d in docs}) == 8


def test_stdin_and_gzip_give_the_same_documents(tmp_path: Path) -> None:
    gz = tmp_path / "demo.log.gz"
    gz.write_bytes(gzip.compress(DEMO.read_bytes()))
    cmd = [sys.executable, "-m", "enricher", "replay", "--no-progress"]
    a = subprocess.run([*cmd, str(gz)], capture_output=True, check=True)
    b = subprocess.run([*cmd, "-"], input=DEMO.read_bytes(), capture_output=True, check=True)
    assert a.stdout == b.stdout and a.stdout.count(b"\n") == 9


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.ndjson"
    rc = main(["replay", str(DEMO), str(tmp_path / "nope.log"), "-o", str(out), "--no-progress"])
    assert rc == EXIT_INPUT
    assert "nope.log: no such file" in capsys.readouterr().err
    assert out.read_text() == ""  # nothing half-written


def test_directory_argument(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path), "--no-progress"]) == EXIT_INPUT
    assert "is a directory" in capsys.readouterr().err


def test_bad_arguments_exit_2() -> None:
    with pytest.raises(SystemExit) as e:
        main(["replay"])
    assert e.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as e:
        main(["replay", str(DEMO), "--inbound-timeout", "soon"])
    assert e.value.code == EXIT_USAGE


@pytest.mark.parametrize(
    "args,key",
    [
        (["--timezone", "Mars/Olympus"], "time.default_timezone"),
        (["--tz", "esa1=+99:00"], "time.timezones.esa1"),
        (["--tz", "esa1"], "time.timezones"),
        (["--inbound-timeout", "-5"], "classify.inbound_timeout_seconds"),
        (["--max-open-sessions", "0"], "sessions.max_open_sessions"),
        (["--reference-time", "yesterday"], "time.reference_time"),
    ],
)
def test_bad_config_values_name_the_key(args: list[str], key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DEMO), "--no-progress", *args]) == EXIT_CONFIG
    assert f"'{key}'" in capsys.readouterr().err


def test_config_file_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sessions]\ngrace_secs = 3\n")
    assert main(["replay", str(DEMO), "-c", str(cfg), "--no-progress"]) == EXIT_CONFIG
    assert "'sessions.grace_secs': unknown key" in capsys.readouterr().err


def test_config_file_values_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('appliance = "esa9"\n[classify]\ninbound_timeout_seconds = 120\n')
    out = tmp_path / "o.ndjson"
    assert main(["replay", str(DEMO), "-c", str(cfg), "-o", str(out), "--no-progress"]) == 0
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    assert {d["observer"]["hostname"] for d in docs} == {"esa9"}
    # With a 120 s timeout the 300 s abort is no longer explained by the timeout.
    assert "inbound_timeout" not in summary_of(capsys.readouterr().err)["aborted"]


def test_unparsed_lines_are_kept_as_error_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.log"
    src.write_bytes(b"garbage \xff\xfe line\n" + DEMO.read_bytes())
    out = tmp_path / "o.ndjson"
    assert main(["replay", str(src), "-o", str(out), "--no-progress"]) == 0
    docs = [json.loads(x) for x in out.read_text().splitlines()]
    errors = [d for d in docs if d["event"]["kind"] == "pipeline_error"]
    assert len(errors) == 1 and errors[0]["event"]["original"] == "garbage \ufffd\ufffd line"
    assert summary_of(capsys.readouterr().err)["unparsed"] == 1


def test_console_script_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "enricher", "--version"], capture_output=True, text=True, check=True)
    assert r.stdout.startswith("esa-enricher ")
