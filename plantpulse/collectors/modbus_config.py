"""The ``kind: modbus`` source of ``plant.yaml``: transport, polling, request shaping and tags.

Pure pydantic (no pymodbus import), so ``plantpulse check`` validates a Modbus config on a
machine without the protocol library. Everything that decides how registers turn into a value
(table, address, type, byte order, bit, length, scale, offset) is checked here, before any I/O:
a tag that cannot be decoded is a config error, never a silently missing tag.

Naming: ``unit_id`` is the Modbus device address (pymodbus' ``device_id``, formerly "slave");
``unit`` is the engineering unit, as on every other tag kind.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from plantpulse.collectors.admission import Accept
from plantpulse.schema import Duration, StrictModel

__all__ = [
    "BIT_TABLES",
    "ByteOrder",
    "DataType",
    "ModbusRtu",
    "ModbusSource",
    "ModbusTag",
    "ModbusTcp",
    "Table",
    "register_count",
]

Table = Literal["coil", "discrete_input", "holding", "input"]
DataType = Literal[
    "bool", "bit", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "string"
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})
MAX_REGISTERS = 125  # Modbus application protocol: read holding/input registers, quantity <= 125
MAX_BITS = 2000  # read coils/discrete inputs, quantity <= 2000
_WORDS = {"bit": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "float64": 4}


class ModbusTcp(StrictModel):
    """Modbus TCP (MBAP framing) to a device or a gateway."""

    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)


class ModbusRtu(StrictModel):
    """Modbus RTU on a serial line (RS-485/RS-232); every source on one ``device`` shares it."""

    device: str = Field(min_length=1, description="serial port, e.g. /dev/ttyUSB0 or COM3")
    baudrate: int = Field(19200, gt=0)
    parity: Literal["N", "E", "O"] = "E"  # the Modbus serial line spec's default is even parity
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class ModbusTag(StrictModel):
    name: str = Field(min_length=1, description="plantpulse tag name, e.g. line1/press01/force")
    unit_id: int | None = Field(None, ge=0, le=247, description="device address; default: the source's")
    table: Table = "holding"
    address: int = Field(ge=0, le=65535, description="0-based protocol address (40001 is holding 0)")
    type: DataType = Field(description="default: bool on coils/discrete inputs, uint16 on registers")
    byte_order: ByteOrder = Field(
        "ABCD", description="ABCD big-endian; CDAB word swap; BADC byte swap; DCBA little-endian"
    )
    bit: int | None = Field(None, ge=0, le=15, description="type bit: which bit of the register, 0 = LSB")
    length: int | None = Field(None, ge=1, le=2 * MAX_REGISTERS, description="type string: bytes")
    stale_after: Duration | None = Field(None, gt=0, description="watchdog; default: the source's")
    scale: float = Field(1.0, description="value = raw * scale + offset")
    offset: float = 0.0
    unit: str | None = None
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") is None:
            bits = data.get("table", "holding") in BIT_TABLES
            return {**data, "type": "bool" if bits else "uint16"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModbusTag:
        bits = self.table in BIT_TABLES
        if bits and self.type != "bool":
            raise ValueError(f"a {self.table} holds single bits: type must be bool, not {self.type}")
        if not bits and self.type == "bool":
            raise ValueError(
                f"type bool reads coils or discrete inputs; for one bit of a {self.table} "
                "register use type: bit with bit: 0-15"
            )
        if (self.type == "bit") != (self.bit is not None):
            raise ValueError("type bit needs bit: 0-15, and bit: is only for type bit")
        if (self.type == "string") != (self.length is not None):
            raise ValueError("type string needs length: (bytes), and length: is only for type string")
        if self.type == "string" and self.byte_order not in ("ABCD", "BADC"):
            raise ValueError("a string's byte_order is ABCD (high byte first) or BADC (low byte first)")
        if self.type in ("bool", "bit") and self.byte_order != "ABCD":
            raise ValueError(f"byte_order does not apply to type {self.type}")
        last = self.address + self.count - 1
        if last > 65535:
            raise ValueError(
                f"{self.type} at {self.address} needs {self.count} registers and runs past 65535"
            )
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def count(self) -> int:
        """Registers (or bits, on coils and discrete inputs) this tag occupies."""
        return register_count(self.type, self.length)


def register_count(type_: str, length: int | None = None) -> int:
    if type_ == "bool":
        return 1
    if type_ == "string":
        return ((length or 0) + 1) // 2
    return _WORDS[type_]


class ModbusSource(StrictModel):
    """One Modbus TCP device (or gateway), or the devices of one RTU line, polled every ``interval``."""

    kind: Literal["modbus"]
    name: str = Field(min_length=1)
    tcp: ModbusTcp | None = None
    rtu: ModbusRtu | None = None
    unit_id: int = Field(1, ge=0, le=247, description="default device address of the tags")
    interval: Duration = Field(1_000_000_000, gt=0, description="poll period")
    timeout: Duration = Field(5_000_000_000, gt=0, description="a whole poll; past it every tag is bad")
    request_timeout: Duration = Field(
        1_000_000_000, gt=0, description="one request; past it only that request's tags are bad"
    )
    max_gap: int = Field(
        0, ge=0, le=MAX_REGISTERS, description="unused registers read through to merge requests (x16 bits)"
    )
    max_registers: int = Field(MAX_REGISTERS, ge=1, le=MAX_REGISTERS)
    max_bits: int = Field(MAX_BITS, ge=1, le=MAX_BITS)
    stale_after: Duration | None = Field(
        None, gt=0, description="watchdog: a tag silent this long gets one bad marker per outage"
    )
    accept: Accept = Accept()
    tags: list[ModbusTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ModbusSource:
        if (self.tcp is None) == (self.rtu is None):
            raise ValueError("set exactly one transport: tcp: {host, port} or rtu: {device, baudrate, ...}")
        if self.request_timeout > self.timeout:
            raise ValueError("request_timeout must not exceed timeout (the budget of the whole poll)")
        problems = []
        seen: set[str] = set()
        for i, tag in enumerate(self.tags):
            if tag.name in seen:
                problems.append(f"tags[{i}]: tag {tag.name!r} appears twice")
            seen.add(tag.name)
            limit = self.max_bits if tag.table in BIT_TABLES else self.max_registers
            if tag.count > limit:
                problems.append(f"tags[{i}]: {tag.name} needs {tag.count} registers, more than max_registers")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def address(self) -> str:
        """Where the source is, for logs and errors: ``tcp://host:port`` or ``rtu:///dev/x@19200-8E1``."""
        if self.tcp is not None:
            return f"tcp://{self.tcp.host}:{self.tcp.port}"
        assert self.rtu is not None
        r = self.rtu
        return f"rtu://{r.device}@{r.baudrate}-{r.bytesize}{r.parity}{r.stopbits}"

    def unit_of(self, tag: ModbusTag) -> int:
        return self.unit_id if tag.unit_id is None else tag.unit_id
