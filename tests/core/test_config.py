"""plant.yaml validation: every problem at once, at FILE:LINE:COL, secrets from the environment."""

from pathlib import Path

import pytest

from plantpulse.cli import main
from plantpulse.config import load_config
from plantpulse.errors import ConfigError

RULES = """\
rules:
  - id: weld-current-deviation
    tag: line1/weld*/current
    deviation: {setpoint: "{asset}/current_sp", limit: 5}
    for: 3s
    severity: high
"""

GOOD = """\
site: {name: 焊装车间, timezone: Asia/Shanghai}
sources:
  - kind: opcua
    name: weld-opcua
    endpoint: opc.tcp://127.0.0.1:4840
    username: ${PP_TEST_USER}
    password: ${PP_TEST_PASSWORD}
    tags:
      - {name: line1/weld01/current, node: "ns=2;s=line1/weld01/current", deadband: 0.1}
      - {name: line1/weld01/current_sp, node: "ns=2;s=line1/weld01/current_sp"}
rules: [rules/*.yaml]
store: {url: "sqlite:///plant.db"}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "weld.yaml").write_text(RULES, encoding="utf-8")
    path = tmp_path / "plant.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_interpolates_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_USER", "焊工")
    monkeypatch.setenv("PP_TEST_PASSWORD", "s3cret")
    loaded = load_config(write(tmp_path, GOOD))
    src = loaded.plant.sources[0]
    assert src.username == "焊工"
    assert src.password is not None and src.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loaded.plant)
    assert [p.name for p in loaded.rule_files] == ["weld.yaml"]
    assert loaded.plant.site.name == "焊装车间"


def test_all_problems_reported_together_with_positions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PP_TEST_USER", raising=False)
    monkeypatch.setenv("PP_TEST_PASSWORD", "x")
    text = GOOD.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus").replace(
        "deadband: 0.1", "deadbnd: 0.1"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = [str(p) for p in err.value.problems]
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}:1:") and "Mars/Olympus" in lines[0]
    assert lines[1] == f"{path}:6:15: sources.0.username: environment variable PP_TEST_USER is not set"
    assert lines[2].startswith(f"{path}:9:") and "unknown key 'deadbnd'" in lines[2]


def test_missing_rule_files_and_duplicate_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_USER", "u")
    monkeypatch.setenv("PP_TEST_PASSWORD", "p")
    path = write(tmp_path, GOOD.replace("rules: [rules/*.yaml]", "rules: [nowhere/*.yaml]"))
    with pytest.raises(
        ConfigError, match=r"plant.yaml:11:\d+: rules: no rule file matches 'nowhere/\*.yaml'"
    ):
        load_config(path)


def test_check_command_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PP_TEST_USER", "u")
    monkeypatch.setenv("PP_TEST_PASSWORD", "p")
    good = write(tmp_path, GOOD)
    assert main(["check", "-c", str(good)]) == 0
    assert "ok: 1 sources, 2 tags, 1 rules" in capsys.readouterr().out
    bad = write(tmp_path, GOOD.replace("kind: opcua", "kind: profibus"))
    assert main(["check", "-c", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:" in err and "profibus" in err


def test_yaml_syntax_error_points_at_the_spot(tmp_path: Path) -> None:
    path = write(tmp_path, "site:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"plant.yaml:\d+:\d+: YAML syntax"):
        load_config(path)


NEEDS_A_SOURCE = (
    "a plant needs at least one OPC UA, Modbus or MQTT source under sources: "
    "(plantpulse discover writes one; see docs/first-device.md)"
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", f"1:1: the file is empty; {NEEDS_A_SOURCE}"),
        ("# a plant, some day\n\n", f"1:1: the file is empty; {NEEDS_A_SOURCE}"),
        ("site: {name: 焊装车间}\n", f"1:1: no sources; {NEEDS_A_SOURCE}"),
        ("site: {name: 焊装车间}\nsources: []\n", f"2:1: no sources; {NEEDS_A_SOURCE}"),
    ],
    ids=["empty", "comments", "no-sources-key", "empty-list"],
)
@pytest.mark.parametrize("command", ["check", "run"])
def test_a_plant_without_sources_is_refused_by_check_and_run(  # noqa: PLR0917 (fixtures and params)
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    text: str, problem: str, command: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # were run to start, its store would be created here
    path = tmp_path / "plant.yaml"
    path.write_text(text, encoding="utf-8")
    argv = [command, "-c", str(path)] + (["--duration", "0.1"] if command == "run" else [])
    assert main(argv) == 1
    assert capsys.readouterr().err == f"{path}:{problem}\n"
    assert not (tmp_path / "plantpulse.db").exists()


def test_an_invalid_tag_glob_fails_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PP_TEST_USER", "u")
    monkeypatch.setenv("PP_TEST_PASSWORD", "p")
    path = write(tmp_path, GOOD)
    rules = tmp_path / "rules" / "weld.yaml"
    rules.write_text(RULES.replace("line1/weld*/current", "line1/weld[0-9/current"), encoding="utf-8")
    assert main(["check", "-c", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{rules}:3:5: rule weld-current-deviation: tag: invalid tag pattern 'line1/weld[0-9/current': "
        "'[' at character 11 opens a character class that is never closed (write [abc] or [!abc])\n"
    )
