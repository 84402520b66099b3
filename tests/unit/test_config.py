"""One configuration model for every command: defaults written once, one precedence rule, secrets kept secret."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from enricher.cli import build_parser
from enricher.cli.options import config_of
from enricher.config import Config, ListenSettings, default_of, load, load_layers
from enricher.core.classify.rules import ClassifyConfig
from enricher.core.sessions.stitcher import StitchConfig
from enricher.errors import ConfigError


@pytest.mark.parametrize(("core", "section"), [(StitchConfig, "sessions"), (ClassifyConfig, "classify")])
def test_the_core_sections_are_the_core_settings_with_the_core_defaults(core: type, section: str) -> None:
    """A field added to the core's settings must be in the model (with the core's default), and no other."""
    model = type(getattr(Config(), section))
    assert set(model.model_fields) == {f.name for f in dataclasses.fields(core)}
    built = Config().stitch_config() if section == "sessions" else Config().classify_config()
    assert built == core()


def _setting_actions() -> list[tuple[str, argparse.Action]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(name, act) for name, p in sub.choices.items() for act in p._actions if act.dest.startswith("set:")]


def test_every_flag_overrides_a_model_key_and_its_help_shows_the_model_default() -> None:
    actions = _setting_actions()
    assert len(actions) > 30  # replay, produce, setup, listen
    for command, act in actions:
        key = act.dest.removeprefix("set:")
        default = default_of(key)  # KeyError: a flag for a key the model does not have
        assert act.help and f"({key}" in act.help, f"{command} {act.option_strings}: help does not name {key}"
        if default is not None and act.const is None:
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"default {shown})" in act.help, f"{command} {act.option_strings}: {act.help}"


def test_a_help_default_follows_the_model(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ListenSettings.model_fields["queue_size"], "default", 777)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["listen", "--help"])
    assert "listen.queue_size; default 777)" in " ".join(capsys.readouterr().out.split())


def _replay_config(args: list[str]) -> Config:
    """The configuration `esa-enricher replay ARGS` runs with."""
    from enricher.cli.replay import overrides

    a = build_parser().parse_args(["replay", "-", *args])
    return config_of(a, overrides(a))


def test_precedence_file_then_environment_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sessions]\ngrace_seconds = 1\nidle_timeout_seconds = 100\n[listen]\nqueue_size = 5\n")
    monkeypatch.setenv("ESA__SESSIONS__GRACE_SECONDS", "2")
    assert _replay_config(["-c", str(cfg)]).sessions.grace_seconds == 2  # env over file
    assert _replay_config(["-c", str(cfg), "--grace", "3"]).sessions.grace_seconds == 3  # flag over env
    assert _replay_config(["-c", str(cfg)]).sessions.idle_timeout_seconds == 100  # the file's, nothing over it
    monkeypatch.delenv("ESA__SESSIONS__GRACE_SECONDS")
    assert _replay_config(["-c", str(cfg)]).sessions.grace_seconds == 1
    # listen reads the same model, the same way.
    monkeypatch.setenv("ESA__LISTEN__PEERS", '{"192.0.2.1" = "esa1"}')
    a = build_parser().parse_args(["listen", "-c", str(cfg), "--no-udp", "--appliance-from-peer", "--topic", "raw"])
    c = config_of(a)
    assert (c.listen.queue_size, c.listen.udp, c.listen.tcp, c.listen.appliance_from_peer) == (5, False, True, True)
    assert c.listen.peers == {"192.0.2.1": "esa1"} and c.kafka.topic == "raw"
    assert load_layers(str(cfg), {"listen.queue_size": 9}, environ={}).listen.queue_size == 9


def test_key_paths_with_dots_from_repeatable_flags() -> None:
    """`--tz HOST=ZONE` with a dotted host (it used to be split into nested keys and refused)."""
    assert _replay_config(["--tz", "esa1.example.net=+09:00"]).time.timezones == {"esa1.example.net": "+09:00"}
    a = build_parser().parse_args(["listen", "--peer", "192.0.2.7=esa7.example.net"])
    from enricher.cli.listen import pairs

    assert config_of(a, pairs(a.peer, "listen.peers", "--peer", "A=B")).listen.peers == {"192.0.2.7": "esa7.example.net"}


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"listen": {"tls_port": 6514}}, "listen.tls_cert"),
        ({"listen": {"tls_port": 6514, "tls_cert": "c.pem"}}, "listen.tls_key"),
        ({"listen": {"udp": False, "tcp": False}}, "listen"),
        ({"listen": {"max_line_bytes": 2_000_000}}, "listen.max_line_bytes"),
        ({"listen": {"bogus": 1}}, "listen.bogus"),
        ({"kafka": {"topic_partitions": 0}}, "kafka.topic_partitions"),
    ],
)
def test_a_bad_listen_or_setup_value_names_its_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_layers(None, {k + "." + kk: v for k, sec in data.items() for kk, v in sec.items()}, environ={})
    assert e.value.key == key


def test_a_bad_flag_value_names_the_key_and_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from enricher.cli import EXIT_CONFIG, main

    assert main(["listen", "--tls-port", "6514", "--metrics-port", "0"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "'listen.tls_cert'" in err and "(flag --tls-cert)" in err


SECRET = "s3cr3t-value-never-shown"


@pytest.mark.parametrize(
    ("section", "file_key", "secret_key"),
    [
        ("kafka", "sasl_password_file", "sasl_password"),
        ("kafka", "ssl_password_file", "ssl_password"),
        ("elasticsearch", "password_file", "password"),
        ("elasticsearch", "api_key_file", "api_key"),
        ("kibana", "password_file", "password"),
        ("kibana", "api_key_file", "api_key"),
    ],
)
def test_secrets_from_files_and_never_shown(tmp_path: Path, section: str, file_key: str, secret_key: str) -> None:
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    cfg = load(None, {f"{section}.{file_key}": str(f)})
    assert getattr(getattr(cfg, section), secret_key).get_secret_value() == SECRET
    assert SECRET not in repr(cfg) + str(cfg) + cfg.model_dump_json()
    with pytest.raises(ConfigError) as e:
        load(None, {f"{section}.{file_key}": str(tmp_path / "missing")})
    assert e.value.key == f"{section}.{file_key}"


def test_secrets_from_the_environment_are_not_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as e:
        load_layers(None, environ={"ESA_ES_PASSWORD": SECRET, "ESA__ELASTICSEARCH__BULK_MAX_DOCS": "0"})
    assert e.value.key == "elasticsearch.bulk_max_docs" and SECRET not in str(e.value)


def test_the_reference_documents_every_section_and_the_precedence() -> None:
    from enricher.cli.reference import markdown

    doc = markdown(build_parser())
    assert "| `listen.queue_size` | `10000` | Messages between the network and the producer (back-pressure beyond it). Flag: `listen --queue-size`. |" in doc
    assert "Flag: `replay --appliance`, `produce --appliance`, `listen --appliance`." in doc
    assert "## listen" in doc and "`listen.queue_size`" in doc and "`kafka.topic_partitions`" in doc
    assert "defaults < file < environment < command-line flag" in doc


def test_building_the_parser_imports_no_network_stack() -> None:
    """`replay` starts without asyncio, ssl and prometheus_client (the listener is imported when `listen` runs)."""
    code = "import sys; from enricher.cli import build_parser; build_parser(); " + (
        "print(sorted(m for m in ('asyncio', 'ssl', 'prometheus_client', 'kafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
