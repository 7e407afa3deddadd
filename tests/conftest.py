"""Shared fixtures: free ports and the real services the tests talk to.

Tests that need PostgreSQL or an MQTT broker skip with a clear reason when the service is not
running on this machine; with PLANTPULSE_REQUIRE_SERVICES=1 (set by .ci/run) a missing
service fails the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_DSN = os.environ.get("PLANTPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, under PLANTPULSE_REQUIRE_SERVICES=1, fail) when the service is not there."""
    if _reachable(host, port):
        return
    reason = f"{name} is not running on {host}:{port}"
    if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and PLANTPULSE_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture
def pg_dsn() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return PG_DSN


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    require_service("Mosquitto", MQTT_HOST, MQTT_PORT)
    return MQTT_HOST, MQTT_PORT


@pytest.fixture
def port() -> int:
    return free_port()
