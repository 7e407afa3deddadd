"""MQTT over TLS against our own Mosquitto: a CA and a server certificate made here
(cryptography), a TLS listener with a password file (written here in Mosquitto's ``$7$``
PBKDF2-SHA512 format, so ``mosquitto_passwd`` is not needed) and a second listener that
requires a client certificate. Good credentials deliver data; a wrong password is an
AuthenticationError that the runner retries only slowly; an unknown CA is refused clearly."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from collector_helpers import RecordingSink
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mqtt_helpers import Mosquitto, unique
from paho.mqtt.enums import CallbackAPIVersion

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.runner import Backoff, CollectorRunner
from plantpulse.errors import AuthenticationError

pytestmark = pytest.mark.mqtt

USER, PASSWORD = "collector", "s3cret-Passw0rd"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: Any, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return b.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def password_line(user: str, password: str) -> str:
    """Mosquitto 2's ``$7$`` entry: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n"


@dataclass
class Bench:
    broker: Mosquitto
    tls_port: int
    mtls_port: int
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _cert("plantpulse test CA", ca_key, None, ca_key, ca=True)
    other = _cert("someone else's CA", other_key, None, other_key, ca=True)
    _write(tmp_path / "ca", ca)
    _write(tmp_path / "other", other)
    _write(tmp_path / "server", _cert("localhost", server_key, ca, ca_key, ca=False), server_key)
    _write(tmp_path / "client", _cert(USER, client_key, ca, ca_key, ca=False), client_key)
    (tmp_path / "passwd").write_text(password_line(USER, PASSWORD), encoding="utf-8")
    plain, tls_port, mtls_port = free_port(), free_port(), free_port()
    tls = f"cafile {tmp_path}/ca.pem\ncertfile {tmp_path}/server.pem\nkeyfile {tmp_path}/server.key\n"
    extra = (
        "allow_anonymous false\n"
        f"password_file {tmp_path}/passwd\n"
        f"listener {tls_port} 127.0.0.1\n{tls}"
        f"listener {mtls_port} 127.0.0.1\n{tls}require_certificate true\nuse_identity_as_username true\n"
    )
    broker = Mosquitto(tmp_path, plain, extra)
    await broker.start()
    try:
        yield Bench(broker, tls_port, mtls_port, tmp_path / "ca.pem", tmp_path / "other.pem",
                    tmp_path / "client.pem", tmp_path / "client.key")  # fmt: skip
    finally:
        await broker.stop()


def source(port: int, tls: dict[str, Any], topic: str, **kw: Any) -> MqttSource:
    return MqttSource.model_validate(
        {
            "kind": "mqtt", "name": "tls", "host": "127.0.0.1", "port": port, "tls": tls,
            "client_id": unique("col"), "persistent": False, "timeout": "3s",
            "subscriptions": [{"topic": f"{topic}/+", "tag": "line1/{1}/v", "value": "$.v"}], **kw,
        }
    )  # fmt: skip


async def publish_tls(b: Bench, topic: str, value: float) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
    pub.tls_set_context(ssl.create_default_context(cafile=str(b.ca)))
    pub.username_pw_set(USER, PASSWORD)
    await asyncio.to_thread(pub.connect, "127.0.0.1", b.tls_port)
    pub.loop_start()
    try:
        info = pub.publish(topic, json.dumps({"v": value}).encode(), qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)
    finally:
        pub.disconnect()
        pub.loop_stop()


async def receive_one(b: Bench, src: MqttSource, topic: str) -> RecordingSink:
    sink = RecordingSink()
    collector = MqttCollector(src)
    task = asyncio.create_task(collector.run(sink))
    try:
        subscribed = asyncio.create_task(collector.subscribed.wait())
        await asyncio.wait((task, subscribed), timeout=10, return_when=asyncio.FIRST_COMPLETED)
        subscribed.cancel()
        if task.done():
            task.result()  # raises what ended the connection
        assert collector.subscribed.is_set()
        await publish_tls(b, f"{topic}/a", 42.0)
        await sink.wait_for(lambda s: bool(s.samples))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return sink


async def test_tls_with_username_and_password_receives_data(bench: Bench) -> None:
    topic = unique("tls")
    src = source(bench.tls_port, {"ca": str(bench.ca)}, topic, username=USER, password=PASSWORD)
    sink = await receive_one(bench, src, topic)
    assert [(s.tag, s.value) for s in sink.samples] == [("line1/a/v", 42.0)]
    assert src.address == f"mqtts://127.0.0.1:{bench.tls_port}"


async def test_client_certificate_authenticates(bench: Bench) -> None:
    topic = unique("mtls")
    tls = {"ca": str(bench.ca), "cert": str(bench.client_cert), "key": str(bench.client_key)}
    sink = await receive_one(bench, source(bench.mtls_port, tls, topic), topic)
    assert [s.value for s in sink.samples] == [42.0]


async def test_wrong_password_is_an_authentication_error_retried_slowly(bench: Bench) -> None:
    src = source(bench.tls_port, {"ca": str(bench.ca)}, unique("t"), username=USER, password="wrong")
    with pytest.raises(AuthenticationError, match="refused"):
        await MqttCollector(src).run(RecordingSink())
    delays: list[float] = []
    slept = asyncio.Event()

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        slept.set()
        await asyncio.Event().wait()

    runner = CollectorRunner(MqttCollector(src), RecordingSink(), backoff=Backoff(initial=0.01), sleep=sleep)
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            await slept.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert delays == [Backoff().auth_retry] and runner.status().errors == {"authentication": 1}


async def test_missing_client_certificate_is_refused(bench: Bench) -> None:
    src = source(bench.mtls_port, {"ca": str(bench.ca)}, unique("t"))
    with pytest.raises(AuthenticationError):
        await MqttCollector(src).run(RecordingSink())


async def test_broker_signed_by_an_unknown_ca_is_refused(bench: Bench) -> None:
    src = source(bench.tls_port, {"ca": str(bench.other_ca)}, unique("t"), username=USER, password=PASSWORD)
    with pytest.raises(AuthenticationError, match="broker certificate refused"):
        await MqttCollector(src).run(RecordingSink())
