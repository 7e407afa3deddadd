"""What ``discover mqtt`` infers from messages, checked against the collector's own decoder."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.mqtt_json import JsonDecoder
from plantpulse.collectors.sparkplug import DataType, MetricValue, encode_payload, node_topic
from plantpulse.discover.fragment import render
from plantpulse.discover.mqtt import source_entries, table
from plantpulse.discover.mqtt_infer import Message, infer, subscriptions

NOW = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
MS = NOW // 1_000_000


def msg(topic: str, payload: Any) -> Message:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Message(topic, data, NOW)


def decoded(messages: list[Message], listened: str = "#") -> dict[str, list[float]]:
    """The proposed source decodes every message it matches, as the collector would."""
    source = MqttSource.model_validate(
        {"kind": "mqtt", "name": "x", "host": "h", "subscriptions": subscriptions(infer(messages, listened))}
    )
    decoder = JsonDecoder(source.subscriptions)
    out: dict[str, list[float]] = {}
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
    assert subscriptions(found) == [
        {
            "topic": "pp/sim/line1/+/+",
            "tag": "line1/{3}/{4}",
            "value": "$.value",
            "timestamp": "$.ts",
            "timestamp_format": "ms",
            "quality": "$.quality",
        }
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


def test_several_values_per_message_are_fields_of_one_subscription() -> None:
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
    assert subscriptions(found) == [
        {
            "topic": "factory/press1/telemetry",
            "asset": "press1/telemetry",
            "fields": {"temp": "{asset}/temp", "press.bar": "{asset}/press_bar", "ok": "{asset}/ok"},
            "timestamp": "$.time",
            "timestamp_format": "s",
        }
    ]
    assert decoded(messages, "factory/#") == {
        "press1/telemetry/temp": [21.5, 21.5],
        "press1/telemetry/press_bar": [3.2, 3.2],
        "press1/telemetry/ok": [1.0, 1.0],
    }
    entries = source_entries(found, name="mqtt-h", connection={"host": "h", "port": 1883})
    assert [e["name"] for e in entries] == ["mqtt-h"]  # one source per broker
    render(entries)  # passes the schema as printed
    assert any("a list without readings" in n for n in found.json[0].notes)


def test_a_flat_object_per_welder_shares_one_subscription_with_its_asset() -> None:
    """docs/mqtt.md's flat object: a setpoint read from the same message as the value."""
    messages = [
        msg(f"plant/line1/{w}", {"ts": MS + 100, "current": c, "voltage": 24.1, "current_sp": 180})
        for w, c in (("weld01", 180.2), ("weld02", 175.0))
    ]
    found = infer(messages, "plant/#")
    assert subscriptions(found) == [
        {
            "topic": "plant/line1/+",
            "asset": "line1/{2}",
            "fields": {
                "current": "{asset}/current",
                "voltage": "{asset}/voltage",
                "current_sp": "{asset}/current_sp",
            },
            "timestamp": "$.ts",
            "timestamp_format": "ms",
        }
    ]
    assert decoded(messages, "plant/#") == {
        "line1/weld01/current": [180.2],
        "line1/weld01/voltage": [24.1],
        "line1/weld01/current_sp": [180.0],
        "line1/weld02/current": [175.0],
        "line1/weld02/voltage": [24.1],
        "line1/weld02/current_sp": [180.0],
    }
    lines = table(found, {m.topic: 1 for m in messages})
    assert any("180.2 -> line1/{2}/current" in line for line in lines)


def test_every_number_of_a_nested_object_is_a_pattern() -> None:
    """Keys that differ by device and by message are all taken: the pattern needs none of them."""
    messages = [
        msg("gw/line1/weld01/data", {"ts": MS / 1000, "d": {"current": 180.2, "voltage": 24, "q": "good"}}),
        msg("gw/line1/weld01/data", {"ts": MS / 1000, "d": {"current": 181.0, "mode": "auto", "q": "bad"}}),
        msg("gw/line1/weld02/data", {"ts": MS / 1000, "d": {"running": True, "current": None, "q": "good"}}),
    ]
    found = infer(messages, "gw/#")
    [g] = found.json
    assert g.notes == []  # a key missing from a message is no reason to leave it out
    assert subscriptions(found) == [
        {
            "topic": "gw/line1/+/data",
            "asset": "line1/{2}/data",
            "fields": "$.d.*",
            "timestamp": "$.ts",
            "timestamp_format": "s",
            "quality": "$.d.q",
        }
    ]
    got = decoded(messages, "gw/#")
    assert got.keys() == {
        "line1/weld01/data/current",
        "line1/weld01/data/voltage",
        "line1/weld02/data/running",
        "line1/weld02/data/current",
    }
    assert got["line1/weld01/data/current"] == [180.2, 181.0] and got["line1/weld02/data/running"] == [1.0]
    assert math.isnan(got["line1/weld02/data/current"][0])
    lines = table(found, {m.topic: 1 for m in messages})
    assert any("$.d.*" in line and "fields" in line for line in lines)
    assert any("180.2 -> line1/{2}/data/current" in line for line in lines)


def test_telegraf_json_is_a_pattern_over_its_fields() -> None:
    message = {
        "fields": {"current": 180.2, "arc_on": True},
        "name": "weld",
        "tags": {"line": "line1", "welder": "weld01"},
        "timestamp": MS // 1000,
    }
    messages = [msg("telegraf/host1/weld", message)]
    [sub] = subscriptions(infer(messages, "telegraf/#"))
    assert (sub["fields"], sub["timestamp"], sub["timestamp_format"]) == ("$.fields.*", "$.timestamp", "s")
    assert decoded(messages, "telegraf/#") == {"host1/weld/current": [180.2], "host1/weld/arc_on": [1.0]}


def test_a_nested_object_that_a_pattern_would_misread_is_a_mapping() -> None:
    """A numeric string (a pattern skips strings), a second time field, an unsafe key: mappings."""
    for d in (
        {"a": 1, "b": "2.5"},
        {"a": 1, "b": 2, "t2": MS},
        {"a": 1, "b c": 2},
    ):
        messages = [msg("n/x", {"ts": MS, "d": d})]
        [sub] = subscriptions(infer(messages))
        assert isinstance(sub["fields"], dict), d
        got = decoded(messages)
        assert got == {"n/x/d_a": [1.0], ("n/x/d_b_c" if "b c" in d else "n/x/d_b"): [float(d.get("b", 2))]}


def test_arrays_of_objects_with_several_values_name_the_asset_by_their_id() -> None:
    messages = [
        msg(
            "gateway/line1/snapshot",
            {
                "ts": MS,
                "welders": [
                    {"id": "weld01", "current": 180.1, "voltage": 24.0},
                    {"id": "weld02", "current": 175.5, "voltage": 23.5},
                ],
            },
        )
    ]
    assert subscriptions(infer(messages, "gateway/#")) == [
        {
            "topic": "gateway/line1/snapshot",
            "asset": "line1/snapshot/{id}",
            "array": "$.welders",
            "fields": {"current": "{asset}/current", "voltage": "{asset}/voltage"},
            "timestamp": "$.ts",
            "timestamp_format": "ms",
        }
    ]
    assert decoded(messages, "gateway/#") == {
        "line1/snapshot/weld01/current": [180.1],
        "line1/snapshot/weld01/voltage": [24.0],
        "line1/snapshot/weld02/current": [175.5],
        "line1/snapshot/weld02/voltage": [23.5],
    }


def test_a_reading_named_by_a_reserved_key_and_leaves_that_collide() -> None:
    readings = [{"field": "current", "value": 1}, {"field": "voltage", "value": 2}]
    messages = [msg("r/a", {"readings": readings}), msg("c/a", {"a_b": 1, "a": {"b": 2}})]
    subs = {s["topic"]: s for s in subscriptions(infer(messages))}
    assert subs["r/a"]["tag"] == 'r/a/{["field"]}'  # {field} would be the fields key, not this one
    assert subs["c/a"]["fields"] == {"a_b": "{asset}/a_b", "a.b": "{asset}/a_b_2"}
    assert decoded(messages) == {
        "r/a/current": [1.0],
        "r/a/voltage": [2.0],
        "c/a/a_b": [1.0],
        "c/a/a_b_2": [2.0],
    }


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
    for heard in (messages, messages[:3]):  # each subscription matching a topic decodes it
        found = infer(heard, "p/#")
        filters = [f for g in found.json for f in g.filters]
        assert "p/+/+" not in filters
        got = decoded(heard, "p/#")
        assert got == {"a/temp": [1.0], "b/temp": [2.0], "c/status": [5.0]}
    assert infer(messages, "p/#").skipped == {"p/d/log": "not JSON"}


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
    assert subscriptions(found) == []


def test_the_example_in_docs_mqtt_md_is_what_discover_prints() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "mqtt.md").read_text(encoding="utf-8")
    section = doc.split("## Discovering topics", 1)[1]
    shown_table, shown_yaml = re.findall(r"```(?:yaml)?\n(.*?)```", section, re.DOTALL)[:2]
    at = 1_767_254_400_500_000_000
    d = {"current": 180.2, "voltage": 24, "mode": "auto", "q": "good"}
    flat = {"ts": 1767254400100, "current": 180.2, "voltage": 24.1, "current_sp": 180}
    payloads = {
        "gw/line2/weld03/data": {"ts": 1767254400.5, "d": d},
        "gw/line2/weld04/data": {"ts": 1767254400.5, "d": {"current": 170.0, "voltage": 24, "q": "good"}},
        "plant/line1/weld01": flat,
        "plant/line1/weld02": flat | {"current": 175.0},
    }
    messages = [Message(t, json.dumps(p).encode(), at) for t, p in payloads.items()]
    found = infer(messages, "#")
    assert "\n".join(table(found, {m.topic: 1 for m in messages})) + "\n" == shown_table
    assert (
        render(source_entries(found, name="mqtt-broker", connection={"host": "broker", "port": 1883}))
        == shown_yaml
    )
