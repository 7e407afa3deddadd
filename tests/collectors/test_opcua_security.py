"""Basic256Sha256 Sign / SignAndEncrypt with certificates made in tmp_path, plus user logins."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from collector_helpers import RecordingSink

from plantpulse.cli import main
from plantpulse.collectors.opcua import OpcUaCollector
from plantpulse.collectors.opcua_certs import thumbprint
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.errors import AuthenticationError, CertificateRejected
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


def line_of(caplog: pytest.LogCaptureFixture) -> str:
    """The runner's one warning line for the failure."""
    lines = [r.getMessage() for r in caplog.records if r.name == "plantpulse.collectors.runner"]
    assert len(lines) == 1, lines
    return lines[0]


async def run_once(src: object, caplog: pytest.LogCaptureFixture) -> CollectorRunner:
    """One connection attempt under the runner, stopped at its first (slow) retry wait."""
    waited = asyncio.Event()
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        waited.set()
        await asyncio.Event().wait()

    runner = CollectorRunner(OpcUaCollector(src), RecordingSink(), sleep=fake_sleep)  # type: ignore[arg-type]
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(15):
        await waited.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert delays[0] >= 60  # a refused certificate is not an outage: retried slowly
    assert runner.status().errors == {"authentication": 1}
    return runner


async def test_pinned_server_certificate_mismatch_is_named_not_a_timeout(
    scenario: sc.Scenario,
    server_security: SimulatorSecurity,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = make_certificate(tmp_path / "other", "server", SERVER_URI, server=True)  # some other server's
    async with OpcUaSimulator(scenario, security=server_security) as sim:
        src: Any = secured(scenario, sim.endpoint, tmp_path, "SignAndEncrypt", "s3cret", pin_server=False)
        src = src.model_copy(
            update={"security": src.security.model_copy(update={"server_certificate": other.certificate})}
        )
        with pytest.raises(CertificateRejected) as info:
            await OpcUaCollector(src).run(RecordingSink())
        await run_once(src, caplog)
    real = thumbprint(server_security.certificate.read_bytes())
    pinned = thumbprint(other.certificate.read_bytes())
    why = (
        f"server certificate does not match the pinned one ({other.certificate}): "
        f"the server presents SHA-1 {real}, the pin is {pinned}"
    )
    assert str(info.value) == f"weld-opcua ({sim.endpoint}): {why}"
    assert line_of(caplog) == f"weld-opcua ({sim.endpoint}): certificate rejected: {why}"


async def test_untrusted_client_certificate_is_named(
    scenario: sc.Scenario, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert = make_certificate(tmp_path, "server", SERVER_URI, server=True)
    (tmp_path / "trusted").mkdir()
    other = make_certificate(tmp_path / "other", "someone-else", "urn:someone:else")
    other.certificate.rename(tmp_path / "trusted" / "someone-else.der")
    security = SimulatorSecurity(cert.certificate, cert.private_key, trusted=tmp_path / "trusted")
    async with OpcUaSimulator(scenario, security=security) as sim:
        src = secured(scenario, sim.endpoint, tmp_path, "Sign", "", pin_server=False)
        await run_once(src, caplog)
    assert line_of(caplog) == (
        f"weld-opcua ({sim.endpoint}): certificate rejected: the server does not trust our client "
        f"certificate ({tmp_path / 'client.der'}): add it to the server's trusted certificates "
        "(BadCertificateUntrusted)"
    )


async def test_expired_client_certificate_is_named_and_check_warns(
    scenario: sc.Scenario,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cert = make_certificate(tmp_path, "server", SERVER_URI, server=True)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    client = make_certificate(tmp_path, "client", "urn:plantpulse:test-client", days=2, valid_from=start)
    (trusted / "client.der").write_bytes(client.certificate.read_bytes())
    security = SimulatorSecurity(cert.certificate, cert.private_key, trusted=trusted)
    src = sc.opcua_source(
        scenario,
        "opc.tcp://127.0.0.1:4840",
        signals=("voltage",),
        security={
            "policy": "Basic256Sha256",
            "mode": "Sign",
            "certificate": client.certificate,
            "private_key": client.private_key,
        },
    )
    async with OpcUaSimulator(scenario, security=security) as sim:
        await run_once(src.model_copy(update={"endpoint": sim.endpoint}), caplog)
    assert line_of(caplog) == (
        f"weld-opcua ({sim.endpoint}): certificate rejected: the server refused our client certificate "
        f"({client.certificate}) as expired or not yet valid: make a new one (BadCertificateTimeInvalid)"
    )
    # and check says so before anyone runs it: a warning, exit 0
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        yaml.safe_dump({"sources": [src.model_dump(mode="json", exclude_none=True)]}), encoding="utf-8"
    )
    assert main(["check", "-c", str(plant)]) == 0
    out, err = capsys.readouterr()
    expired = (start + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = next(x for x in err.splitlines() if "certificate" in x)
    assert re.fullmatch(
        re.escape(f"{plant}:")
        + r"\d+:\d+: "
        + re.escape(
            f"warning: sources.0.security.certificate: client certificate {client.certificate} expired on "
            f"{expired}: servers refuse it (BadCertificateTimeInvalid)"
        ),
        line,
    ), line
    assert out.startswith(f"{plant}: ok:")
