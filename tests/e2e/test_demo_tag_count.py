"""The demo's tag counts agree: what it announces and what the pipeline logs it runs with."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from plantpulse.httpserve import free_port

pytestmark = pytest.mark.slow


def test_the_demo_says_which_tags_are_configured_and_which_come_over_mqtt(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "plantpulse", "-v", "demo", "--duration", "1", "--lang", "en",
         "--store", f"sqlite:///{tmp_path / 'd.db'}", "--listen", f"127.0.0.1:{free_port()}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    announced = re.search(r"^demo: (\d+) tags \((\d+) configured, (\d+) discovered over MQTT at run time\), ",
                          done.stdout, re.M)  # fmt: skip
    running = re.search(r"running: 3 sources, (\d+) tags, ", done.stderr)
    assert announced is not None, done.stdout
    assert running is not None, done.stderr
    served, configured, discovered = (int(g) for g in announced.groups())
    assert (served, configured, discovered) == (28, 21, 7)  # 4 welders x 7 signals; weld04 on MQTT
    assert int(running.group(1)) == configured
