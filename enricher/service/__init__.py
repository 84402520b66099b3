"""The streaming service (`esa-enricher run`): the loop, rebalancing, checkpoints, dead letters, health."""

from enricher.service.loop import Service

__all__ = ["Service"]
