"""Loading the configuration: the file, the environment and the flags, with one precedence rule (`load_layers`)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from enricher.config.models import Config
from enricher.errors import ConfigError


def default_of(key: str) -> Any:
    """The model's default of a dotted key (what CLI help shows); KeyError for a key the model does not have."""
    model: type[BaseModel] = Config
    *sections, name = key.split(".")
    for part in sections:
        ann = model.model_fields[part].annotation
        assert isinstance(ann, type) and issubclass(ann, BaseModel), key
        model = ann
    return model.model_fields[name].get_default(call_default_factory=True)


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def validate(data: dict[str, Any]) -> Config:
    """Build a Config from a dict; the first error names its key path."""
    try:
        return Config.model_validate(data)
    except ConfigError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, ConfigError):
            raise ctx_err from None
        raise ConfigError(_key_path(err["loc"]), msg) from None


# Friendly environment variables; any key can also be set as ESA__SECTION__KEY (double underscores).
ENV_ALIASES = {
    "ESA_KAFKA_BOOTSTRAP": "kafka.bootstrap_servers",
    "ESA_KAFKA_SASL_USERNAME": "kafka.sasl_username",
    "ESA_KAFKA_SASL_PASSWORD": "kafka.sasl_password",
    "ESA_KAFKA_SSL_PASSWORD": "kafka.ssl_password",
    "ESA_ES_URL": "elasticsearch.url",
    "ESA_ES_API_KEY": "elasticsearch.api_key",
    "ESA_ES_USERNAME": "elasticsearch.username",
    "ESA_ES_PASSWORD": "elasticsearch.password",
    "ESA_KIBANA_URL": "kibana.url",
    "ESA_KIBANA_API_KEY": "kibana.api_key",
    "ESA_KIBANA_USERNAME": "kibana.username",
    "ESA_KIBANA_PASSWORD": "kibana.password",
}


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Dotted-key overrides from the environment (values are parsed as TOML scalars when they can be)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, value in env.items():
        if name in ENV_ALIASES:
            out[ENV_ALIASES[name]] = value
        elif name.startswith("ESA__"):
            key = ".".join(p.lower() for p in name[5:].split("__") if p)
            try:
                out[key] = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                out[key] = value
    return out


# Dotted key ("sessions.grace_seconds") or key path (("time", "timezones", "esa1.example.net")) → value.
Overrides = Mapping[Any, Any]


def load_layers(path: str | None, flags: Overrides | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """What every command runs with, one precedence rule: the file (`-c`), then the environment over it, then the
    command line's flags (dotted keys) over both."""
    return load(path, {**env_overrides(environ), **(flags or {})})


def load(path: str | None, overrides: Overrides | None = None) -> Config:
    """Load a TOML file (or defaults), then apply dotted-key overrides in order (a later one wins)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("<file>", f"{path}: no such file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", f"{path}: invalid TOML: {exc}") from None
    for dotted, value in (overrides or {}).items():
        node = data
        # A tuple is a key path whose parts may hold dots themselves (a host name in `time.timezones`).
        parts = list(dotted) if isinstance(dotted, tuple) else dotted.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return validate(data)
