"""The Elasticsearch sink: `encoder` (index, `event.ingested`, bulk body), `retry` (which failures are retried
and which stop the service), `sink` (queueing, one request in flight, back-pressure, dead letters), `client`
(the client from the settings), `assets` (templates, mappings, lifecycle policy, index naming)."""

from enricher.edges.ports import FlushDeadline
from enricher.edges.sinks.elasticsearch.client import make_client
from enricher.edges.sinks.elasticsearch.retry import ElasticsearchAccessError, ElasticsearchRequestError, access_error
from enricher.edges.sinks.elasticsearch.sink import ElasticsearchSink

__all__ = [
    "ElasticsearchAccessError",
    "ElasticsearchRequestError",
    "ElasticsearchSink",
    "FlushDeadline",
    "access_error",
    "make_client",
]
