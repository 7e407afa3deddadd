"""Every command that prints ends quietly when its reader goes away (``plantpulse ... | head``):
exit 141 (128 + SIGPIPE, what a shell reports for a killed ``cat``), nothing on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import plantpulse

PACKAGE = Path(plantpulse.__file__).parent


def into_a_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``plantpulse argv`` with stdout a pipe nobody reads any more: the first write fails."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "plantpulse", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv",
    [
        ["modbus", "plan", "-c", str(PACKAGE / "collectors" / "samples" / "modbus.yaml")],
        ["rules", "check", str(PACKAGE / "demo" / "weld-rules.yaml")],
    ],
    ids=["modbus-plan", "rules-check"],
)
def test_a_closed_pipe_ends_the_command_quietly(argv: list[str]) -> None:
    done = into_a_closed_pipe(argv)
    assert (done.returncode, done.stderr) == (141, "")


def test_db_status_into_head(pg_dsn: str) -> None:
    done = into_a_closed_pipe(["db", "status", "--store", pg_dsn])
    assert (done.returncode, done.stderr) == (141, "")


def test_alerts_export_into_head(tmp_path: Path) -> None:
    from test_alerts_cli import T0, fill, raised

    url = f"sqlite:///{tmp_path / 'pp.db'}"
    fill(url, [raised(f"line1/weld{i:02d}/current", T0 + i) for i in range(200)])
    done = into_a_closed_pipe(["alerts", "export", "--store", url])
    assert (done.returncode, done.stderr) == (141, "")
