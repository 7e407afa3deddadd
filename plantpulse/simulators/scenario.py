"""Simulation scenarios: a welding line whose every value is a pure function of (scenario, seed, tick).

A scenario never reads a clock or a global random state. Tick ``k`` is at scenario offset
``k * tick``; the value of any signal at tick ``k`` is computed from the scenario and its seed
alone (counter-based hashing, vectorised with numpy), so the simulator serving it, a replay and
a test computing the expected truth agree bit for bit. Between ticks a signal holds its value.

Faults (all offsets relative to the scenario start, multiples of ``tick``):

========== ==================================================================================
spike      ``value += magnitude`` for ``duration`` (short)
step       ``value += magnitude`` for ``duration``
drift      ``value += magnitude * (k - start) / duration`` while active (a ramp), then back
flatline   the value freezes at its value at ``start`` (no data changes are reported)
dropout    the welder publishes nothing at all (every signal keeps its last written value)
bad_quality the signal is written with a bad OPC UA status (``status``, default BadSensorFailure)
========== ==================================================================================

Protocols. ``protocols: {opcua: [...], modbus: [...], mqtt: [...]}`` puts each welder on one
protocol (welders listed nowhere stay on OPC UA; ``weld01..weld40`` is a range), and
``mqtt_format`` picks JSON or Sparkplug B for the MQTT ones. ``Scenario.part`` is the view of
one protocol's welders that its simulator serves: same names, same values, row for row, as in
the whole line. ``truth_samples`` knows what each protocol delivers: changes only (OPC UA,
MQTT JSON), changes plus deaths and births (Sparkplug B), or every value of every poll (Modbus).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from plantpulse import yamlsrc
from plantpulse.config import OpcUaSource, OpcUaTag
from plantpulse.samples import Quality, Sample
from plantpulse.schema import Duration, StrictModel
from plantpulse.timefmt import parse_ts

__all__ = [
    "PROTOCOLS",
    "SIGNALS",
    "ExpectedAlert",
    "Fault",
    "Frame",
    "Protocol",
    "Protocols",
    "Scenario",
    "SetpointChange",
    "load_scenario",
    "node_id",
    "opcua_source",
    "status_quality",
    "truth_samples",
]

SIGNALS: tuple[str, ...] = (
    "current",
    "current_sp",
    "voltage",
    "wire_speed",
    "parts_good",
    "parts_total",
    "running",
)
"""Signals of every welder, in address-space order."""

NAMESPACE_URI = "urn:plantpulse:simulator"
"""The simulator registers this namespace first, so it gets index 2 on an asyncua server."""

FaultKind = Literal["spike", "step", "drift", "flatline", "dropout", "bad_quality"]
_VALUE_FAULTS = {"spike", "step", "drift", "flatline"}

# OPC UA status codes the simulator may write (Part 4 §7.34); kept here so the pure truth can
# name them without importing asyncua.
BAD_STATUS_CODES: dict[str, int] = {
    "BadSensorFailure": 0x808B0000,
    "BadDeviceFailure": 0x808A0000,
    "BadCommunicationError": 0x80050000,
    "BadOutOfService": 0x808D0000,
    "BadNoCommunication": 0x80310000,
    "UncertainLastUsableValue": 0x40900000,
    "UncertainSensorNotAccurate": 0x40930000,
}


def status_quality(code: int) -> Quality:
    """OPC UA severity bits (the top two) -> plantpulse quality."""
    severity = (code >> 30) & 0b11
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


class SignalParams(StrictModel):
    """Baselines of the welders' signals; noise is uniform in ``±noise``, so thresholds are exact."""

    current_sp: float = 180.0
    current_noise: float = Field(0.8, ge=0)
    voltage: float = 24.0
    voltage_noise: float = Field(0.2, ge=0)
    wire_speed: float = 8.0
    wire_speed_noise: float = Field(0.02, ge=0)
    cycle: Duration = Field(6_000_000_000, gt=0, description="one part per cycle while running")
    scrap_rate: float = Field(0.02, ge=0, le=1)


class SetpointChange(StrictModel):
    welder: str
    at: Duration
    value: float


class Fault(StrictModel):
    welder: str
    kind: FaultKind
    signal: Literal["current", "current_sp", "voltage", "wire_speed"] | None = None
    start: Duration
    duration: Duration = Field(gt=0)
    magnitude: float = 0.0
    status: str = "BadSensorFailure"

    @model_validator(mode="after")
    def _consistent(self) -> Fault:
        if self.kind != "dropout" and self.signal is None:
            raise ValueError(f"a {self.kind} fault needs a signal")
        if self.kind == "bad_quality" and self.status not in BAD_STATUS_CODES:
            raise ValueError(f"unknown status {self.status!r}; one of {', '.join(BAD_STATUS_CODES)}")
        return self


class ExpectedAlert(StrictModel):
    rule: str
    tag: str
    raised_at: Duration
    cleared_at: Duration | None


Protocol = Literal["opcua", "modbus", "mqtt"]
PROTOCOLS: tuple[Protocol, ...] = ("opcua", "modbus", "mqtt")
_RANGE = re.compile(r"^(\D*)(\d+)\.\.(\D*)(\d+)$")


class Protocols(StrictModel):
    """Welders per protocol: names or ranges (``weld01..weld12``); unlisted welders use OPC UA."""

    opcua: list[str] = Field(default_factory=list)
    modbus: list[str] = Field(default_factory=list)
    mqtt: list[str] = Field(default_factory=list)


def _expand(item: str, known: dict[str, int]) -> list[str] | None:
    """``weld03`` -> [weld03]; ``weld01..weld03`` -> [weld01, weld02, weld03]; None if unknown."""
    m = _RANGE.match(item.strip())
    if m is None:
        return [item] if item in known else None
    lo, hi = f"{m.group(1)}{m.group(2)}", f"{m.group(3)}{m.group(4)}"
    if lo not in known or hi not in known or known[lo] > known[hi]:
        return None
    return [w for w, i in known.items() if known[lo] <= i <= known[hi]]


def _unknown(name: str, known: dict[str, int]) -> str:
    names = list(known)
    return f"unknown welder {name!r} (this line has {names[0]}..{names[-1]})"


def _error(loc: tuple[str | int, ...], text: str, value: Any) -> InitErrorDetails:
    # the message goes in through ctx so braces in welder names are never a template
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{text}", {"text": text}), loc=loc, input=value
    )


class Scenario(StrictModel):
    name: str = "weld-line"
    asset: str = Field("line1", description="asset prefix; welders are <asset>/weld01 ...")
    welders: int = Field(4, ge=1, le=9999)
    seed: int = 0
    tick: Duration = Field(100_000_000, gt=0)
    duration: Duration = Field(gt=0)
    loop: bool = Field(False, description="start over after duration (counters restart too)")
    start: str | None = Field(
        None, description="fixed start instant (replays); default: when the simulator starts"
    )
    signals: SignalParams = SignalParams()
    setpoints: list[SetpointChange] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    expected_alerts: list[ExpectedAlert] = Field(default_factory=list)
    protocols: Protocols = Protocols()
    mqtt_format: Literal["json", "sparkplug"] = Field("json", description="payloads of the MQTT welders")

    _rows: tuple[int, ...] | None = PrivateAttr(None)  # a part: which welders of the line it serves
    _line_size: int = PrivateAttr(0)
    _assignment: dict[str, Protocol] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        """Cross-field checks, every problem at once and each at its own key (FILE:LINE:COL)."""
        known = {w: i for i, w in enumerate(self.welder_names())}
        errors: list[InitErrorDetails] = []
        if self.duration % self.tick:
            errors.append(_error(("duration",), "duration must be a multiple of tick", self.duration))
        for i, f in enumerate(self.faults):
            if f.welder not in known:
                errors.append(_error(("faults", i, "welder"), _unknown(f.welder, known), f.welder))
            if f.start % self.tick or f.duration % self.tick:
                errors.append(_error(("faults", i), "start and duration must be multiples of tick", f.start))
        for i, s in enumerate(self.setpoints):
            if s.welder not in known:
                errors.append(_error(("setpoints", i, "welder"), _unknown(s.welder, known), s.welder))
            if s.at % self.tick:
                errors.append(_error(("setpoints", i, "at"), "at must be a multiple of tick", s.at))
        if self.start is not None:
            try:
                parse_ts(self.start)
            except ValueError as e:
                errors.append(_error(("start",), str(e), self.start))
        assignment: dict[str, Protocol] = {}
        for proto in PROTOCOLS:
            for i, item in enumerate(getattr(self.protocols, proto)):
                loc: tuple[str | int, ...] = ("protocols", proto, i)
                names = _expand(item, known)
                if names is None:
                    errors.append(_error(loc, _unknown(item, known), item))
                    continue
                for w in names:
                    if w in assignment:
                        errors.append(_error(loc, f"{w} is already on {assignment[w]}", item))
                    assignment[w] = proto
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        self._assignment = {w: assignment.get(w, "opcua") for w in known}
        return self

    # -- names, protocols and parts --------------------------------------------------------------

    @property
    def line_size(self) -> int:
        """Welders of the whole line (``welders`` is the size of this part)."""
        return self._line_size if self._rows is not None else self.welders

    def line_welder_names(self) -> list[str]:
        """Every welder of the line, ``weld01`` ... (zero-padded to at least two digits)."""
        n = self.line_size
        width = max(2, len(str(n)))
        return [f"weld{i:0{width}d}" for i in range(1, n + 1)]

    def welder_names(self) -> list[str]:
        """The welders this scenario (or part) serves, in line order; row ``i`` of a Frame."""
        names = self.line_welder_names()
        return names if self._rows is None else [names[i] for i in self._rows]

    def protocol_of(self, welder: str) -> Protocol:
        return self._assignment.get(welder, "opcua")

    def welders_on(self, protocol: Protocol) -> list[str]:
        """This scenario's welders served over ``protocol``, in line order."""
        return [w for w in self.welder_names() if self.protocol_of(w) == protocol]

    def part(self, welders: Sequence[str]) -> Scenario:
        """The same line restricted to ``welders``: what one protocol's simulator serves.

        Names, values, faults and setpoints are those of the whole line (noise is keyed by the
        welder's row in the line), so serving the parts on three protocols is serving the line."""
        line = {w: i for i, w in enumerate(self.line_welder_names())}
        unknown = [w for w in welders if w not in line]
        if unknown or not welders:
            raise ValueError(f"not welders of this line: {unknown or 'none given'}")
        rows = tuple(sorted({line[w] for w in welders}))
        view = self.model_copy(update={"welders": len(rows)})
        view._rows = rows
        view._line_size = self.line_size
        view._assignment = dict(self._assignment)
        return view

    def _row_ids(self) -> npt.NDArray[np.int64]:
        """Rows of the whole line this scenario serves (they key the noise)."""
        return np.arange(self.welders) if self._rows is None else np.array(self._rows, dtype=np.int64)

    def _index(self) -> dict[str, int]:
        """Welder name -> row of this scenario's frames (welders not served are absent)."""
        return {w: i for i, w in enumerate(self.welder_names())}

    def tag_names(self) -> list[str]:
        """Every tag the scenario serves: ``<asset>/<welder>/<signal>``, welder-major."""
        return [f"{self.asset}/{w}/{s}" for w in self.welder_names() for s in SIGNALS]

    @property
    def n_ticks(self) -> int:
        return self.duration // self.tick

    def start_ns(self, now_ns: int) -> int:
        """The scenario's start: ``start`` when fixed, else ``now`` rounded down to the millisecond
        (OPC UA DateTime has 100 ns resolution; ms keeps every tick exactly representable)."""
        if self.start is not None:
            return parse_ts(self.start)
        return now_ns - now_ns % 1_000_000

    # -- the pure function ----------------------------------------------------------------------

    def evaluate(self, signal: str, k: npt.ArrayLike) -> Frame:
        """Values of ``signal`` for every welder at ticks ``k`` (shape ``(welders, len(k))``)."""
        ks = np.atleast_1d(np.asarray(k, dtype=np.int64))
        n = self.n_ticks
        within = ks < n if not self.loop else np.ones(ks.shape, dtype=bool)
        kk = ks % n if self.loop else np.minimum(ks, n - 1)
        value = self._raw(signal, kk, flatline=True)
        status = np.zeros(value.shape, dtype=np.uint32)
        updated = np.broadcast_to(within & (ks >= 0), value.shape).copy()
        index = self._index()
        for f in self.faults:
            if f.welder not in index:
                continue
            win = self._window(f, kk)
            row = index[f.welder]
            if f.kind == "dropout":
                updated[row, win] = False
            elif f.kind == "bad_quality" and f.signal == signal:
                status[row, win] = BAD_STATUS_CODES[f.status]
                value[row, win] = np.nan
        return Frame(value, status, updated)

    def _window(self, f: Fault, kk: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        k0 = f.start // self.tick
        return (kk >= k0) & (kk < k0 + f.duration // self.tick)

    def _raw(self, signal: str, kk: npt.NDArray[np.int64], *, flatline: bool) -> npt.NDArray[np.float64]:
        p = self.signals
        nw = self.welders
        rows = self._row_ids()[:, None]
        index = self._index()
        if signal == "current_sp":
            v = np.full((nw, len(kk)), p.current_sp)
            for s in sorted(self.setpoints, key=lambda s: s.at):
                if s.welder in index:
                    v[index[s.welder], kk >= s.at // self.tick] = s.value
        elif signal == "current":
            v = self._raw("current_sp", kk, flatline=True) + p.current_noise * _noise(self.seed, rows, 0, kk)
        elif signal == "voltage":
            v = p.voltage + p.voltage_noise * _noise(self.seed, rows, 1, kk)
        elif signal == "wire_speed":
            v = p.wire_speed + p.wire_speed_noise * _noise(self.seed, rows, 2, kk)
        elif signal == "running":
            return np.ones((nw, len(kk)))
        elif signal in ("parts_total", "parts_good"):
            return self._parts(signal, kk)
        else:
            raise ValueError(f"unknown signal {signal!r}; one of {', '.join(SIGNALS)}")
        v = np.array(v, dtype=np.float64)
        for f in self.faults:
            if f.signal != signal or f.kind not in _VALUE_FAULTS or f.welder not in index:
                continue
            win = self._window(f, kk)
            row = index[f.welder]
            k0 = f.start // self.tick
            if f.kind in ("spike", "step"):
                v[row, win] += f.magnitude
            elif f.kind == "drift":
                v[row, win] += f.magnitude * (kk[win] - k0) / (f.duration // self.tick)
            elif flatline:
                v[row, win] = self._raw(signal, np.array([k0]), flatline=False)[row, 0]
        return v

    def _parts(self, signal: str, kk: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        per_cycle = max(self.signals.cycle // self.tick, 1)
        total = kk // per_cycle
        if signal == "parts_total":
            return np.broadcast_to(total.astype(np.float64), (self.welders, len(kk))).copy()
        cycles = np.arange(int(total.max(initial=0)) + 1)
        rows = self._row_ids()[:, None]
        scrapped = (_uniform(self.seed, rows, 7, cycles) < self.signals.scrap_rate).astype(np.int64)
        # cycle n completes at tick (n+1)*per_cycle: parts_good counts the good ones completed so far
        good_done = np.concatenate(
            [np.zeros((self.welders, 1), np.int64), np.cumsum(1 - scrapped, axis=1)], axis=1
        )
        return good_done[:, total].astype(np.float64)


@dataclass(frozen=True, slots=True)
class Frame:
    """One signal for every welder at some ticks: ``value`` (NaN when bad), the OPC UA status
    code written (0 = Good) and whether the simulator publishes at that tick (False in dropouts)."""

    value: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint32]
    updated: npt.NDArray[np.bool_]


# -- counter-based noise ------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _uniform(
    seed: int, rows: npt.NDArray[np.int64], stream: int, k: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Uniform [0, 1) from splitmix64 of (seed, row, stream, k): no state, any order, any subset."""
    key = np.uint64((seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03) & _M64)
    x = (rows.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)) ^ key
    z = x + (k.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    out: npt.NDArray[np.float64] = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def _noise(
    seed: int, rows: npt.NDArray[np.int64], stream: int, k: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Uniform in [-1, 1)."""
    return 2.0 * _uniform(seed, rows, stream, k) - 1.0


# -- helpers for simulators, tests and replays --------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    """Validate a scenario file; raise ConfigError with every problem as FILE:LINE:COL."""
    return yamlsrc.validate(Scenario, yamlsrc.load(path))


def node_id(tag: str, ns: int = 2) -> str:
    """The simulator's NodeId of a tag: the tag name as a string id, ``ns=2;s=line1/weld01/current``."""
    return f"ns={ns};s={tag}"


def opcua_source(
    scenario: Scenario,
    endpoint: str,
    *,
    name: str = "weld-opcua",
    signals: tuple[str, ...] = SIGNALS,
    **options: object,
) -> OpcUaSource:
    """An OPC UA source config reading ``signals`` of every welder from a running simulator."""
    tags = [
        OpcUaTag(name=f"{scenario.asset}/{w}/{s}", node=node_id(f"{scenario.asset}/{w}/{s}"))
        for w in scenario.welder_names()
        for s in signals
    ]
    return OpcUaSource.model_validate(
        {"kind": "opcua", "name": name, "endpoint": endpoint, "tags": tags, **options}
    )


def truth_samples(scenario: Scenario, start_ns: int, *, ticks: int | None = None) -> list[Sample]:
    """What the collectors receive from the simulators of the scenario's protocols, sorted by time.

    * OPC UA (data change, deadband 0) and MQTT JSON: a sample at a tick where the welder
      publishes and the value or status differs from the last published one; dropouts and
      flatlines therefore produce no samples.
    * MQTT Sparkplug B: the same, plus a bad sample of every signal where a dropout starts
      (DDEATH) and every value again where it ends (DBIRTH).
    * Modbus (polled, modelled as one poll per tick): every value at every tick, through the
      register encoding; a dropout times out (every signal bad), and a bad signal fails the
      one request that reads the welder's holding block (every holding signal bad).
    """
    n = scenario.n_ticks if ticks is None else ticks
    ks = np.arange(n, dtype=np.int64)
    frames = {signal: scenario.evaluate(signal, ks) for signal in SIGNALS}
    stamps = start_ns + ks * scenario.tick
    out: list[Sample] = []
    for signal in SIGNALS:
        frame = frames[signal]
        for row, welder in enumerate(scenario.welder_names()):
            tag = f"{scenario.asset}/{welder}/{signal}"
            proto = scenario.protocol_of(welder)
            if proto == "modbus":
                from plantpulse.simulators.modbus import polled

                values, bad = polled(signal, frames, row)
                out.extend(
                    Sample(t, tag, math.nan if b else v, Quality.BAD if b else Quality.GOOD)
                    for t, v, b in zip(stamps.tolist(), values.tolist(), bad.tolist(), strict=True)
                )
                continue
            births = proto == "mqtt" and scenario.mqtt_format == "sparkplug"
            out.extend(_changes(frame, row, tag, stamps, births=births))
    out.sort(key=lambda s: s.ts)
    return out


def _changes(
    frame: Frame, row: int, tag: str, stamps: npt.NDArray[np.int64], *, births: bool
) -> list[Sample]:
    """Change-only samples of one welder's signal; with ``births``, Sparkplug deaths and births."""
    upd = np.flatnonzero(frame.updated[row])
    vals = frame.value[row, upd]
    stat = frame.status[row, upd]
    same = np.zeros(len(upd), dtype=bool)
    if len(upd) > 1:
        eq = (vals[1:] == vals[:-1]) | (np.isnan(vals[1:]) & np.isnan(vals[:-1]))
        same[1:] = eq & (stat[1:] == stat[:-1])
    out: list[Sample] = []
    if births and len(upd) > 1:
        resumed = np.zeros(len(upd), dtype=bool)
        resumed[1:] = np.diff(upd) > 1  # the first tick after a dropout: DBIRTH, every value
        same &= ~resumed
        for i in np.flatnonzero(resumed):  # DDEATH at the dropout's first tick
            out.append(Sample(int(stamps[upd[i - 1] + 1]), tag, math.nan, Quality.BAD))
    for i in np.flatnonzero(~same):
        k = int(upd[i])
        out.append(Sample(int(stamps[k]), tag, float(vals[i]), status_quality(int(stat[i]))))
    return out
