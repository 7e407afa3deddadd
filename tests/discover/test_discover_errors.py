"""Every expected failure of ``discover`` is one line and exit 1; secured discovery works."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from discover_helpers import check, run_cli

from plantpulse.collectors.opcua_certs import thumbprint
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.certs import make_certificate
from plantpulse.simulators.opcua import SERVER_URI, OpcUaSimulator, SimulatorSecurity

SCENARIO = sc.Scenario.model_validate({"welders": 1, "duration": "10m"})


async def test_unreachable_devices(capsys: pytest.CaptureFixture[str], port: int) -> None:
    cases = [
        (
            ["opcua", f"opc.tcp://127.0.0.1:{port}"],
            f"opc.tcp://127.0.0.1:{port}: unavailable: connection refused",
        ),
        (
            ["modbus", f"127.0.0.1:{port}", "--unit", "1", "--address", "0", "--count", "4"],
            f"tcp://127.0.0.1:{port}: unavailable: unit 1 holding 0-3: cannot connect",
        ),
        (
            ["mqtt", "--host", "127.0.0.1", "--port", str(port), "--topic", "#"],
            f"mqtt://127.0.0.1:{port}: unavailable: connection refused",
        ),
    ]
    for argv, line in cases:
        assert await run_cli(capsys, "discover", *argv) == (1, "", line + "\n")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["opcua", "http://x"], "discover opcua: 'http://x': an endpoint is opc.tcp://HOST:PORT[/PATH]"),
        (
            ["opcua", "opc.tcp://x", "--root", "ns=2,s=x"],
            "discover opcua: invalid node id 'ns=2,s=x': ns= must be followed by ;<kind>=<id>; write "
            "ns=<index>;s=<name>, nsu=<namespace uri>;s=<name>, or i=, g=, b= instead of s=",
        ),
        (
            ["opcua", "opc.tcp://x", "--security-policy", "Basic256Sha256"],
            "discover opcua: --security-policy Basic256Sha256 needs --certificate and --private-key",
        ),
        (
            ["opcua", "opc.tcp://x", "--mode", "Sign"],
            "discover opcua: --mode and certificates need --security-policy Basic256Sha256",
        ),
        (
            ["opcua", "opc.tcp://x", "--username", "u", "--password", "$PP_UNSET_VAR"],
            "discover opcua: --password $PP_UNSET_VAR: environment variable PP_UNSET_VAR is not set",
        ),
        (
            ["modbus", "h:1", "--unit", "1", "--address", "0", "--count", "200"],
            "discover modbus: --count is 1-125 (the most one request reads)",
        ),
        (
            ["modbus", "h:1", "--unit", "1", "--address", "0", "--count", "2", "--pick", "0:float32:AB"],
            "discover modbus: --pick '0:float32:AB': write ADDRESS:TYPE[:ORDER[:SCALE]][=TAG], "
            "e.g. 4:float32:CDAB",
        ),
        (
            ["modbus", "h:x", "--unit", "1", "--address", "0", "--count", "2"],
            "discover modbus: invalid HOST[:PORT] 'h:x'",
        ),
        (
            ["mqtt", "--host", "h", "--topic", "a/#/b"],
            "discover mqtt: subscriptions.0.topic: 'a/#/b': '#' must be the whole last level",
        ),
    ],
)
async def test_bad_options(capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    assert await run_cli(capsys, "discover", *argv) == (1, "", line + "\n")


@pytest.mark.slow
async def test_nothing_heard(capsys: pytest.CaptureFixture[str], mqtt_broker: tuple[str, int]) -> None:
    topic = f"pp-{uuid.uuid4().hex[:8]}/#"
    host, port = mqtt_broker
    code, out, err = await run_cli(
        capsys, "discover", "mqtt", "--host", host, "--port", str(port), "--topic", topic, "--seconds", "0.3"
    )
    assert (code, out, err) == (
        1,
        "",
        f"discover mqtt: nothing published on {topic!r} in 0.3s (mqtt://{host}:{port})\n",
    )


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    server = make_certificate(tmp_path, "server", SERVER_URI, server=True)
    client = make_certificate(tmp_path, "client", "urn:plantpulse:discover-test")
    other = make_certificate(tmp_path / "other", "server", SERVER_URI, server=True)
    return {
        "server": server.certificate,
        "server_key": server.private_key,
        "client": client.certificate,
        "client_key": client.private_key,
        "other": other.certificate,
    }


def secured(endpoint: str, pki: dict[str, Path], *more: str) -> list[str]:
    return [
        "discover", "opcua", endpoint, "--security-policy", "Basic256Sha256", "--mode", "Sign",
        "--certificate", str(pki["client"]), "--private-key", str(pki["client_key"]),
        "--username", "welder", *more,
    ]  # fmt: skip


@pytest.mark.slow
async def test_secured_discovery_and_its_failures(
    capsys: pytest.CaptureFixture[str], pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    security = SimulatorSecurity(pki["server"], pki["server_key"], users={"welder": "s3cret"})
    async with OpcUaSimulator(SCENARIO, security=security) as sim:
        mismatch = await run_cli(
            capsys,
            *secured(sim.endpoint, pki, "--password", "s3cret", "--server-certificate", str(pki["other"])),
        )
        login = await run_cli(capsys, *secured(sim.endpoint, pki, "--password", "wrong"))
        monkeypatch.setenv("OPCUA_PASSWORD", "s3cret")
        code, out, err = await run_cli(
            capsys, *secured(sim.endpoint, pki, "--server-certificate", str(pki["server"]))
        )
    presented, pinned = thumbprint(pki["server"].read_bytes()), thumbprint(pki["other"].read_bytes())
    assert mismatch == (
        1,
        "",
        f"{sim.endpoint}: certificate rejected: server certificate does not match the pinned one "
        f"({pki['other']}): the server presents SHA-1 {presented}, the pin is {pinned}\n",
    )
    assert login == (
        1,
        "",
        f"{sim.endpoint}: authentication failed: login refused for user 'welder' (BadUserAccessDenied)\n",
    )
    assert code == 0, err
    [source] = yaml.safe_load(out)["sources"]
    assert source["security"] == {
        "policy": "Basic256Sha256",
        "mode": "Sign",
        "certificate": str(pki["client"]),
        "private_key": str(pki["client_key"]),
        "server_certificate": str(pki["server"]),
    }
    assert (source["username"], source["password"]) == ("welder", "${OPCUA_PASSWORD}")
    assert "s3cret" not in out
    (tmp_path / "plant.yaml").write_text(out, encoding="utf-8")
    check(capsys, tmp_path / "plant.yaml")
