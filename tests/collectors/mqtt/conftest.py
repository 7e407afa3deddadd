"""Fixtures of the MQTT tests: the system Mosquitto (tests/conftest.py), the embedded amqtt
broker, and a private Mosquitto process per test."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mqtt_helpers import Mosquitto

from plantpulse.simulators.broker import EmbeddedBroker


@pytest.fixture
async def embedded_broker() -> AsyncIterator[tuple[str, int]]:
    async with EmbeddedBroker() as broker:
        yield broker.host, broker.port
    # amqtt 0.12 leaves the server side of a cleanly disconnected client to the garbage
    # collector; collect it here, quietly, instead of in whichever test runs next
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
async def own_mosquitto(tmp_path: Path, port: int) -> AsyncIterator[Mosquitto]:
    broker = Mosquitto(tmp_path, port)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
