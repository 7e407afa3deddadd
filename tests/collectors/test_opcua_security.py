"""Basic256Sha256 Sign / SignAndEncrypt with certificates made in tmp_path, plus user logins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from collector_helpers import RecordingSink

from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.errors import AuthenticationError
from plantpulse.simulators import scenario as sc
from plantpulse.simulators.certs import make_certificate
from plantpulse.simulators.opcua import SERVER_URI, OpcUaSimulator, SimulatorSecurity

pytestmark = pytest.mark.slow


def secured(
    scenario: sc.Scenario, endpoint: str, tmp: Path, mode: str, password: str, *, pin_server: bool
) -> object:
    client = make_certificate(tmp, "client", "urn:plantpulse:test-client")
    security = {
        "policy": "Basic256Sha256",
        "mode": mode,
        "certificate": client.certificate,
        "private_key": client.private_key,
    }
    if pin_server:
        security["server_certificate"] = tmp / "server.der"
    return sc.opcua_source(
        scenario,
        endpoint,
        signals=("voltage",),
        security=security,
        username="welder",
        password=password,
        timeout="3s",
    )


@pytest.fixture
def server_security(tmp_path: Path) -> SimulatorSecurity:
    cert = make_certificate(tmp_path, "server", SERVER_URI, server=True)
    return SimulatorSecurity(cert.certificate, cert.private_key, users={"welder": "s3cret"})


@pytest.mark.parametrize(("mode", "pin_server"), [("Sign", True), ("SignAndEncrypt", False)])
async def test_secure_modes_with_login(  # noqa: PLR0917 (fixtures and parameters)
    scenario: sc.Scenario,
    sink: RecordingSink,
    server_security: SimulatorSecurity,
    tmp_path: Path,
    mode: str,
    pin_server: bool,
) -> None:
    async with OpcUaSimulator(scenario, security=server_security) as sim:
        src = secured(scenario, sim.endpoint, tmp_path, mode, "s3cret", pin_server=pin_server)
        task = asyncio.create_task(OpcUaCollector(src).run(sink))  # type: ignore[arg-type]
        await sink.wait_for(lambda s: len(s.samples) >= 6)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {s.tag for s in sink.samples} == {"line1/weld01/voltage", "line1/weld02/voltage"}


async def test_wrong_password_is_an_authentication_error_retried_slowly(
    scenario: sc.Scenario,
    sink: RecordingSink,
    server_security: SimulatorSecurity,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    delays: list[float] = []
    slept = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        slept.set()
        await asyncio.Event().wait()

    async with OpcUaSimulator(scenario, security=server_security) as sim:
        src = secured(scenario, sim.endpoint, tmp_path, "SignAndEncrypt", "wrong", pin_server=True)
        with pytest.raises(AuthenticationError) as info:
            await OpcUaCollector(src).run(sink)  # type: ignore[arg-type]
        runner = CollectorRunner(OpcUaCollector(src), sink, backoff=Backoff(initial=0.01), sleep=fake_sleep)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        async with asyncio.timeout(10):
            await slept.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "BadUserAccessDenied" in str(info.value) or "Bad" in str(info.value)
    assert "wrong" not in str(info.value) and "wrong" not in caplog.text  # the password is never shown
    assert delays == [pytest.approx(300, rel=0.01)] or delays[0] >= 60
    assert runner.status().errors == {"authentication": 1}
    assert "authentication failed" in caplog.text
