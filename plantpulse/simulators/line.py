"""A whole simulated line: every welder of a scenario on its protocol, all on one clock.

``SimulatedLine`` starts what the scenario's ``protocols`` need: one OPC UA server, one Modbus
TCP server per 247 welders (the unit-id space of one server), and one MQTT publisher (JSON or
Sparkplug B) against a given broker, or against an ``EmbeddedBroker`` it starts itself. Each
serves ``scenario.part(...)``, so the three together serve exactly the line a single OPC UA
simulator would, and ``truth_samples`` and ``expected_alerts`` hold for the whole.

One start instant. Ticks are written at ``start_ns + k * tick`` by every simulator; the OPC UA
server, slowest to build, starts first and fixes ``start_ns`` when it is ready to serve (as it
does alone), and the others are given that instant, so a fault at 8 s is at the same wall time
whichever protocol carries it.

    async with SimulatedLine(scenario) as line:
        plant = PlantConfig(sources=line.sources(), ...)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any

from plantpulse.collectors.modbus_config import ModbusSource
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.config import OpcUaSource
from plantpulse.simulators.broker import EmbeddedBroker
from plantpulse.simulators.modbus import MAX_UNIT, ModbusSimulator
from plantpulse.simulators.mqtt import DEFAULT_GROUP, DEFAULT_PREFIX, MqttSimulator, edge_node_id, mqtt_source
from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import PROTOCOLS, Protocol, Scenario, node_id, opcua_source
from plantpulse.timefmt import NS_PER_S, iso_ms

__all__ = ["LineSource", "SimulatedLine"]

log = logging.getLogger(__name__)

LineSource = OpcUaSource | ModbusSource | MqttSource


class SimulatedLine:
    """``async with SimulatedLine(scenario, ...) as line`` serves the line; ``line.sources()``
    are the matching ``sources:`` of a PlantConfig.

    ``only`` serves just those protocols' welders (a bench spreading one line over several
    processes gives each the same ``start_ns``). Ports 0 pick free ones; ``modbus_port`` P
    serves the first 247 Modbus welders on P, the next on P+1, .... Without ``mqtt_broker``
    (host, port) an embedded broker is started on ``host:mqtt_port`` when the scenario has
    MQTT welders.
    """

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        *,
        opcua_port: int = 0,
        modbus_port: int = 0,
        mqtt_broker: tuple[str, int] | None = None,
        mqtt_port: int = 0,
        mqtt_prefix: str = DEFAULT_PREFIX,
        mqtt_group: str = DEFAULT_GROUP,
        mqtt_client_id: str | None = None,
        start_ns: int | None = None,
        only: Collection[Protocol] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.scenario = scenario
        self.only = frozenset(PROTOCOLS if only is None else only)
        self.host = host
        self._opcua_port = opcua_port
        self._modbus_port = modbus_port
        self._mqtt_broker = mqtt_broker
        self._mqtt_port = mqtt_port
        self.mqtt_prefix = mqtt_prefix
        self.mqtt_group = mqtt_group
        self._mqtt_client_id = mqtt_client_id
        self._fixed_start = start_ns
        self._clock = clock
        self.start_ns = 0
        self.opcua: OpcUaSimulator | None = None
        self.modbus: list[ModbusSimulator] = []
        self.mqtt: MqttSimulator | None = None
        self.broker: EmbeddedBroker | None = None

    # -- life -------------------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedLine:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every simulator the scenario needs; the OPC UA one first (it fixes the start)."""
        scn = self.scenario
        opcua, modbus, mqtt = (scn.welders_on(p) if p in self.only else [] for p in PROTOCOLS)
        if mqtt and self._mqtt_broker is None:
            self.broker = EmbeddedBroker(self.host, self._mqtt_port)
            await self.broker.start()
        start = self._fixed_start
        if opcua:
            self.opcua = OpcUaSimulator(
                scn.part(opcua), self.host, self._opcua_port, start_ns=start, clock=self._clock
            )
            await self.opcua.start()
            start = self.opcua.start_ns
        self.start_ns = start if start is not None else scn.start_ns(self._clock())
        for i in range(0, len(modbus), MAX_UNIT):
            port = self._modbus_port + i // MAX_UNIT if self._modbus_port else 0
            sim = ModbusSimulator(
                scn.part(modbus[i : i + MAX_UNIT]), self.host, port, start_ns=self.start_ns, clock=self._clock
            )
            self.modbus.append(sim)
            await sim.start()
        if mqtt:
            host, port = self.mqtt_address
            self.mqtt = MqttSimulator(
                scn.part(mqtt),
                host,
                port,
                format=scn.mqtt_format,
                prefix=self.mqtt_prefix,
                group=self.mqtt_group,
                start_ns=self.start_ns,
                clock=self._clock,
                client_id=self._mqtt_client_id,
            )
            await self.mqtt.start()

    async def stop(self) -> None:
        """Stop publishers and servers, then the embedded broker; safe to call twice."""
        mqtt, self.mqtt = self.mqtt, None
        if mqtt is not None:
            await mqtt.stop()
        modbus, self.modbus = self.modbus, []
        for sim in modbus:
            await sim.stop()
        opcua, self.opcua = self.opcua, None
        if opcua is not None:
            await opcua.stop()
        broker, self.broker = self.broker, None
        if broker is not None:
            await broker.stop()

    # -- what a plant config needs ------------------------------------------------------------------

    @property
    def mqtt_address(self) -> tuple[str, int]:
        if self._mqtt_broker is not None:
            return self._mqtt_broker
        if self.broker is None:
            raise RuntimeError("no MQTT broker: the line is not started or has no MQTT welders")
        return self.broker.host, self.broker.port

    def sources(
        self,
        *,
        opcua: Mapping[str, Any] | None = None,
        modbus: Mapping[str, Any] | None = None,
        mqtt: Mapping[str, Any] | None = None,
    ) -> list[LineSource]:
        """One source per simulator; the mappings override source options per protocol.

        Modbus polls once per tick by default (what ``truth_samples`` models), with a request
        timeout short enough that a silent welder does not stall the next poll for long."""
        out: list[LineSource] = []
        if self.opcua is not None:
            out.append(opcua_source(self.opcua.scenario, self.opcua.endpoint, **dict(opcua or {})))
        tick = self.scenario.tick
        for i, sim in enumerate(self.modbus):
            options: dict[str, Any] = {  # durations as seconds: a bare number is seconds
                "name": "weld-modbus" if i == 0 else f"weld-modbus-{i + 1}",
                "interval": tick / NS_PER_S,
                "request_timeout": min(max(3 * tick, 100_000_000), 1_000_000_000) / NS_PER_S,
                "timeout": 2.0,
            }
            out.append(sim.source(**(options | dict(modbus or {}))))
        if self.mqtt is not None:
            m = self.mqtt
            options = {"prefix": m.prefix, "group": m.group, "qos": m.qos} | dict(mqtt or {})
            out.append(mqtt_source(m.scenario, m.host, m.port, m.format, **options))
        return out

    def describe(self) -> list[str]:
        """One log line per simulator: where it serves, what, and how to address a tag."""
        scn = self.scenario
        lines: list[str] = []
        tick = f"{scn.tick / 1e6:g}ms"
        if self.opcua is not None:
            part = self.opcua.scenario
            tags = part.tag_names()
            lines.append(
                f"serving {self.opcua.endpoint}: {part.welders} welders, {len(tags)} tags, tick {tick}, "
                f"start {iso_ms(self.start_ns)}, e.g. {node_id(tags[0])}"
            )
        for sim in self.modbus:
            part = sim.scenario
            first, last = min(sim.units.values()), max(sim.units.values())
            lines.append(
                f"serving modbus {sim.address}: {part.welders} welders as units {first}-{last} "
                f"({part.welder_names()[0]} = unit {first}), {len(part.tag_names())} tags, "
                "register map in docs/modbus.md"
            )
        if self.mqtt is not None:
            m = self.mqtt
            part = m.scenario
            broker = (
                f"embedded broker mqtt://{m.host}:{m.port}" if self.broker else f"mqtt://{m.host}:{m.port}"
            )
            where = (
                f"Sparkplug B group {m.group}, edge node {edge_node_id(part)}, one device per welder"
                if m.format == "sparkplug"
                else f"JSON on {m.prefix}/{part.asset}/<welder>/<signal>"
            )
            lines.append(
                f"publishing to {broker}: {part.welders} welders, {len(part.tag_names())} tags, {where}"
            )
        return lines
