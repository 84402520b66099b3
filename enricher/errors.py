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


class ServiceError(EnricherError):
    """The streaming service stopped because going on could lose or corrupt data; the message says why."""


class CheckpointError(ServiceError):
    """A checkpoint could not be made durable (state snapshot or dead letters not acknowledged by Kafka):
    nothing past the previous checkpoint is committed, and a restart resumes from it."""


class ProcessingError(ServiceError):
    """A record made processing raise under `service.on_processing_error = "stop"`; `source` names the record
    (topic/partition@offset), which a restart reads again."""

    def __init__(self, source: str, cause: BaseException) -> None:
        super().__init__(f"processing {source} failed: {type(cause).__name__}: {cause}")
        self.source = source
        self.cause = cause
