"""The Elasticsearch sink's failure policy: transport errors, 429 and 5xx are retried; anything else stops the
service with an error that names it, and nothing queued is lost meanwhile; every document not written is counted."""

from __future__ import annotations

from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, ConnectionTimeout, HttpHeaders, NodeConfig, TlsError
from elasticsearch import ApiError, BadRequestError

from enricher.edges.sinks.elasticsearch import ElasticsearchAccessError, ElasticsearchRequestError, ElasticsearchSink
from enricher.edges.sinks.elasticsearch.retry import retry_status, retryable_status
from enricher.errors import EnricherError
from enricher.telemetry import Metrics
from tests.unit.test_es_sink import FakeBulk, _doc


def api_error(status: int, kind: type[ApiError] = ApiError) -> ApiError:
    """An error as the elasticsearch client raises it for an HTTP status on the whole request."""
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    return kind(f"status {status}", meta, {"error": {"type": "x", "reason": "y"}})


@pytest.mark.parametrize(
    ("exc", "label"),
    [
        (ConnectionError("connection refused"), "unavailable"),
        (ConnectionTimeout("read timed out"), "unavailable"),
        (api_error(429), "429"),
        (api_error(500), "500"),
        (api_error(503), "503"),
        (api_error(408), "408"),
    ],
    ids=["connection", "timeout", "429", "500", "503", "408"],
)
def test_transport_errors_429_and_5xx_are_retried(exc: Exception, label: str) -> None:
    assert retry_status(exc) == label


@pytest.mark.parametrize(
    ("exc", "named"),
    [
        (api_error(400, BadRequestError), "HTTP 400"),
        (api_error(404), "HTTP 404"),
        (api_error(413), "HTTP 413"),
        (TypeError("bulk() got an unexpected keyword argument 'operations'"), "TypeError"),
        (KeyError("items"), "KeyError"),
        (ValueError("bad body"), "ValueError"),
    ],
    ids=["400", "404", "413", "TypeError", "KeyError", "ValueError"],
)
def test_anything_else_stops_with_a_message_naming_the_error(exc: Exception, named: str) -> None:
    with pytest.raises(ElasticsearchRequestError, match=named) as info:
        retry_status(exc)
    assert isinstance(info.value, EnricherError)  # the CLI prints it as `esa-enricher: …`, no traceback
    assert info.value.__cause__ is exc
    assert "not retried" in str(info.value) or "only connection errors" in str(info.value)


@pytest.mark.parametrize(("exc", "why"), [(api_error(401), "refused the credentials"), (api_error(403), "does not allow")])
def test_refused_credentials_are_a_configuration_error(exc: Exception, why: str) -> None:
    with pytest.raises(ElasticsearchAccessError, match=why):
        retry_status(exc)


def test_an_untrusted_certificate_is_a_configuration_error() -> None:
    with pytest.raises(ElasticsearchAccessError, match="TLS certificate"):
        retry_status(TlsError("certificate verify failed"))


def test_item_statuses_retried_are_408_429_and_5xx() -> None:
    assert [s for s in (200, 400, 404, 408, 409, 413, 429, 500, 502, 503, 504, 507) if retryable_status(s)] == [
        408, 429, 500, 502, 503, 504, 507,
    ]


class Failing(FakeBulk):
    """Raises the given exceptions on the first requests, then answers like FakeBulk."""

    def __init__(self, *errors: Exception) -> None:
        super().__init__()
        self.errors = list(errors)
        self.calls = 0

    def bulk(self, operations: bytes, filter_path: str) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return super().bulk(operations, filter_path)


def _sink(client: FakeBulk, letters: list[Any] | None = None) -> ElasticsearchSink:
    sink = ElasticsearchSink(client, "esa-sessions", lambda d, e, s: (letters if letters is not None else []).append(e))
    sink.sleep = lambda _s: None
    sink.initial_backoff = 0.0
    return sink


def test_an_outage_is_waited_out_and_counted_as_retries() -> None:
    client = Failing(ConnectionError("refused"), api_error(503), ConnectionTimeout("slow"))
    sink = _sink(client)
    sink.add(_doc(1))
    sink.flush()
    assert client.calls == 4 and len(client.bodies) == 1
    assert sink.metrics.bulk_retries.labels(status="unavailable")._value.get() == 2
    assert sink.metrics.bulk_retries.labels(status="503")._value.get() == 1
    assert sink.metrics.documents_written._value.get() == 1


@pytest.mark.parametrize("exc", [TypeError("a bug"), api_error(400, BadRequestError)], ids=["bug", "400"])
@pytest.mark.parametrize("background", [False, True], ids=["flush", "submit"])
def test_a_failure_that_is_not_an_outage_stops_at_once_and_keeps_the_documents(exc: Exception, background: bool) -> None:
    client = Failing(exc)
    sink = _sink(client)
    sink.add(_doc(1))
    sink.add(_doc(2))
    with pytest.raises(ElasticsearchRequestError):
        if background:
            sink.submit()
            sink.settle()
        else:
            sink.flush()
    assert client.calls == 1  # not retried
    assert sink.pending() == 2  # still queued: nothing is committed past them, they are re-read after the fix
    sink.close()


def test_refused_items_are_dead_lettered_and_counted_and_retryable_ones_retried() -> None:
    letters: list[Any] = []
    client = FakeBulk([201, 400, 503, 429], [201, 201])
    sink = _sink(client, letters)
    for i in range(4):
        sink.add(_doc(i))
    sink.flush()
    assert [e["status"] for e in letters] == [400]
    assert sink.metrics.dead_letters.labels(reason="400")._value.get() == 1
    assert sink.metrics.documents_written._value.get() == 3
    assert [len(b) for b in client.bodies] == [4, 2]


def test_documents_dropped_unwritten_are_counted() -> None:
    sink = _sink(Failing(ConnectionError("refused")))
    sink.metrics = Metrics()
    for i in range(5):
        sink.add(_doc(i), owner=i % 2)
    assert sink.discard([1]) == 2
    assert sink.metrics.documents_dropped.labels(reason="revoked")._value.get() == 2
    sink.close()  # three still queued: re-read from the checkpoint, counted as dropped here
    assert sink.metrics.documents_dropped.labels(reason="closed")._value.get() == 3
