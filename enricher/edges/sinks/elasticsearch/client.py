"""The Elasticsearch client the sink and `setup` use, from `ElasticsearchSettings`."""

from __future__ import annotations

from typing import Any


def make_client(es: Any) -> Any:
    """An `elasticsearch.Elasticsearch` client from ElasticsearchSettings (secrets unwrapped only here)."""
    from elasticsearch import Elasticsearch
    from elasticsearch.serializer import OrjsonSerializer

    kwargs: dict[str, Any] = {
        "hosts": [u.strip() for u in es.url.split(",") if u.strip()],
        "serializer": OrjsonSerializer(),  # bulk answers are parsed by orjson, not the json module
        "request_timeout": es.request_timeout_seconds,
        "verify_certs": es.verify_certs,
        "retry_on_timeout": False,  # the sink retries, with backoff and back-pressure
        "max_retries": 0,
    }
    if es.ca_certs:
        kwargs["ca_certs"] = es.ca_certs
    if es.ssl_assert_fingerprint:
        kwargs["ssl_assert_fingerprint"] = es.ssl_assert_fingerprint
    if es.api_key is not None:
        kwargs["api_key"] = es.api_key.get_secret_value()
    elif es.username is not None and es.password is not None:
        kwargs["basic_auth"] = (es.username, es.password.get_secret_value())
    return Elasticsearch(**kwargs)
