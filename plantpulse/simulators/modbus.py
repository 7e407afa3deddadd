"""Modbus devices for a test bench: a pymodbus server (TCP, or RTU on a serial port) playing a scenario.

Two layers:

* ``ModbusDeviceServer`` serves raw register images, one per unit id and table, and can make a
  register range answer with an exception (``fail``) or a unit stay silent (``silent``): the
  golden tests feed it ``registers.yaml`` directly.
* ``ModbusSimulator`` drives such a server from a ``Scenario``.

Register map. Every welder is its own unit id (``weld01`` is unit 1, ``weld02`` unit 2, ...; at
most 247, the Modbus address space), as each welding controller on a real line is its own
Modbus device (or RS-485 drop). Every unit carries the same map, ``REGISTER_MAP``: six holding
registers values in deliberately mixed encodings (each of the four byte orders appears, plus a
scaled integer) and ``running`` as coil 0, so one scenario exercises most of the decoder.

Faults. ``bad_quality`` on a signal makes every read that touches that signal's registers
answer with exception 04 (server device failure); ``dropout`` makes the welder's unit answer
nothing at all (the client times out), as a powered-down drop on a line does. The value kept
in a failing or silent register is the last one written.

Time. Tick ``k`` is written at wall-clock ``start_ns + k * tick`` (like the OPC UA simulator);
``ticking=False`` leaves ticks to the caller (``write_tick``) so tests step them exactly. A
device has no timestamps: the collector stamps values with the time of the response.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from plantpulse.collectors.modbus_config import BIT_TABLES, ModbusSource, ModbusTag, Table
from plantpulse.collectors.modbus_plan import TABLES, encode
from plantpulse.ports import bind
from plantpulse.simulators.scenario import SIGNALS, Frame, Scenario
from plantpulse.simulators.service import Service

__all__ = ["REGISTER_MAP", "ModbusDeviceServer", "ModbusSimulator", "Slot", "modbus_source", "polled"]

log = logging.getLogger(__name__)

MAX_UNIT = 247
_FC_TABLE: dict[int, Table] = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete_input",
    3: "holding",
    6: "holding",
    16: "holding",
    22: "holding",
    23: "holding",
    4: "input",
}
_READS = frozenset({1, 2, 3, 4})

Layout = Mapping[int, Mapping[Table, Mapping[int, int]]]
"""unit id -> table -> {address: initial register value (0/1 for bits)}."""


@dataclass(frozen=True)
class Slot:
    """Where and how one signal sits in every welder's unit."""

    signal: str
    table: Table
    address: int
    type: str
    byte_order: str = "ABCD"
    scale: float = 1.0

    def quantize(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """What the collector decodes after ``encode``: float32 rounding, scaled integers."""
        if self.type == "float32":
            return values.astype(np.float32).astype(np.float64)
        if self.type == "float64":
            return values
        raw = np.round(values / self.scale)  # round half to even, as encode's round()
        out: npt.NDArray[np.float64] = raw * self.scale + 0.0
        return out

    def tag(self, name: str, unit_id: int) -> ModbusTag:
        return ModbusTag.model_validate(
            {
                "name": name,
                "unit_id": unit_id,
                "table": self.table,
                "address": self.address,
                "type": self.type,
                "byte_order": self.byte_order,
                "scale": self.scale,
            }
        )


REGISTER_MAP: tuple[Slot, ...] = (
    Slot("current", "holding", 0, "float64", "ABCD"),
    Slot("current_sp", "holding", 4, "float32", "CDAB"),
    Slot("voltage", "holding", 6, "float32", "BADC"),
    Slot("wire_speed", "holding", 8, "uint16", "ABCD", scale=0.01),
    Slot("parts_good", "holding", 9, "uint32", "DCBA"),
    Slot("parts_total", "holding", 11, "uint32", "ABCD"),
    Slot("running", "coil", 0, "bool"),
)
"""Holding 0-12 and coil 0 of every welder's unit (docs/modbus.md shows it as a table)."""

_SLOTS = {s.signal: s for s in REGISTER_MAP}
assert set(_SLOTS) == set(SIGNALS)
_HOLDING = tuple(s.signal for s in REGISTER_MAP if s.table == "holding")


def polled(
    signal: str, frames: Mapping[str, Frame], row: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """What polls of one welder's ``signal`` read at the frames' ticks: (values, bad).

    The holding block is one request (``max_gap`` 0 still merges it: it is contiguous), so an
    exception on any of its signals makes all of them bad; a dropout times out everything."""
    slot = _SLOTS[signal]
    silent = ~frames[signal].updated[row]
    bad = silent.copy()
    if slot.table == "holding":
        for other in _HOLDING:
            bad |= frames[other].status[row] != 0
    return slot.quantize(frames[signal].value[row]), bad


def modbus_source(
    scenario: Scenario,
    host: str = "127.0.0.1",
    port: int = 502,
    *,
    device: str | None = None,
    baudrate: int = 19200,
    parity: str = "E",
    name: str = "weld-modbus",
    signals: Sequence[str] = SIGNALS,
    first_unit: int = 1,
    **options: Any,
) -> ModbusSource:
    """The collector config reading ``signals`` of every welder from a ModbusSimulator: TCP at
    ``host:port``, or RTU on the serial ``device`` (``baudrate``, ``parity``, 8 data bits, 1 stop)."""
    tags = [
        _SLOTS[s].tag(f"{scenario.asset}/{w}/{s}", first_unit + i)
        for i, w in enumerate(scenario.welder_names())
        for s in signals
    ]
    transport: dict[str, Any] = (
        {"rtu": {"device": device, "baudrate": baudrate, "parity": parity}}
        if device
        else {"tcp": {"host": host, "port": port}}
    )
    return ModbusSource.model_validate({"kind": "modbus", "name": name, **transport, "tags": tags, **options})


class _Image:
    """One table of one unit: dense values from ``base`` (16-bit aligned for bits)."""

    def __init__(self, table: Table, values: Mapping[int, int]) -> None:
        self.bits = table in BIT_TABLES
        lo = min(values)
        self.base = lo - lo % 16 if self.bits else lo
        self.valid = frozenset(values)
        self.data = [0] * (max(values) + 1 - self.base)
        for a, v in values.items():
            self.data[a - self.base] = int(v)

    def set(self, address: int, words: Sequence[int]) -> None:
        for i, w in enumerate(words):
            if address + i not in self.valid:
                raise KeyError(f"address {address + i} is not served")
            self.data[address + i - self.base] = int(w) & (1 if self.bits else 0xFFFF)

    def get(self, address: int, count: int = 1) -> list[int]:
        return self.data[address - self.base : address - self.base + count]

    def words(self) -> list[int]:
        """What pymodbus keeps for this table: registers, or bits packed 16 to a register, LSB first."""
        if not self.bits:
            return self.data
        bits = self.data + [0] * (-len(self.data) % 16)
        return [sum(b << i for i, b in enumerate(bits[j : j + 16])) for j in range(0, len(bits), 16)]

    def simdata(self) -> list[SimData]:
        """One SimData per run of consecutive served addresses; holes answer illegal address."""
        out: list[SimData] = []
        run: list[int] = []
        for a in sorted(self.valid):
            if run and a != run[-1] + 1:
                out.append(self._block(run))
                run = []
            run.append(a)
        out.append(self._block(run))
        return out

    def _block(self, run: list[int]) -> SimData:
        if self.bits:
            return SimData(
                run[0], values=[bool(self.data[a - self.base]) for a in run], datatype=DataType.BITS
            )
        return SimData(run[0], values=[self.data[a - self.base] for a in run], datatype=DataType.REGISTERS)


class ModbusDeviceServer(Service):
    """A pymodbus server over mutable register images: ``async with ModbusDeviceServer(layout) as s``.

    TCP on ``host:port`` (0 picks a free port, kept across restarts), or RTU when ``device`` (a
    serial port path) is given. Writes are refused (illegal function): the bench is read-only.
    """

    def __init__(
        self,
        layout: Layout,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        device: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        stopbits: int = 1,
        bytesize: int = 8,
    ) -> None:
        if not layout:
            raise ValueError("a Modbus server needs at least one unit")
        for unit in layout:
            if not 1 <= unit <= MAX_UNIT:
                raise ValueError(f"unit id {unit} is outside 1-{MAX_UNIT}")
        self.host, self.port, self.device = host, port, device
        self.baudrate, self.parity, self.stopbits, self.bytesize = baudrate, parity, stopbits, bytesize
        self._images: dict[tuple[int, Table], _Image] = {
            (unit, table): _Image(table, values)
            for unit, tables in layout.items()
            for table, values in tables.items()
            if values
        }
        self._units = frozenset(layout)
        self.silent: set[int] = set()
        self._failing: dict[tuple[int, Table], dict[tuple[int, int], ExcCodes]] = {}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.requests = 0  # answered
        self.unanswered = 0
        self.exceptions = 0
        self.answered = asyncio.Event()  # set after every answered request (tests await it)

    @property
    def address(self) -> str:
        return f"rtu://{self.device}" if self.device else f"tcp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- register images and faults -----------------------------------------------------------

    def set(self, unit: int, table: Table, address: int, words: Sequence[int]) -> None:
        """Write registers (or bits) from ``address``; every address must be served."""
        self._images[(unit, table)].set(address, words)

    def get(self, unit: int, table: Table, address: int, count: int = 1) -> list[int]:
        return self._images[(unit, table)].get(address, count)

    def fail(
        self, unit: int, table: Table, address: int, count: int = 1, code: ExcCodes = ExcCodes.DEVICE_FAILURE
    ) -> None:
        """Reads overlapping ``address .. address+count-1`` answer with exception ``code``."""
        self._failing.setdefault((unit, table), {})[(address, address + count)] = code

    def heal(self, unit: int, table: Table, address: int, count: int = 1) -> None:
        self._failing.get((unit, table), {}).pop((address, address + count), None)

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (TCP) or open the serial port (RTU); idempotent."""
        if self._server is not None:
            return
        devices = [self._device(unit) for unit in sorted(self._units)]
        server: ModbusTcpServer | ModbusSerialServer
        if self.device is not None:
            server = ModbusSerialServer(
                devices,
                port=self.device,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                trace_packet=self._trace,
                reconnect_delay=0,
            )
        else:
            server = ModbusTcpServer(devices, address=(self.host, self.port), trace_packet=self._trace)
        try:
            await server.serve_forever(background=True)
        except RuntimeError:  # pymodbus says only "Could not start listen": find out why
            if self.device is None:
                bind(self.host, self.port, "modbus").close()  # raises the ListenError, if that is it
            raise
        self._server = server
        if self.device is None and self.port == 0:
            sockets = cast(asyncio.Server, server.transport).sockets
            self.port = int(sockets[0].getsockname()[1])
        log.debug("Modbus server on %s serving units %s", self.address, sorted(self._units))

    async def stop(self) -> None:
        """Stop listening and drop every connection (``start`` serves the same port again)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]

    def _device(self, unit: int) -> SimDevice:
        tables: list[list[SimData]] = []
        for table in TABLES:
            image = self._images.get((unit, table))
            if image is not None:
                tables.append(image.simdata())
            elif table in BIT_TABLES:  # pymodbus wants every table; this one answers illegal address
                tables.append([SimData(65520, values=[False] * 16, datatype=DataType.BITS)])
            else:
                tables.append([SimData(0, datatype=DataType.INVALID)])
        simdata = (tables[0], tables[1], tables[2], tables[3])
        return SimDevice(unit, simdata=simdata, action=functools.partial(self._action, unit))

    async def _action(  # noqa: PLR0917 (pymodbus calls it positionally)
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus for every valid access: fault check, then the current image."""
        table = _FC_TABLE.get(function_code)
        if function_code not in _READS or set_values is not None or table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        image = self._images.get((unit, table))
        if image is None:
            return ExcCodes.ILLEGAL_ADDRESS
        # for bits pymodbus passes the register count: test the first bit asked for
        end = address + (1 if image.bits else count)
        for (lo, hi), code in self._failing.get((unit, table), {}).items():
            if address < hi and lo < end:
                self.exceptions += 1
                return code
        words = image.words()
        registers[: len(words)] = words
        return None

    def _trace(self, sending: bool, packet: bytes) -> bytes:
        """Silence: a silent (or unknown) unit's answers are never sent, so the client times out."""
        if not sending or not packet:
            return packet
        unit = packet[0] if self.device is not None else packet[6] if len(packet) > 6 else -1
        if unit in self.silent or unit not in self._units:
            self.unanswered += 1
            return b""
        self.requests += 1
        self.answered.set()
        return packet


class ModbusSimulator(Service):
    """``async with ModbusSimulator(scenario, port=0) as sim:`` serves every welder as a unit."""

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        device: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        first_unit: int = 1,
        start_ns: int | None = None,
        ticking: bool = True,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if first_unit < 1 or first_unit + scenario.welders - 1 > MAX_UNIT:
            raise ValueError(f"{scenario.welders} welders from unit {first_unit} exceed unit id {MAX_UNIT}")
        self.scenario = scenario
        self.first_unit = first_unit
        self.units = {w: first_unit + i for i, w in enumerate(scenario.welder_names())}
        layout: dict[int, dict[Table, dict[int, int]]] = {}
        for unit in self.units.values():
            tables = layout.setdefault(unit, {})
            for slot in REGISTER_MAP:
                tag = slot.tag("x", unit)
                tables.setdefault(slot.table, {}).update(
                    dict.fromkeys(range(slot.address, slot.address + tag.count), 0)
                )
        self.server = ModbusDeviceServer(layout, host, port, device=device, baudrate=baudrate, parity=parity)
        self._tags = {slot.signal: slot.tag("x", first_unit) for slot in REGISTER_MAP}
        self._clock = clock
        self._fixed_start = start_ns
        self.start_ns = start_ns if start_ns is not None else scenario.start_ns(clock())
        self._ticking = ticking
        self._task: asyncio.Task[None] | None = None
        self.ticks_written = 0
        self.tick = -1  # the last tick written

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def running(self) -> bool:
        return self.server.running

    def source(self, **options: Any) -> ModbusSource:
        """The collector config for this very simulator (its transport, units and map)."""
        return modbus_source(
            self.scenario,
            self.server.host,
            self.server.port,
            device=self.server.device,
            baudrate=self.server.baudrate,
            parity=self.server.parity,
            first_unit=self.first_unit,
            **options,
        )

    def tick_at(self, ts_ns: int) -> int:
        return (ts_ns - self.start_ns) // self.scenario.tick

    async def start(self) -> None:
        """Write the current tick, serve, and (when ticking) keep writing ticks; idempotent."""
        if self.server.running:
            return
        if self._fixed_start is None and self.ticks_written == 0:
            self.start_ns = self.scenario.start_ns(self._clock())
        k = max(self.tick_at(self._clock()), 0) if self._ticking else max(self.tick, 0)
        self.write_tick(k)
        await self.server.start()
        if self._ticking:
            self._task = asyncio.create_task(self._ticks(k + 1), name=f"modbus simulator {self.address}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.server.stop()

    async def _ticks(self, k: int) -> None:
        """Write tick ``k`` at its wall-clock instant, then the next; skip ahead when far behind."""
        tick = self.scenario.tick
        while self.scenario.loop or k < self.scenario.n_ticks:
            delay = self.start_ns + k * tick - self._clock()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            elif -delay > 10 * tick:
                k = self.tick_at(self._clock())
            self.write_tick(k)
            k += 1

    def write_tick(self, k: int) -> None:
        """Put tick ``k`` of the scenario into the registers, faults included."""
        server = self.server
        silent: set[int] = set()
        for signal in SIGNALS:
            frame = self.scenario.evaluate(signal, [k])
            tag = self._tags[signal]
            for row, unit in enumerate(self.units.values()):
                if not frame.updated[row, 0]:
                    silent.add(unit)  # dropout: the drop answers nothing, registers keep their values
                    continue
                if frame.status[row, 0]:
                    server.fail(unit, tag.table, tag.address, tag.count)
                    continue
                server.heal(unit, tag.table, tag.address, tag.count)
                server.set(unit, tag.table, tag.address, encode(float(frame.value[row, 0]), tag))
        server.silent = silent
        self.tick = k
        self.ticks_written += 1
