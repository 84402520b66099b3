"""Dead letters (`kafka.dead_letter_topic`): what could not be written or processed, with why and where from.

A dead letter is a JSON object `{"document", "error", "sources"}`; `sources` lists `{"topic", "partition",
"offset"}` of the record whose reading emitted the document (for documents closed by the clock or at the end
of a batch run: the last record read from that partition). A dead letter larger than `DEAD_LETTER_MAX_BYTES`
has its longest strings cut (listed in `error.truncated` with their size and SHA-256), so it always fits
Kafka's default 1 MB message limit. Every dead letter must be acknowledged by Kafka before an offset past its
record is committed (`confirm`, called by each checkpoint after the producer's flush).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from enricher.errors import CheckpointError

# Largest dead-letter value written (bytes): a 1,000,000-byte line fits whole, and the record stays under the
# producer's (1 MiB) and the broker's (1 MiB + 12) default limits with room for key and framing.
DEAD_LETTER_MAX_BYTES = 1_040_000


class DeadLetters:
    """Writes dead letters to the dead-letter topic and checks, at each checkpoint, that Kafka took them."""

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._futures: list[Any] = []

    def send(self, doc: dict[str, Any], error: dict[str, Any], sources: list[Any], key: bytes | None = None) -> None:
        """Queue one dead letter (keyed by `key`, else by the document's event.id when it has one)."""
        record = {"document": doc, "error": error, "sources": sources}
        value = orjson.dumps(record)
        if len(value) > DEAD_LETTER_MAX_BYTES:
            value = orjson.dumps(shrink_dead_letter(record, DEAD_LETTER_MAX_BYTES))
        if key is None:
            key = ((doc.get("event") or {}).get("id") or "").encode() or None
        self._futures.append(self.producer.send(self.topic, key=key, value=value))

    def confirm(self) -> None:
        """After producer.flush(): every dead letter must be in Kafka before an offset past it is committed."""
        futures, self._futures = self._futures, []
        for f in futures:
            if f.failed():
                raise CheckpointError(f"a dead letter could not be written to {self.topic}: {f.exception!r}")


def shrink_dead_letter(record: dict[str, Any], limit: int) -> dict[str, Any]:
    """A copy of a dead letter whose longest strings are cut until it fits `limit` bytes (each cut is listed
    in `error.truncated` with the original size and SHA-256, so the original can be found and checked)."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(record))
    cuts: list[dict[str, Any]] = []
    out["error"] = dict(out.get("error") or {}, truncated=cuts)
    strings: list[tuple[int, list[Any] | dict[str, Any], Any, str]] = []

    def walk(node: Any, path: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in items:
            p = f"{path}.{k}" if path else str(k)
            if isinstance(v, str) and len(v) > 256:
                strings.append((len(orjson.dumps(v)), node, k, p))  # encoded size: escapes count
            elif isinstance(v, (dict, list)):
                walk(v, p)

    walk(out, "")
    strings.sort(key=lambda s: -s[0])
    size = len(orjson.dumps(out))
    for _, node, k, path in strings:
        if size <= limit:
            break
        original = node[k].encode("utf-8")
        data = original
        while size > limit and len(data) > 256:
            keep = max(256, min(len(data) - (size - limit) - 2048, len(data) * 3 // 4))  # ≥ 25 % less each time
            data = data[:keep]
            node[k] = data.decode("utf-8", "ignore")
            size = len(orjson.dumps(out))
        cuts.append(
            {"path": path, "bytes": len(original), "kept_bytes": len(data), "sha256": hashlib.sha256(original).hexdigest()}
        )
    if size > limit:  # many small strings: keep the identity of the document and the head of its JSON
        doc = record.get("document") or {}
        text = orjson.dumps(doc).decode("utf-8")
        out["document"] = {
            "event": {"id": (doc.get("event") or {}).get("id")},
            "document_json_head": text[: limit // 2],
        }
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        cuts.append({"path": "document", "bytes": len(text), "kept_bytes": limit // 2, "sha256": digest})
    return out
