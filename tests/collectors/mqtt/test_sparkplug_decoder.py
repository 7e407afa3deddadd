"""Sparkplug B host logic, pure: births, aliases, data, deaths, seq gaps -> rebirth."""

from __future__ import annotations

import math

import pytest

from plantpulse.collectors.mqtt_config import SparkplugOptions
from plantpulse.collectors.mqtt_json import DecodeError
from plantpulse.collectors.sparkplug import (
    DataType,
    MetricValue,
    SparkplugDecoder,
    decode_payload,
    encode_payload,
    parse_topic,
)
from plantpulse.samples import Quality

G = "spBv1.0/plant"
MS = 1_000_000


def dec(**options: object) -> SparkplugDecoder:
    return SparkplugDecoder(SparkplugOptions.model_validate({"group": "plant"} | options))


def nbirth(seq: int = 0, bd: int = 1, ts: int = 1000) -> bytes:
    return encode_payload(
        ts,
        seq,
        [
            MetricValue("bdSeq", None, DataType.INT64, bd),
            MetricValue("Node Control/Rebirth", None, DataType.BOOLEAN, False),
            MetricValue("temp", 1, DataType.FLOAT, 21.5),
        ],
    )


def dbirth(seq: int, ts: int = 1001) -> bytes:
    return encode_payload(
        ts,
        seq,
        [
            MetricValue("current", 0, DataType.DOUBLE, 180.25),
            MetricValue("count", 1, DataType.INT32, -3),
            MetricValue("big", 2, DataType.INT64, -(2**40)),
            MetricValue("on", 3, DataType.BOOLEAN, True),
            MetricValue("label", 4, DataType.STRING, None),
        ],
    )


def born(d: SparkplugDecoder) -> None:
    d.decode(f"{G}/NBIRTH/n1", nbirth(), 0)
    d.decode(f"{G}/DBIRTH/n1/w1", dbirth(1), 0)


def test_births_carry_values_and_aliases_decode_data() -> None:
    d = dec()
    out = d.decode(f"{G}/NBIRTH/n1", nbirth(), 5)
    assert [(s.ts, s.tag, s.value) for s in out.samples] == [
        (1000 * MS, "n1/temp", 21.5)
    ]  # bdSeq, NCMD skipped
    out = d.decode(f"{G}/DBIRTH/n1/w1", dbirth(1), 5)
    assert {s.tag: s.value for s in out.samples} == {
        "n1/w1/current": 180.25, "n1/w1/count": -3.0, "n1/w1/big": float(-(2**40)), "n1/w1/on": 1.0,
    }  # fmt: skip
    data = encode_payload(
        2000, 2, [MetricValue(None, 0, DataType.UNKNOWN, None), MetricValue(None, 1, 0, None)]
    )
    p = decode_payload(data)
    p.metrics[0].ClearField("is_null")
    p.metrics[0].ClearField("datatype")
    p.metrics[0].double_value = 181.5
    p.metrics[1].ClearField("is_null")
    p.metrics[1].ClearField("datatype")
    p.metrics[1].int_value = 2**32 - 7  # Int32 -7, two's complement, datatype only in the birth
    p.metrics[1].timestamp = 2500
    out = d.decode(f"{G}/DDATA/n1/w1", p.SerializeToString(), 5)
    assert [(s.ts, s.tag, s.value) for s in out.samples] == [
        (2000 * MS, "n1/w1/current", 181.5),
        (2500 * MS, "n1/w1/count", -7.0),
    ]
    assert out.rebirth is None and out.notes == []


def test_null_and_quality_property_make_bad_samples() -> None:
    d = dec()
    born(d)
    data = encode_payload(
        3000,
        2,
        [MetricValue(None, 0, DataType.DOUBLE, None), MetricValue(None, 1, DataType.INT32, 5, quality=0)],
    )
    out = d.decode(f"{G}/DDATA/n1/w1", data, 0)
    assert [s.quality for s in out.samples] == [Quality.BAD, Quality.BAD]
    assert math.isnan(out.samples[0].value) and out.samples[1].value == 5.0


def test_ddeath_and_ndeath_turn_exactly_the_known_tags_bad() -> None:
    d = dec()
    born(d)
    out = d.decode(f"{G}/DDEATH/n1/w1", encode_payload(4000, 2, []), 0)
    assert sorted(s.tag for s in out.samples) == ["n1/w1/big", "n1/w1/count", "n1/w1/current", "n1/w1/on"]
    assert all(s.quality == Quality.BAD and s.ts == 4000 * MS for s in out.samples)
    stale_will = encode_payload(None, None, [MetricValue("bdSeq", None, DataType.INT64, 0)])
    out = d.decode(f"{G}/NDEATH/n1", stale_will, 9)
    assert out.samples == [] and "stale NDEATH" in out.notes[0]
    will = encode_payload(None, None, [MetricValue("bdSeq", None, DataType.INT64, 1)])
    out = d.decode(f"{G}/NDEATH/n1", will, 9)
    assert [(s.tag, s.ts) for s in out.samples] == [("n1/temp", 9)]  # the device was already dead
    out = d.decode(f"{G}/NDATA/n1", encode_payload(5000, 3, [MetricValue(None, 1, DataType.FLOAT, 1.0)]), 10)
    assert out.samples == [] and out.rebirth is not None and out.rebirth.reason == "data before NBIRTH"


def test_seq_gap_asks_for_a_rebirth_once_per_retry() -> None:
    d = dec(rebirth_retry="10s")
    born(d)
    data = encode_payload(2000, 5, [MetricValue(None, 0, DataType.DOUBLE, 1.0)])
    out = d.decode(f"{G}/DDATA/n1/w1", data, 100)
    assert out.samples and out.rebirth is not None  # data after a gap is still good data
    assert out.rebirth.topic == f"{G}/NCMD/n1" and out.rebirth.reason == "seq gap 1 -> 5"
    cmd = decode_payload(out.rebirth.payload(7 * MS))
    assert (
        cmd.timestamp == 7 and cmd.metrics[0].name == "Node Control/Rebirth" and cmd.metrics[0].boolean_value
    )
    again = d.decode(f"{G}/DDATA/n1/w1", encode_payload(2001, 9, [MetricValue(None, 0, 10, 2.0)]), 200)
    assert again.rebirth is None  # within rebirth_retry
    later = d.decode(
        f"{G}/DDATA/n1/w1", encode_payload(2002, 20, [MetricValue(None, 0, 10, 2.0)]), 100 + 10**10
    )
    assert later.rebirth is not None
    d.decode(f"{G}/NBIRTH/n1", nbirth(), 0)  # a birth resets seq and the retry clock
    assert d.decode(f"{G}/DBIRTH/n1/w1", dbirth(1), 1).rebirth is None


def test_seq_wraps_at_256() -> None:
    d = dec()
    born(d)
    for seq in [*range(2, 256), 0, 1]:
        out = d.decode(f"{G}/DDATA/n1/w1", encode_payload(1, seq, [MetricValue(None, 0, 10, 1.0)]), 0)
        assert out.rebirth is None, seq


def test_unknown_alias_is_noted_and_asks_for_rebirth() -> None:
    d = dec()
    born(d)
    out = d.decode(f"{G}/DDATA/n1/w1", encode_payload(1, 2, [MetricValue(None, 42, 10, 1.0)]), 0)
    assert out.samples == [] and out.rebirth is not None and "unknown alias 42" in out.notes[0]


def test_tag_templates_filters_and_historical() -> None:
    d = dec(tag="{group}/{node}/{device}/{metric}", metrics={"current": "welders/{device}/I"}, devices=["w1"])
    d.decode(f"{G}/NBIRTH/n1", nbirth(), 0)
    out = d.decode(f"{G}/DBIRTH/n1/w1", dbirth(1), 0)
    assert {s.tag for s in out.samples} == {
        "welders/w1/I",
        "plant/n1/w1/count",
        "plant/n1/w1/big",
        "plant/n1/w1/on",
    }
    assert d.decode(f"{G}/DBIRTH/n1/w2", dbirth(2), 0).samples == []  # filtered device
    hist = encode_payload(1, 2, [MetricValue(None, 1, DataType.INT32, 4, historical=True)])
    out = d.decode(f"{G}/DDATA/n1/w1", hist, 0)
    assert out.samples == [] and [s.value for s in out.historical] == [4.0]
    assert dec().subscriptions() == ["spBv1.0/plant/+/+/#"]
    assert dec(edge_nodes=["b", "a"]).subscriptions() == ["spBv1.0/plant/+/a/#", "spBv1.0/plant/+/b/#"]


@pytest.mark.parametrize(
    "topic",
    ["spBv1.0/plant/NDATA", "spBv1.0/plant/XDATA/n1", "spAv1.0/plant/NDATA/n1", "spBv1.0/plant/NDATA/n1/d"],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(DecodeError) as e:
        parse_topic(topic)
    assert e.value.cause == "topic"


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as e:
        dec().decode(f"{G}/NBIRTH/n1", b"\xff\xff\xff", 0)
    assert e.value.cause == "protobuf"
