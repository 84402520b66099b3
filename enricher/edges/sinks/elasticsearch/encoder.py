"""How the Elasticsearch sink encodes documents: the concrete index, `event.ingested`, the bulk request body.

`event.ingested` (ECS: when the document reached the store; detection rules use it as their
`timestamp_override`, so a document written late is still seen) is the time of the bulk request that writes
the document, set here and not by the document builder, so replay's NDJSON stays deterministic. A document
is encoded once, when queued, with a placeholder value; each request (a retry too) writes its own time over
the placeholder, so a document held back by an outage gets the time it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# Encoded where `event.ingested` goes, replaced by the request's time: never sent as it is.
INGESTED_SLOT = "0000-00-00T00:00:00.000Z"
_SLOT_BYTES = orjson.dumps({"ingested": INGESTED_SLOT})[1:-1]  # b'"ingested":"0000-…Z"'
_SLOT_SKIP = len(b'"ingested":"')


def index_for(prefix: str, doc: dict[str, Any]) -> str:
    """The concrete index of a document: `<prefix>-YYYY.MM`, the UTC month of its @timestamp (see assets)."""
    ts = doc.get("@timestamp")
    if not isinstance(ts, str) or len(ts) < 7:
        return f"{prefix}-undated"
    if ts.endswith("Z"):  # what documents.py writes: already UTC
        return f"{prefix}-{ts[0:4]}.{ts[5:7]}"
    from enricher.edges.sinks.elasticsearch.assets import index_name

    return index_name(prefix, ts)


def encode(doc: dict[str, Any]) -> tuple[bytes, int]:
    """The document as JSON with an `event.ingested` placeholder, and where the placeholder's value starts."""
    event = doc.get("event")
    stamped = {**event, "ingested": INGESTED_SLOT} if isinstance(event, dict) else {"ingested": INGESTED_SLOT}
    line = orjson.dumps({**doc, "event": stamped})
    # Unique: inside a JSON string every quote is escaped, so this byte sequence can only be our key and value.
    return line, line.find(_SLOT_BYTES) + _SLOT_SKIP


def ingested_now() -> str:
    """The current time as `event.ingested` writes it: `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Item:
    """One queued document, encoded."""

    index: str
    doc_id: str | None
    line: bytes  # the encoded document (the only copy kept: decoded again for a dead letter)
    slot: int  # where the `event.ingested` placeholder's value starts in `line`
    sources: list[Any] = field(default_factory=list)
    owner: Any = None
    epoch: int = 0
    ingested: str = INGESTED_SLOT  # the time the last request that carried it wrote

    def stamped(self) -> bytes:
        """The document as last sent: its `event.ingested` is that request's time."""
        return self.line[: self.slot] + self.ingested.encode() + self.line[self.slot + len(INGESTED_SLOT) :]


def bulk_body(items: list[Item]) -> bytes:
    """The bulk request body of these items, each with `event.ingested` = now (one time per request)."""
    now = ingested_now()
    stamp = now.encode()
    skip = len(INGESTED_SLOT)
    body = bytearray()
    for it in items:
        action: dict[str, Any] = {"_index": it.index}
        if it.doc_id is not None:
            action["_id"] = it.doc_id
        body += orjson.dumps({"index": action})
        body += b"\n"
        line, slot = it.line, it.slot
        body += line[:slot]
        body += stamp
        body += line[slot + skip :]
        body += b"\n"
        it.ingested = now
    return bytes(body)
