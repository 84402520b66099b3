"""Which Elasticsearch failures the sink retries, and which stop the service.

Retried (with back-off and back-pressure, for as long as it lasts): transport errors (connection refused or
reset, timeouts), HTTP 429 and 5xx (and 408, a timeout), on the whole request or on one item. Everything else
is not an outage that passes by waiting:
- a TLS or credentials failure on the request: `ElasticsearchAccessError` (configuration);
- any other 4xx on the whole request, or an exception that is not a transport error (a `TypeError` from a
  bug, a serialisation error): `ElasticsearchRequestError`, which stops the service with a message naming
  the error (what was not written is re-read from the last checkpoint after the fix);
- a 4xx on one item (mapping error, invalid document): that document goes to the dead-letter topic.
"""

from __future__ import annotations

from enricher.errors import EnricherError


class ElasticsearchAccessError(EnricherError):
    """Elasticsearch cannot be used as configured: its certificate is not trusted, or it refused the credentials."""


class ElasticsearchRequestError(EnricherError):
    """A bulk request failed in a way that retrying cannot fix (a 4xx on the whole request, or a bug)."""


def retryable_status(status: int) -> bool:
    """True for the HTTP statuses of a passing condition: 408 (timeout), 429 (too many requests), 5xx."""
    return status in (408, 429) or 500 <= status < 600


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an Elasticsearch client exception carries, if any."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "meta", None), "status", None)
    return status if isinstance(status, int) else None


def access_error(exc: BaseException) -> ElasticsearchAccessError | None:
    """A clear error for a TLS or credentials failure (None for anything else)."""
    from elastic_transport import TlsError

    if isinstance(exc, TlsError):
        return ElasticsearchAccessError(
            f"Elasticsearch's TLS certificate is not accepted: {exc.message} (check elasticsearch.ca_certs, "
            "elasticsearch.ssl_assert_fingerprint or elasticsearch.verify_certs)"
        )
    status = http_status(exc)
    if status in (401, 403):
        what = "refused the credentials" if status == 401 else "does not allow this for these credentials"
        reason = getattr(exc, "message", "") or type(exc).__name__
        return ElasticsearchAccessError(
            f"Elasticsearch {what} (HTTP {status} {reason}; check elasticsearch.api_key or username/password)"
        )
    return None


def retry_status(exc: BaseException) -> str:
    """The status label of a failed bulk request worth retrying (`"unavailable"` for a transport error);
    raises `ElasticsearchAccessError` or `ElasticsearchRequestError` for one that is not."""
    from elastic_transport import ConnectionError as TransportConnectionError
    from elastic_transport import ConnectionTimeout

    if (denied := access_error(exc)) is not None:
        raise denied from exc
    status = http_status(exc)
    if status is not None:
        if retryable_status(status):
            return str(status)
        reason = getattr(exc, "message", "") or str(exc)
        raise ElasticsearchRequestError(
            f"Elasticsearch refused the bulk request with HTTP {status} ({type(exc).__name__}: {reason}); only "
            "connection errors, timeouts, 429 and 5xx are retried: stopping"
        ) from exc
    if isinstance(exc, (TransportConnectionError, ConnectionTimeout)):
        return "unavailable"
    raise ElasticsearchRequestError(
        f"the bulk request failed with {type(exc).__name__}: {exc}; not a connection error, timeout, 429 or 5xx, "
        "so not retried: stopping"
    ) from exc
