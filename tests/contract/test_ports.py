"""Every implementation of a port has each of its methods, and accepts every parameter the port names.

A structural check of the classes (no instance, no service): `typing.Protocol`'s `isinstance` only checks that
the names exist, this also checks the parameters, so a renamed or missing argument fails here and not in the
service at run time. What the implementations *do* is checked by test_sinks.py and test_state_stores.py.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from kafka import KafkaConsumer

from enricher.edges import ports
from enricher.edges.kafka.confluent import ConfluentConsumer, Record
from enricher.edges.sinks.elasticsearch import ElasticsearchSink
from enricher.edges.sinks.fanout import Fanout
from enricher.edges.sinks.kafka_topic import KafkaTopicSink
from enricher.edges.sinks.ndjson import NdjsonSink
from enricher.edges.sources.files import read_lines
from enricher.edges.state.kafka import KafkaStateStore
from enricher.edges.state.memory import MemoryStateStore

IMPLEMENTATIONS: list[tuple[type[Any], type[Any]]] = [
    (ports.Source, KafkaConsumer),
    (ports.Source, ConfluentConsumer),
    (ports.Sink, NdjsonSink),
    (ports.BatchSink, ElasticsearchSink),
    (ports.BatchSink, KafkaTopicSink),
    (ports.BatchSink, Fanout),
    (ports.StateStore, MemoryStateStore),
    (ports.StateStore, KafkaStateStore),
]


def port_methods(port: type[Any]) -> dict[str, inspect.Signature]:
    """The methods a protocol declares (its own and those of the protocols it extends)."""
    out: dict[str, inspect.Signature] = {}
    for klass in reversed(port.__mro__):
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        for name, member in vars(klass).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                out[name] = inspect.signature(member)
    return out


@pytest.mark.parametrize(("port", "impl"), IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_an_implementation_has_every_method_and_parameter_of_its_port(port: type[Any], impl: type[Any]) -> None:
    methods = port_methods(port)
    assert methods, f"{port.__name__} declares no method"
    for name, wanted in methods.items():
        assert hasattr(impl, name), f"{impl.__name__} has no {name}() ({port.__name__})"
        have = inspect.signature(getattr(impl, name))
        takes_any = any(p.kind is p.VAR_KEYWORD for p in have.parameters.values())
        for p in list(wanted.parameters.values())[1:]:  # after self
            if p.kind is p.VAR_POSITIONAL:
                assert any(q.kind is q.VAR_POSITIONAL for q in have.parameters.values()), f"{impl.__name__}.{name}(*{p.name})"
            else:
                assert p.name in have.parameters or takes_any, f"{impl.__name__}.{name}() lacks `{p.name}` ({port.__name__})"
                if p.default is not inspect.Parameter.empty and p.name in have.parameters:
                    assert have.parameters[p.name].default is not inspect.Parameter.empty, (
                        f"{impl.__name__}.{name}(): `{p.name}` must be optional, as in {port.__name__}"
                    )


def test_the_confluent_record_is_a_record() -> None:
    assert isinstance(Record(3, b"k", b"v"), ports.Record)


def test_the_file_source_is_a_line_source(tmp_path: Any) -> None:
    import gzip

    plain, packed = tmp_path / "a.log", tmp_path / "a.log.gz"
    plain.write_bytes(b"one\ntwo \xff\n")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    from enricher.edges.sources.files import open_input

    for path in (plain, packed):
        f, _size = open_input(str(path))
        with f:
            lines: ports.LineSource = read_lines(f)
            assert list(lines) == ["one\n", "two \ufffd\n"]
