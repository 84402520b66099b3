"""Typed errors that carry their context (config key path, file, reason code)."""

from __future__ import annotations


class EnricherError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(EnricherError):
    """A configuration value is missing or invalid; `key` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"config key {key!r}: {message}")
        self.key = key
        self.message = message


class InputError(EnricherError):
    """An input (file, stdin, topic) cannot be read at all."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message
