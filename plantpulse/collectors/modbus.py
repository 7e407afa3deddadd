"""Modbus TCP/RTU collector (pymodbus): one poll executes the source's request plan.

Choices, and why:

* **Polled.** Modbus has no subscriptions; the runner calls ``read()`` every ``interval`` under
  ``timeout`` and owns backoff and reconnects. ``read`` connects when needed and never sleeps.
* **Few requests.** ``modbus_plan.plan`` merges neighbouring tags into requests of at most
  125 registers (2000 bits); ``RequestDecoder`` decodes each response with numpy at once.
* **Failures stay local.** An exception response (illegal address, device failure, busy...) or
  a timeout of one request makes only that request's tags bad (NaN): the other devices on a
  gateway or a line keep flowing. A lost or refused connection raises SourceUnavailable, and
  the runner marks every tag bad and reconnects with backoff (pymodbus' own reconnect is off).
* **Logged once per cause per outage, counted always.** Only the collector sees a request
  fail and recover, so it keeps the request's outage: each cause (an exception code, no
  response, a decoding error) is logged once while the request keeps failing, however the
  causes alternate, and the recovery once. ``report`` (optional) receives every failure as a
  TagError marked ``logged``, so the runner counts it without logging it again. pymodbus'
  own error line for each unanswered request (with a frame dump) is dropped unless pymodbus
  logs at debug: the failure it describes is this collector's to report.
* **Timestamps.** A device has no clock, so the collector brackets each request: a value is
  stamped at the midpoint of the request's send and its response's arrival. The device read
  it somewhere in between, so the stamp is off by at most half the round-trip time (the
  arrival time would always be late, by up to the whole round trip). A failed request's bad
  samples carry the time the failure became known (the exception response, or the end of
  the timeout): there is no reading to centre.
* **One line, one client.** Every RTU source on the same serial ``device`` shares one client
  and one lock, and holds the lock for its whole poll: requests on a line never interleave,
  whichever source and unit id they address. TCP sources each own a connection (a gateway
  serialises on its side).
* **Errors.** pymodbus exceptions are translated here, keeping the source, its address and the
  request (unit, table, address range); callers never import pymodbus to catch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from plantpulse.collectors.errors import TagError
from plantpulse.collectors.modbus_config import ModbusRtu, ModbusSource
from plantpulse.collectors.modbus_plan import Request, RequestDecoder, plan
from plantpulse.errors import SourceError, SourceUnavailable
from plantpulse.samples import Quality, Sample

__all__ = ["EXCEPTION_CODES", "ModbusCollector"]

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient

EXCEPTION_CODES: dict[int, str] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}
"""Modbus exception codes (Modbus Application Protocol v1.1b3, section 7)."""


@dataclass
class _Line:
    """One serial line: its client, the lock every poll on it holds, and who uses it."""

    rtu: ModbusRtu
    timeout: float
    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: AsyncModbusSerialClient | None = None
    users: set[int] = field(default_factory=set)


_LINES: dict[str, _Line] = {}


class ModbusCollector:
    """A PolledCollector for one ``ModbusSource`` (TCP device or gateway, or an RTU line)."""

    def __init__(
        self,
        source: ModbusSource,
        *,
        merge: bool = True,
        report: Callable[[SourceError], None] | None = None,
        wallclock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``merge=False`` reads one request per tag (benchmarks); ``report`` receives every
        failed request as a TagError; ``wallclock`` (ns) is read when each request is sent
        and when its response arrives."""
        self.source = source
        self.name = source.name
        self.address = source.address
        self.requests: list[Request] = plan(source, merge=merge)
        self._decoders = [RequestDecoder(r) for r in self.requests]
        self._report = report
        self._wallclock = wallclock
        self._timeout = source.request_timeout / 1e9
        self._client: AsyncModbusTcpClient | None = None
        self._line: _Line | None = None
        self._failing: dict[int, _Outage] = {}  # request index -> its outage, while it fails
        _quiet_pymodbus()
        self.polls = 0
        self.failed_requests = 0

    # -- PolledCollector ------------------------------------------------------------------------

    async def read(self) -> list[Sample]:
        """One poll of every tag; SourceUnavailable when the device or line cannot be used."""
        rtu = self.source.rtu
        if rtu is None:
            return await self._poll(await self._tcp())
        line = self._attach(rtu)
        async with line.lock:
            return await self._poll(await self._serial(line))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        line, self._line = self._line, None
        if line is not None:
            line.users.discard(id(self))
            if not line.users:
                if _LINES.get(line.rtu.device) is line:
                    del _LINES[line.rtu.device]
                if line.client is not None:
                    line.client.close()
                    line.client = None

    # -- one poll -------------------------------------------------------------------------------

    async def _poll(self, client: Client) -> list[Sample]:
        self.polls += 1
        out: list[Sample] = []
        for i, (req, decoder) in enumerate(zip(self.requests, self._decoders, strict=True)):
            if not client.connected:
                self._lost(client)
                raise self._unavailable("connection lost")
            why: str | None = None
            sent = self._wallclock()
            try:
                response = await self._execute(client, req)
            except ConnectionException as e:
                self._lost(client)
                raise self._unavailable(f"connection lost: {_text(e)}") from None
            except ModbusIOException as e:
                if not client.connected:
                    self._lost(client)
                    raise self._unavailable(f"connection lost: {_text(e)}") from None
                why = f"no response within {self._timeout:g}s"
            except ModbusException as e:
                why = _text(e)
            arrived = self._wallclock()
            if why is None:
                why, values = self._values(req, decoder, response)
            if why is not None:
                self._failed(i, req, why)
                out.extend(Sample(arrived, t.name, float("nan"), Quality.BAD) for t in req.tags)
                continue
            self._recovered(i, req)
            ts = sent + (arrived - sent) // 2  # the device read the registers in between
            out.extend(Sample(ts, t.name, v) for t, v in zip(req.tags, values, strict=True))
        return out

    async def _execute(self, client: Client, req: Request) -> Any:
        if req.table == "holding":
            return await client.read_holding_registers(req.address, count=req.count, device_id=req.unit)
        if req.table == "input":
            return await client.read_input_registers(req.address, count=req.count, device_id=req.unit)
        if req.table == "coil":
            return await client.read_coils(req.address, count=req.count, device_id=req.unit)
        return await client.read_discrete_inputs(req.address, count=req.count, device_id=req.unit)

    def _values(self, req: Request, decoder: RequestDecoder, response: Any) -> tuple[str | None, list[float]]:
        if response.isError():
            code = int(response.exception_code)
            return f"exception {code:#04x} ({EXCEPTION_CODES.get(code, 'unknown')})", []
        data = response.bits if req.table in ("coil", "discrete_input") else response.registers
        try:
            return None, decoder.decode(data).tolist()
        except ValueError as e:
            return str(e), []

    # -- connections ----------------------------------------------------------------------------

    async def _tcp(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        if self._client is not None:
            self._client.close()
            self._client = None
        tcp = self.source.tcp
        assert tcp is not None
        client = AsyncModbusTcpClient(
            tcp.host, port=tcp.port, name=self.name, timeout=self._timeout, retries=0, reconnect_delay=0
        )
        if not await client.connect():
            client.close()
            raise self._unavailable("cannot connect")
        self._client = client
        return client

    def _attach(self, rtu: ModbusRtu) -> _Line:
        """The shared line of ``rtu.device``; a second source must use the same settings."""
        if self._line is not None:
            return self._line
        loop = asyncio.get_running_loop()
        line = _LINES.get(rtu.device)
        if line is None or line.loop is not loop:
            line = _LINES[rtu.device] = _Line(rtu, self._timeout, loop)
        elif line.rtu != rtu:
            raise SourceError(
                self.name,
                self.address,
                f"serial line {rtu.device} is already open with other settings by another source",
            )
        line.users.add(id(self))
        self._line = line
        return line

    async def _serial(self, line: _Line) -> AsyncModbusSerialClient:
        if line.client is not None and line.client.connected:
            return line.client
        if line.client is not None:
            line.client.close()
            line.client = None
        r = line.rtu
        client = AsyncModbusSerialClient(
            r.device,
            baudrate=r.baudrate,
            bytesize=r.bytesize,
            parity=r.parity,
            stopbits=r.stopbits,
            name=self.name,
            timeout=line.timeout,
            retries=0,
            reconnect_delay=0,
        )
        if not await client.connect():
            client.close()
            raise self._unavailable(f"cannot open serial port {r.device}")
        line.client = client
        return client

    def _lost(self, client: Client) -> None:
        client.close()
        if self._client is client:
            self._client = None
        if self._line is not None and self._line.client is client:
            self._line.client = None

    # -- errors ---------------------------------------------------------------------------------

    def _unavailable(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(self.name, self.address, why)

    def _failed(self, i: int, req: Request, why: str) -> None:
        self.failed_requests += 1
        error = TagError(self.name, self.address, f"{req.describe()}: {why}")
        error.logged = True
        outage = self._failing.setdefault(i, _Outage())
        outage.polls += 1
        if why not in outage.causes:
            outage.causes.add(why)
            names = ", ".join(t.name for t in req.tags[:5]) + (", ..." if len(req.tags) > 5 else "")
            log.warning("%s: %d tags bad (%s)", error, len(req.tags), names)
        if self._report is not None:
            self._report(error)

    def _recovered(self, i: int, req: Request) -> None:
        outage = self._failing.pop(i, None)
        if outage is not None:
            log.info(
                "%s (%s): %s answers again after %d failed poll%s",
                self.name, self.address, req.describe(), outage.polls, "s" if outage.polls != 1 else "",
            )  # fmt: skip


@dataclass
class _Outage:
    """One request's failures since it last answered: the causes already logged, and how many."""

    causes: set[str] = field(default_factory=set)
    polls: int = 0


class _PymodbusNoResponse(logging.Filter):
    """Drops pymodbus' ERROR for an unanswered request, which it logs on every poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            str(record.msg).startswith("No response received after")
            and not logging.getLogger("pymodbus").isEnabledFor(logging.DEBUG)
        )


_NO_RESPONSE = _PymodbusNoResponse()


def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus.logging").addFilter(_NO_RESPONSE)  # idempotent: a filter is added once


def _text(e: BaseException) -> str:
    return str(e).removeprefix("Modbus Error: ").strip() or type(e).__name__
