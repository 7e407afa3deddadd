"""When a device goes away, ``plantpulse run`` says so in one line; asyncua's own "Publish
iteration crashed" traceback (repeated every second while the device is away) is shown only
with ``-v``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
import yaml

from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import load_scenario, node_id

pytestmark = pytest.mark.slow

SCENARIO = "name: away\nasset: line1\nwelders: 1\ntick: 100ms\nduration: 1m\n"


async def _stderr_when_the_device_goes_away(tmp_path: Path, *verbose: str) -> str:
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(tmp_path / "scenario.yaml")
    sim = OpcUaSimulator(scenario)
    await sim.start()
    tag = scenario.tag_names()[0]
    plant = {
        "sources": [{"kind": "opcua", "name": "welder", "endpoint": sim.endpoint,
                     "tags": [{"name": tag, "node": node_id(tag)}]}],
        "store": {"url": "sqlite:///plant.db"},
    }  # fmt: skip
    (tmp_path / "plant.yaml").write_text(yaml.safe_dump(plant), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", *verbose, "run", "-c", "plant.yaml", cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []

    async def until(text: str) -> None:
        while text not in (line := (await proc.stderr.readline()).decode()):  # type: ignore[union-attr]
            assert line, f"run ended before {text!r}: {''.join(seen)}"
            seen.append(line)
        seen.append(line)

    try:
        async with asyncio.timeout(30):
            await until("first live evaluation")  # subscribed and receiving
            await sim.stop()  # the device goes away
            await until(f"welder ({sim.endpoint}): unavailable: connection lost")
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await sim.stop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return "".join(seen) + rest.decode()


async def test_a_device_going_away_is_one_line_without_asyncua_tracebacks(tmp_path: Path) -> None:
    err = await _stderr_when_the_device_goes_away(tmp_path)
    assert "Publish iteration crashed" not in err and "Traceback" not in err, err


async def test_with_v_the_library_says_what_it_saw(tmp_path: Path) -> None:
    err = await _stderr_when_the_device_goes_away(tmp_path, "-v")
    assert "Publish iteration crashed" in err and "Traceback" in err, err
