"""Flags that override configuration keys: declared once with their key, their help shows the model's default.

A flag made with `setting(parser, "--grace", "sessions.grace_seconds", …)` stores its value under the dest
`set:sessions.grace_seconds`; `flag_overrides` turns the flags given into dotted overrides, and `config_of` loads
the configuration with the one precedence rule (file < environment < flag; `enricher.config.load_layers`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from enricher.config import Config, default_of, load_layers
from enricher.errors import ConfigError, EnricherError, InputError

_PREFIX = "set:"

# Exit codes of every command.
EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def setting(parser: Any, flag: str, key: str, help: str, *, default_note: str | None = None, **kw: Any) -> None:
    """Add `flag`, which overrides config `key`; its help ends with the model's default (or `default_note`)."""
    default = default_of(key)
    if default_note is None and default is not None and kw.get("action") is None:
        default_note = _shown(default)
    text = f"{help} ({key}; default {default_note})" if default_note else f"{help} ({key})"
    if not kw.get("action"):  # argparse would derive the metavar from the dest (`SET:…`)
        kw.setdefault("metavar", flag.lstrip("-").upper().replace("-", "_"))
    parser.add_argument(flag, dest=_PREFIX + key, default=None, help=text.replace("%", "%%"), **kw)


def switch(parser: Any, flag: str, key: str, value: bool, help: str) -> None:
    """Add a flag without argument that sets the boolean config `key` to `value`."""
    setting(parser, flag, key, help, action="store_const", const=value)


def flag_overrides(a: argparse.Namespace) -> dict[Any, Any]:
    """The dotted config overrides of the flags given on the command line (made with `setting`/`switch`)."""
    return {k[len(_PREFIX) :]: v for k, v in vars(a).items() if k.startswith(_PREFIX) and v is not None}


def pairs(items: Iterable[str] | None, key: str, flag: str, what: str) -> dict[tuple[str, ...], str]:
    """`NAME=VALUE` items of a repeatable flag as overrides of `key.NAME` (NAME may hold dots: a key path)."""
    out: dict[tuple[str, ...], str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(key, f"{flag} expects {what}, got {item!r}")
        out[(*key.split("."), name)] = value
    return out


def config_of(a: argparse.Namespace, extra: dict[Any, Any] | None = None) -> Config:
    """The configuration a command runs with: `-c FILE` < environment < the flags given (and `extra` overrides)."""
    return load_layers(getattr(a, "config", None), {**flag_overrides(a), **(extra or {})})


def flags_by_key(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Config key → the `COMMAND --flag`s that set it (for docs/configuration.md)."""
    out: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                for sub_action in sub._actions:
                    if sub_action.dest.startswith(_PREFIX):
                        out.setdefault(sub_action.dest[len(_PREFIX) :], []).append(f"{command} {sub_action.option_strings[0]}")
    return out


def _flag_of(parser: argparse.ArgumentParser, command: str | None, key: str) -> str | None:
    """The flag of `command` that sets config `key`, if it has one."""
    for flag in flags_by_key(parser).get(key, ()):
        name, _, option = flag.partition(" ")
        if name == command:
            return option
    return None


def run_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, errors: tuple[type[BaseException], ...] = (EnricherError,)
) -> int:
    """Parse `argv`, run the command, turn the errors a user can fix into one line on stderr and an exit code."""
    a = parser.parse_args(argv)
    try:
        return int(a.func(a))
    except ConfigError as exc:
        flag = _flag_of(parser, getattr(a, "command", None), exc.key)
        hint = f" (flag {flag})" if flag else ""
        sys.stderr.write(f"esa-enricher: configuration error: {exc}{hint}\n")
        return EXIT_CONFIG
    except InputError as exc:
        sys.stderr.write(f"esa-enricher: cannot read {exc}\n")
        return EXIT_INPUT
    except errors as exc:
        sys.stderr.write(f"esa-enricher: {exc}\n")
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
