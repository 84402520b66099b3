"""Configuration, declared once: typed, validated, unknown keys rejected, every field described.

Every command's settings are here (the CLI's flags only override keys of this model). Files are TOML; the
environment overrides the file and a command-line flag overrides both (`load_layers`). A bad value fails at
start with its dotted key path (`sessions.grace_seconds: …`). The sections are in models.py (defaults
written once: the core's sections read theirs from the core), loading in loading.py, and docs/configuration.md
is generated from the models by reference.py (`esa-enricher config-reference`).
"""

from enricher.config.loading import ENV_ALIASES, default_of, env_overrides, load, load_layers, validate
from enricher.config.models import (
    ClassifySettings,
    Config,
    ElasticsearchSettings,
    KafkaSettings,
    KibanaSettings,
    ListenSettings,
    ServiceSettings,
    SessionSettings,
    TimeSettings,
)
from enricher.config.reference import reference_markdown

__all__ = [
    "ENV_ALIASES",
    "ClassifySettings",
    "Config",
    "ElasticsearchSettings",
    "KafkaSettings",
    "KibanaSettings",
    "ListenSettings",
    "ServiceSettings",
    "SessionSettings",
    "TimeSettings",
    "default_of",
    "env_overrides",
    "load",
    "load_layers",
    "reference_markdown",
    "validate",
]
