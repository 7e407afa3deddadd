"""Property-based fuzzing: the payload decoders raise nothing but DecodeError, and the columnar
JSON decoder agrees with the one it replaced on every shape both support."""

from __future__ import annotations

import contextlib
import json
import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reference_json import ReferenceJsonDecoder

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


# -- the columnar decoder against the one it replaced ----------------------------------------------
# ``reference_json`` is the decoder before columns (stdlib json, first matching subscription only).
# On the shapes both support (one value per reading, one subscription) they must agree exactly:
# the same rows, or both a DecodeError. (Not always the same cause: when several parts of a
# message are wrong, the new decoder reads the message-level timestamp and a topic-only tag once,
# before the readings, so it may name another of them first.) Documents hold finite numbers
# only: the old parser accepted NaN/Infinity literals, which RFC 8259 (and msgspec) do not.

KEYS = ["v", "t", "q", "r", "id", "a"]
finite = st.floats(allow_nan=False, allow_infinity=False)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | finite
    | st.sampled_from(["good", "BAD", " uncertain ", "1.5", "2026-01-01T08:00:00Z", "x", "weld01", ""])
    | st.text(max_size=8)
)
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=24,
)
subscriptions = st.fixed_dictionaries(
    {
        "topic": st.sampled_from(["a/+/+", "a/#", "+/l/w"]),
        "tag": st.sampled_from(["{1}/{2}", "x/{id}", "x/{$.id}/{-1}", "fixed/tag", "{topic}", "{5}/x"]),
        "value": st.sampled_from(["$.v", "v", "$", "a.v", "v[0]", "$.r[-1].v"]),
    },
    optional={
        "timestamp": st.sampled_from(["$.t", "t", "a.t"]),
        "timestamp_format": st.sampled_from(["iso", "s", "ms", "us", "ns"]),
        "quality": st.sampled_from(["$.q", "q"]),
        "array": st.sampled_from(["$.r", "$.a.r", "$"]),
    },
)
TOPICS = ["a/l/w", "a/l", "a/l/w/x", "b/l/w"]
compare = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(decoder: JsonDecoder | ReferenceJsonDecoder, topic: str, payload: bytes) -> object:
    try:
        return [(s.ts, s.tag, "nan" if math.isnan(s.value) else s.value, s.quality)
                for s in decoder.decode(topic, payload, 1_767_254_400_000_000_000)]  # fmt: skip
    except DecodeError:
        return "rejected"


@compare
@given(subscriptions, st.sampled_from(TOPICS), documents)
def test_new_decoder_agrees_with_the_reference(sub: dict[str, str], topic: str, doc: object) -> None:
    config = JsonSubscription.model_validate(sub)
    payload = json.dumps(doc).encode()
    expected = _outcome(ReferenceJsonDecoder([config]), topic, payload)
    assert _outcome(JsonDecoder([config]), topic, payload) == expected
    assert _outcome(JsonDecoder([config], typed=False), topic, payload) == expected


@compare
@given(
    st.lists(st.sampled_from(["v", "a.v", "r[0]", "q"]), min_size=1, max_size=3, unique=True),
    st.sampled_from([None, "$.r"]),
    st.booleans(),
    documents,
)
def test_fields_equal_one_subscription_per_field(
    paths: list[str], array: str | None, partial: bool, doc: object
) -> None:
    """``fields: {p1: t1, p2: t2}`` gives, reading by reading, what a single-value subscription
    per field gives; a message one of them rejects is rejected (unless the field is missing and
    ``partial`` skips it)."""
    common = {"topic": "a/+/+", "timestamp": "$.t", "timestamp_format": "ms"} | (
        {"array": array} if array else {}
    )
    multi = JsonDecoder(
        [
            JsonSubscription.model_validate(
                common | {"partial": partial, "fields": {p: f"{{1}}/{p}" for p in paths}}
            )
        ]
    )
    singles = [
        ReferenceJsonDecoder([JsonSubscription.model_validate(common | {"tag": f"{{1}}/{p}", "value": p})])
        for p in paths
    ]
    payload = json.dumps(doc).encode()
    got = _outcome(multi, "a/l/w", payload)
    each = [_outcome(d, "a/l/w", payload) for d in singles]
    if partial:
        assume("rejected" not in each)  # a missing field is skipped: not what the reference does
    if "rejected" in each:
        assert got == "rejected"
    else:
        rows = [list(r) for r in each]  # each a list of rows, one per reading
        assert got == [row for reading in zip(*rows, strict=True) for row in reading]


@compare
@given(
    st.lists(subscriptions, min_size=1, max_size=3),
    st.sampled_from(TOPICS),
    documents,
)
def test_typed_shapes_change_nothing(subs: list[dict[str, str]], topic: str, doc: object) -> None:
    configs = [JsonSubscription.model_validate(s) for s in subs]
    payload = json.dumps(doc).encode()
    assert _outcome(JsonDecoder(configs), topic, payload) == _outcome(
        JsonDecoder(configs, typed=False), topic, payload
    )
