"""The ``kafka:`` section and the commands around it: one-line errors, ``kafka topics``, the
role dispatch's refusals. Against a real Tansu broker where one is needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from plantpulse.cli import main
from plantpulse.config import load_config
from plantpulse.errors import ConfigError
from plantpulse.scaleout.client import aiokafka_options
from plantpulse.scaleout.tansu import TansuBroker
from tests.scaleout.conftest import plant_of, write_plant

DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"


def run(*argv: str) -> int:
    return main(list(argv))


def test_the_documented_kafka_section_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = re.search(r"```yaml\n(kafka:\n.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    (tmp_path / "plant.yaml").write_text(block.group(1), encoding="utf-8")
    monkeypatch.setenv("KAFKA_PASSWORD", "s3cret")
    kafka = load_config(tmp_path / "plant.yaml").plant.kafka
    assert kafka is not None and kafka.partitions == 16 and kafka.sasl is not None
    assert kafka.sasl.password.get_secret_value() == "s3cret"
    assert kafka.checkpoint == 5_000_000_000 and kafka.topics.retention == 7 * 86_400 * 10**9
    opts = aiokafka_options(kafka.model_copy(update={"tls": None}))
    assert opts["security_protocol"] == "SASL_PLAINTEXT" and opts["sasl_plain_password"] == "s3cret"


def test_problems_point_at_their_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    path = tmp_path / "plant.yaml"
    path.write_text(
        "kafka:\n  brokers: [localhost]\n  partitions: 0\n  sasl: {username: u, password: '${NOPE_PW}'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = [str(p) for p in e.value.problems]
    assert any(line.startswith(f"{path}:2:") and "'localhost' is not host:port" in line for line in lines)
    assert any(line.startswith(f"{path}:3:") and "partitions" in line for line in lines)
    assert any(line.startswith(f"{path}:4:") and "NOPE_PW is not set" in line for line in lines)


def test_roles_need_the_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plant.yaml").write_text("site: {name: 车间}\n", encoding="utf-8")
    assert run("run", "--role", "evaluate", "-c", str(tmp_path / "plant.yaml")) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"{tmp_path / 'plant.yaml'}: run --role evaluate needs a kafka: section (docs/scale-out.md)"
    ]


def test_unreachable_brokers_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plant.yaml").write_text("kafka: {brokers: ['127.0.0.1:1']}\n", encoding="utf-8")
    assert run("kafka", "topics", "-c", str(tmp_path / "plant.yaml")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: brokers 127.0.0.1:1: ")


@pytest.mark.slow
def test_kafka_topics_shows_creates_and_refuses_a_wrong_count(
    tmp_path: Path, broker: TansuBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_plant(tmp_path, broker)
    assert run("kafka", "topics", "-c", str(config)) == 1
    out = capsys.readouterr()
    assert out.out.count("missing") == 3 and "--create" in out.err
    assert run("run", "--role", "sink", "-c", str(config)) == 1  # refused before anything runs
    assert "run plantpulse kafka topics --create" in capsys.readouterr().err
    assert run("kafka", "topics", "-c", str(config), "--create") == 0
    assert capsys.readouterr().out.count("created") == 3
    assert run("kafka", "topics", "-c", str(config)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["plantpulse.samples", "4", "partitions", "delete"],
        ["plantpulse.alerts", "4", "partitions", "delete"],
        ["plantpulse-evaluate-partition-state-changelog", "4", "partitions", "compact"],
    ]
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["kafka"]["partitions"] = 8
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run("kafka", "topics", "-c", str(config), "--create") == 1
    assert "has 4 partitions, the deployment needs 8" in capsys.readouterr().out


def test_collect_refuses_an_unknown_source(
    tmp_path: Path, broker: TansuBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_plant(tmp_path, broker)
    plant = plant_of(config)
    assert plant.sources
    assert run("run", "--role", "collect", "--source", "nope", "-c", str(config)) == 1
    assert capsys.readouterr().err.startswith(f"error: {config} has no source 'nope' (sources: ")
    assert run("run", "--role", "sink", "--source", plant.sources[0].name, "-c", str(config)) == 1
    assert capsys.readouterr().err.strip() == "error: --source is for --role collect"
