"""The kind: mqtt schema: what it accepts, what it refuses, and the shipped sample config."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

import plantpulse
from plantpulse import yamlsrc
from plantpulse.collectors.mqtt_config import MqttSource, parse_path
from plantpulse.config import load_config
from plantpulse.errors import ConfigError

SAMPLE = Path(plantpulse.__file__).parent / "collectors" / "samples" / "mqtt.yaml"


def _json(**extra: object) -> dict[str, object]:
    return {
        "kind": "mqtt",
        "name": "m",
        "host": "127.0.0.1",
        "subscriptions": [{"topic": "a/+/b", "tag": "{1}/b"}],
    } | extra


def test_defaults_are_persistent_qos1() -> None:
    src = MqttSource.model_validate(_json())
    assert src.qos == 1 and src.persistent and src.effective_client_id == "plantpulse-m"
    assert src.address == "mqtt://127.0.0.1:1883"
    assert src.tags == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subscriptions": [{"topic": "a/#/b", "tag": "x"}]}, "'#' must be the whole last level"),
        ({"subscriptions": [{"topic": "a/b+", "tag": "x"}]}, "must be a whole level"),
        ({"subscriptions": [{"topic": "a", "tag": "x", "value": "a..b"}]}, "unexpected"),
        ({"subscriptions": [{"topic": "a", "tag": "{1"}]}, "unbalanced"),
        ({"subscriptions": [{"topic": "a", "tag": "x", "colour": "red"}]}, "Extra inputs"),
        ({"subscriptions": []}, "at least one"),
        ({"qos": 2}, "qos"),
        ({"password": "x"}, "needs a username"),
        ({"tls": {"cert": "c.pem"}}, "cert and key"),
        ({"format": "sparkplug"}, "sparkplug: section"),
    ],
)
def test_refuses(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttSource.model_validate(_json(**change))


def test_sparkplug_needs_its_section_and_known_placeholders() -> None:
    base = {"kind": "mqtt", "name": "s", "host": "h", "format": "sparkplug"}
    src = MqttSource.model_validate(base | {"sparkplug": {"group": "g"}})
    assert src.sparkplug is not None and src.sparkplug.edge_nodes == ["+"]
    with pytest.raises(ValidationError, match="unknown placeholders"):
        MqttSource.model_validate(base | {"sparkplug": {"group": "g", "tag": "{node}/{sensor}"}})
    with pytest.raises(ValidationError, match="one topic level"):
        MqttSource.model_validate(base | {"sparkplug": {"group": "g/h"}})


def test_path_language() -> None:
    assert parse_path("$") == (True, ())
    assert parse_path('$.a[2]["b.c"]') == (True, ("a", 2, "b.c"))
    assert parse_path("x.y[-1]") == (False, ("x", "y", -1))
    assert parse_path('["asset"].b') == (False, ("asset", "b"))


def test_the_sample_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_USER", "u")
    monkeypatch.setenv("MQTT_PASSWORD", "p")
    doc = yamlsrc.load(SAMPLE, interpolate_env=True)
    sources = [MqttSource.model_validate(s) for s in doc.data["sources"]]
    assert {s.format for s in sources} == {"json", "sparkplug"}
    assert all(s.password is not None for s in sources if s.username)


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ({"topic": "a"}, "missing required key 'tag'"),
        ({"topic": "a", "fields": "$.d"}, "must end in .*"),
        ({"topic": "a", "fields": "$.*.x.*"}, "only the last step"),
        ({"topic": "a", "fields": {}}, "at least one entry"),
        ({"topic": "a", "fields": "$.*", "tag": "x/y"}, "must use {field}"),
        ({"topic": "a", "fields": "$.*"}, "or set asset:"),
        ({"topic": "a", "fields": {"v": "{asset}/v"}}, "set asset:"),
        ({"topic": "a", "tag": "{field}"}, "which only fields: defines"),
        ({"topic": "a", "fields": {"v": "x"}, "tag": "y"}, "remove tag"),
        ({"topic": "a", "fields": {"v": "x"}, "value": "$.v"}, "value is for one value per reading"),
        ({"topic": "a", "tag": "t", "exclude": ["seq"]}, "exclude is for a fields pattern"),
        ({"topic": "a", "fields": {"v[0]": "x/{field}"}}, "ends in an index"),
        ({"topic": "a", "asset": "{asset}/x", "tag": "t"}, "uses {asset}"),
    ],
)
def test_refuses_bad_fields(sub: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        MqttSource.model_validate(_json(subscriptions=[sub]))


def test_fields_forms_and_what_the_watchdog_and_checks_see() -> None:
    src = MqttSource.model_validate(
        _json(
            subscriptions=[
                {
                    "topic": "p/+/+",
                    "asset": "{1}/{2}",
                    "fields": {"current": "{asset}/current", "d.sp": "{asset}/{field}"},
                },
                {"topic": "q/+", "asset": "{1}", "fields": "$.d.*"},
                {"topic": "hall", "fields": {"t": "hall/temp", "h": "hall/{field}"}},
                {"topic": "r/+", "tag": '{1}/{["asset"]}'},  # a payload field named "asset"
            ]
        )
    )
    p, q, hall, r = src.subscriptions
    assert p.tag_patterns() == ["[^/]+/[^/]+/current", "[^/]+/[^/]+/sp"]
    assert q.tag_template == "{asset}/{field}" and q.tag_patterns() == ["[^/]+/.+"]
    assert hall.fixed_tags() == ["hall/temp", "hall/h"]
    assert r.tag_patterns() == ["[^/]+/.+"]
    assert [t.name for t in src.tags] == ["hall/temp", "hall/h"]  # known before any message


def test_check_points_at_each_wrong_key(tmp_path: Path) -> None:
    """``plantpulse check``: every problem at its own line and column, all in one run."""
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        textwrap.dedent(
            """\
            sources:
              - kind: mqtt
                name: m
                host: 127.0.0.1
                subscriptions:
                  - topic: plant/+/+
                    asset: "{1}/{2}"
                    fields:
                      current: "{asset}/current"
                      "a..b": "{asset}/x"
                      "v[0]": "{asset}/{field}"
                  - topic: plant/#
                    fields: $.d
                  - topic: p/#
                    fields: $.d.*
                    tag: "x/{field}"
                    value: $.v
            """
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as e:
        load_config(plant)
    lines = str(e.value).splitlines()
    assert lines == [
        f"{plant}:10:11: sources.0.subscriptions.0.fields.a..b: "
        "path 'a..b': unexpected '..b' (write a.b, [0] or [\"key\"])",
        f"{plant}:11:11: sources.0.subscriptions.0.fields.v[0]: "
        "'v[0]' ends in an index, so {field} has no key to name",
        f"{plant}:13:9: sources.0.subscriptions.1.fields: fields pattern '$.d' must end in .* (e.g. $.d.*), "
        "or map fields to tags",
        f"{plant}:17:9: sources.0.subscriptions.2.value: value is for one value per reading; "
        "with fields, each field is its own path",
    ]


def test_sparkplug_host_application_connects_with_a_clean_session() -> None:
    base = {"kind": "mqtt", "name": "s", "host": "h", "format": "sparkplug"}
    src = MqttSource.model_validate(base | {"sparkplug": {"group": "g", "host_id": "plantpulse-1"}})
    assert not src.persistent and src.state_topic == "spBv1.0/STATE/plantpulse-1"
    assert MqttSource.model_validate(base | {"sparkplug": {"group": "g"}}).state_topic is None
    with pytest.raises(ValidationError, match="clean session: remove persistent: true"):
        MqttSource.model_validate(base | {"persistent": True, "sparkplug": {"group": "g", "host_id": "h"}})
    with pytest.raises(ValidationError, match="one topic level"):
        MqttSource.model_validate(base | {"sparkplug": {"group": "g", "host_id": "a/b"}})
