"""What ``discover mqtt`` infers from messages, checked against the collector's own decoder."""

from __future__ import annotations

import json
import math
from typing import Any

from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.mqtt_json import JsonDecoder
from plantpulse.collectors.sparkplug import DataType, MetricValue, encode_payload, node_topic
from plantpulse.discover.fragment import render
from plantpulse.discover.mqtt import source_entries, table
from plantpulse.discover.mqtt_infer import Message, infer, subscription_sources

NOW = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MS = NOW // 1_000_000


def msg(topic: str, payload: Any) -> Message:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(topic, data, NOW)


def decoded(messages: list[Message], listened: str = "#") -> dict[str, list[float]]:
    """Every proposed source decodes every message it matches, as the collector would."""
    found = infer(messages, listened)
    out: dict[str, list[float]] = {}
    for subs in subscription_sources(found):
        decoder = JsonDecoder(
            MqttSource.model_validate(
                {"kind": "mqtt", "name": "x", "host": "h", "subscriptions": subs}
            ).subscriptions
        )
        for m in messages:
            if not decoder.subscriptions_for(m.topic):
                continue
            for s in decoder.decode(m.topic, m.payload, m.received):  # raises on a bad proposal
                out.setdefault(s.tag, []).append(s.value)
    return out


def test_one_message_per_signal_like_the_simulator() -> None:
    messages = [
        msg(f"pp/sim/line1/{w}/{s}", {"ts": MS + k, "value": v, "quality": "good"})
        for k, (w, s, v) in enumerate(
            [("weld01", "current", 180.5), ("weld01", "voltage", 24.0), ("weld02", "current", 179.0)]
        )
    ]
    messages.append(msg("pp/sim/line1/weld02/current", {"ts": MS, "value": None, "quality": "bad"}))
    found = infer(messages, "pp/sim/#")
    [g] = found.json
    assert g.filters == ["pp/sim/line1/+/+"]
    assert subscription_sources(found) == [
        [
            {
                "topic": "pp/sim/line1/+/+",
                "tag": "line1/{3}/{4}",
                "value": "$.value",
                "timestamp": "$.ts",
                "timestamp_format": "ms",
                "quality": "$.quality",
            }
        ]
    ]
    got = decoded(messages, "pp/sim/#")
    assert got["line1/weld01/current"] == [180.5]
    assert got["line1/weld02/current"][0] == 179.0 and math.isnan(got["line1/weld02/current"][1])


def test_arrays_of_readings_named_by_a_field() -> None:
    messages = [
        msg(
            f"f/line1/{w}",
            {
                "ts": "2026-01-01T00:00:00.250Z",
                "readings": [{"signal": "电流", "value": 1.5}, {"signal": "v", "value": "2"}],
            },
        )
        for w in ("weld01", "weld02")
    ]
    [g] = infer(messages, "f/#").json
    assert (g.array, g.name and g.name.path, g.timestamp and g.timestamp.format) == (
        "$.readings",
        "signal",
        "iso",
    )
    assert decoded(messages, "f/#") == {
        "line1/weld01/电流": [1.5],
        "line1/weld01/v": [2.0],
        "line1/weld02/电流": [1.5],
        "line1/weld02/v": [2.0],
    }


def test_several_values_per_message_make_one_source_per_value() -> None:
    payload = {
        "time": MS // 1000,
        "temp": 21.5,
        "press": {"bar": 3.2},
        "ok": True,
        "unit": "C",
        "raw": [1, 2],
    }
    messages = [msg("factory/press1/telemetry", payload), msg("factory/press1/telemetry", payload)]
    found = infer(messages, "factory/#")
    sources = subscription_sources(found)
    assert [s[0]["value"] for s in sources] == ["$.temp", "$.press.bar", "$.ok"]
    assert {s[0]["timestamp_format"] for s in sources} == {"s"}
    assert decoded(messages, "factory/#") == {
        "press1/telemetry/temp": [21.5, 21.5],
        "press1/telemetry/press_bar": [3.2, 3.2],
        "press1/telemetry/ok": [1.0, 1.0],
    }
    entries = source_entries(found, name="mqtt-h", connection={"host": "h", "port": 1883})
    assert [e["name"] for e in entries] == ["mqtt-h", "mqtt-h-2", "mqtt-h-3"]
    render(entries)  # passes the schema as printed
    assert any("a list without readings" in n for n in found.json[0].notes)


def test_a_field_missing_from_some_messages_is_not_proposed() -> None:
    messages = [msg("d/a", {"v": 1, "extra": 2}), msg("d/a", {"v": 2})]
    [g] = infer(messages).json
    assert [f.path for f in g.values] == ["$.v"]
    assert any("$.extra is in 1 of 2 messages" in n for n in g.notes)


def test_a_wildcard_that_would_catch_other_shapes_falls_back_to_exact_topics() -> None:
    messages = [
        msg("p/a/temp", {"value": 1}),
        msg("p/b/temp", {"value": 2}),
        msg("p/c/status", {"state": "on", "code": 5}),  # same depth, another shape
        msg("p/d/log", b"not json"),
    ]
    found = infer(messages, "p/#")
    filters = [f for g in found.json for f in g.filters]
    assert "p/+/+" not in filters
    assert found.skipped == {"p/d/log": "not JSON"}
    got = decoded(messages, "p/#")
    assert got == {"a/temp": [1.0], "b/temp": [2.0], "c/status": [5.0]}


def test_plain_numbers_epoch_guesses_and_odd_keys() -> None:
    messages = [
        msg("x/raw", b"23.5"),
        msg("x/us", {"t": NOW // 1000, "a b": 7, "quality": 0x40000000}),
        msg("x/ns", {"stamp": NOW, "v": 1}),  # epoch ns near now: a time even without a time-like key
    ]
    got = decoded(messages, "x/#")
    assert got == {"raw": [23.5], "us": [7.0], "ns": [1.0]}
    by_topic = {g.topics[0]: g for g in infer(messages, "x/#").json}
    assert by_topic["x/us"].values[0].path == '$["a b"]'
    assert by_topic["x/us"].timestamp is not None and by_topic["x/us"].timestamp.format == "us"
    assert by_topic["x/us"].quality is not None and by_topic["x/ns"].timestamp is not None


def test_sparkplug_metrics_through_the_collectors_decoder() -> None:
    birth = encode_payload(
        MS, 0, [MetricValue("温度", 1, DataType.DOUBLE, 21.5), MetricValue("on", 2, DataType.BOOLEAN, True)]
    )
    data = encode_payload(MS + 100, 1, [MetricValue(None, 1, DataType.DOUBLE, 22.0)])
    messages = [
        Message(
            node_topic("g1", "NBIRTH", "edge1"),
            encode_payload(MS, 0, [MetricValue("bdSeq", None, DataType.INT64, 1)]),
            NOW,
        ),
        Message(node_topic("g1", "DBIRTH", "edge1", "dev1"), birth, NOW),
        Message(node_topic("g1", "DDATA", "edge1", "dev1"), data, NOW),
        Message(node_topic("g2", "NDATA", "edge9"), data, NOW),
    ]
    found = infer(messages, "spBv1.0/#")
    g1, g2 = found.sparkplug
    assert (g1.group, g1.nodes, g1.metrics) == (
        "g1",
        ["edge1"],
        {"edge1/dev1/on": "1", "edge1/dev1/温度": "22"},
    )
    assert g2.metrics == {} and any("--rebirth" in n for n in g2.notes)
    entries = source_entries(found, name="m", connection={"host": "h", "port": 1883})
    assert [e["sparkplug"] for e in entries] == [
        {"group": "g1", "edge_nodes": ["edge1"]},
        {"group": "g2", "edge_nodes": ["edge9"]},
    ]
    assert [e["name"] for e in entries] == ["m-sparkplug-g1", "m-sparkplug-g2"]
    render(entries)
    lines = table(found, {m.topic: 1 for m in messages})
    assert any("22 -> edge1/dev1/温度" in line for line in lines)


def test_nothing_usable() -> None:
    found = infer([msg("a", b"\xff\xfe"), msg("b", {"s": "text"})])
    assert found.json == [] and set(found.skipped) == {"a", "b"}
    assert subscription_sources(found) == []
