"""esa-enricher: stitch Cisco ESA mail_logs lines into one enriched document per message."""

from enricher.accel import compiled as _speedups

__version__ = "0.1.0"

# Compiled copies of the hot modules, where `make install` built them and they match their sources.
_speedups.install()
