"""The kind: mqtt schema: what it accepts, what it refuses, and the shipped sample config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import plantpulse
from plantpulse import yamlsrc
from plantpulse.collectors.mqtt_config import MqttSource, parse_path

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


def test_the_sample_config_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MQTT_USER", "u")
    monkeypatch.setenv("MQTT_PASSWORD", "p")
    doc = yamlsrc.load(SAMPLE, interpolate_env=True)
    sources = [MqttSource.model_validate(s) for s in doc.data["sources"]]
    assert {s.format for s in sources} == {"json", "sparkplug"}
    assert all(s.password is not None for s in sources if s.username)
