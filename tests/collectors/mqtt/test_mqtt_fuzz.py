"""Property-based fuzzing: the payload decoders raise nothing but DecodeError."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantpulse.collectors.mqtt_config import JsonSubscription, SparkplugOptions
from plantpulse.collectors.mqtt_json import DecodeError, JsonDecoder
from plantpulse.collectors.sparkplug import DataType, MetricValue, SparkplugDecoder, encode_payload

JSON = JsonDecoder(
    [
        JsonSubscription(topic="a/+/+", tag="{1}/{2}", value="$.v", timestamp="$.t", quality="$.q"),
        JsonSubscription(
            topic="b/#", tag="x/{$.id}/{name}", array="$.r", value="v", timestamp="t", timestamp_format="ms"
        ),
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["v", "t", "q", "r", "id", "name"]) | st.text(max_size=5), inner, max_size=5
        )
    ),
    max_leaves=20,
)
topics = st.sampled_from(["a/l/w", "a/l", "b/x", "b", "c/d", "$SYS/a/b"]) | st.text(max_size=20)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _json(topic: str, payload: bytes) -> None:
    with contextlib.suppress(DecodeError):
        JSON.decode(topic, payload, 1)


@fast
@given(topics, st.binary(max_size=200))
def test_json_bytes(topic: str, payload: bytes) -> None:
    _json(topic, payload)


@fast
@given(topics, json_values)
def test_json_documents(topic: str, doc: object) -> None:
    _json(topic, json.dumps(doc, allow_nan=True).encode())


SPB = SparkplugDecoder(SparkplugOptions(group="g"))
spb_topics = st.sampled_from(
    ["spBv1.0/g/NBIRTH/n", "spBv1.0/g/NDATA/n", "spBv1.0/g/DBIRTH/n/d", "spBv1.0/g/DDATA/n/d",
     "spBv1.0/g/DDEATH/n/d", "spBv1.0/g/NDEATH/n", "spBv1.0/g/NCMD/n", "spBv1.0/h/NDATA/n"]
) | st.text(max_size=30)  # fmt: skip
metrics = st.builds(
    MetricValue,
    name=st.none() | st.sampled_from(["bdSeq", "a", "b/c", "Node Control/Rebirth", ""]),
    alias=st.none() | st.integers(0, 2**64 - 1),
    datatype=st.integers(0, 40),
    value=st.none() | st.booleans() | st.floats(width=32) | st.integers(-(2**63), 2**64 - 1),
    timestamp_ms=st.none() | st.integers(0, 2**64 - 1),
    quality=st.none() | st.integers(0, 2**32 - 1),
    historical=st.booleans(),
)


def _spb(topic: str, payload: bytes) -> None:
    with contextlib.suppress(DecodeError):
        SPB.decode(topic, payload, 1)


@fast
@given(spb_topics, st.binary(max_size=200))
def test_sparkplug_bytes(topic: str, payload: bytes) -> None:
    _spb(topic, payload)


@fast
@given(
    st.lists(
        st.tuples(spb_topics, st.none() | st.integers(0, 2**64 - 1), st.lists(metrics, max_size=5)),
        max_size=8,
    )
)
def test_sparkplug_sessions(messages: list[tuple[str, int | None, list[MetricValue]]]) -> None:
    for topic, seq, ms in messages:
        try:
            payload = encode_payload(1, seq, ms)
        except (ValueError, OverflowError, TypeError):
            continue  # the encoder refusing absurd inputs is fine; we fuzz the decoder
        _spb(topic, payload)


def test_datatype_codes_cover_the_basic_types() -> None:
    assert DataType.BOOLEAN == 11 and DataType.DOUBLE == 10
