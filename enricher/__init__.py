"""esa-enricher: stitch Cisco ESA mail_logs lines into one enriched document per message."""

__version__ = "0.1.0"
