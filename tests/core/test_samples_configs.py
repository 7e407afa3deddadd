"""Every commented sample config shipped with a collector kind validates."""

from pathlib import Path

import pytest

import plantpulse
from plantpulse import yamlsrc
from plantpulse.config import PlantConfig

SAMPLES = sorted((Path(plantpulse.__file__).parent / "collectors" / "samples").glob("*.yaml"))


def test_there_are_samples() -> None:
    assert any(p.name == "opcua.yaml" for p in SAMPLES)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_config_is_valid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPCUA_USER", "OPCUA_PASSWORD", "PGPASSWORD", "WECOM_BOT_KEY", "MQTT_USER", "MQTT_PASSWORD"):
        monkeypatch.setenv(var, "x")
    plant = yamlsrc.validate(PlantConfig, yamlsrc.load(path, interpolate_env=True))
    assert plant.sources
