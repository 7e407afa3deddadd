"""The acknowledge-link secret: too short is refused by ``check`` at its key, and a too-short
``$PLANTPULSE_ACK_SECRET`` stops ``run`` with one line before anything starts (it used to pass
``check`` and crash ``run`` with a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plantpulse.cli import main

PLANT = """\
store: {{url: "sqlite:///{db}"}}
team:
  links:
    ttl: 1h
{secret}sources: [{{kind: modbus, name: m, tcp: {{host: 127.0.0.1}}, tags: [{{name: a/b, address: 0}}]}}]
"""


def write(tmp_path: Path, secret: str = "") -> Path:
    path = tmp_path / "plant.yaml"
    text = PLANT.format(db=tmp_path / "pp.db", secret=f"    secret: {secret}\n" if secret else "")
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("secret", "env", "what"),
    [
        ('"short"', None, "the secret is 5 bytes"),
        ('"${PLANTPULSE_ACK_SECRET}"', "0123456789abcde", "the secret is 15 bytes"),
    ],
)
def test_check_refuses_a_short_configured_secret_at_its_key(  # noqa: PLR0917 (parameters and fixtures)
    secret: str,
    env: str | None,
    what: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env is not None:
        monkeypatch.setenv("PLANTPULSE_ACK_SECRET", env)
    path = write(tmp_path, secret)
    assert main(["check", "-c", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}:5:5: team.links.secret: {what}; acknowledge links need a secret of at least 16 bytes\n"
    )


def test_the_length_is_counted_in_utf8_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLANTPULSE_ACK_SECRET", raising=False)
    assert main(["check", "-c", str(write(tmp_path, '"确认链接密钥六"'))]) == 0  # 7 characters, 21 bytes


def test_a_short_env_secret_is_refused_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTPULSE_ACK_SECRET", "short")
    path = write(tmp_path)
    assert main(["check", "-c", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}:3:3: team.links: $PLANTPULSE_ACK_SECRET is 5 bytes;"
        " acknowledge links need a secret of at least 16 bytes\n"
    )
    monkeypatch.setenv("PLANTPULSE_ACK_SECRET", "long-enough-0123456789")
    assert main(["check", "-c", str(path)]) == 0


def test_run_with_a_short_env_secret_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(f'store: {{url: "sqlite:///{tmp_path / "pp.db"}"}}\n', encoding="utf-8")
    env = {**os.environ, "PLANTPULSE_ACK_SECRET": "short"}
    r = subprocess.run(
        [sys.executable, "-m", "plantpulse", "run", "-c", str(path), "--duration", "5"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr == (
        f"{path}:1:1: team.links: $PLANTPULSE_ACK_SECRET is 5 bytes;"
        " acknowledge links need a secret of at least 16 bytes\n"
    )
    assert not (tmp_path / "pp.db").exists()  # refused before any I/O
