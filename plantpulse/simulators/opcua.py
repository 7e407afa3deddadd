"""An OPC UA server (asyncua) that plays a scenario: the devices of a test bench.

Address space: ``Objects/<asset>/<welder>/<signal>``, each variable a Double with the string
NodeId ``ns=2;s=<asset>/<welder>/<signal>`` (the tag name itself, namespace
``urn:plantpulse:simulator``), so a plant.yaml for the bench is mechanical (see
``scenario.opcua_source``).

Time: tick ``k`` is written at wall-clock ``start_ns + k * tick`` with that instant as its
SOURCE timestamp, so event-time results computed from the pure scenario are exact. Only values
or statuses that change are written (an OPC UA server reports changes only anyway). Stopping
and starting again keeps ``start_ns``: scenario time is wall time, as on a real line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager

from plantpulse.errors import ListenError
from plantpulse.ports import free_port
from plantpulse.simulators.scenario import NAMESPACE_URI, SIGNALS, Frame, Scenario
from plantpulse.simulators.service import Service

__all__ = ["OpcUaSimulator", "SimulatorSecurity"]

log = logging.getLogger(__name__)

SERVER_URI = "urn:plantpulse:simulator:server"
_CHUNK = 50  # ticks evaluated per numpy call
_YIELD_EVERY = 1000  # writes between two yields to the event loop inside one tick


@dataclass
class _SharedDataValue(ua.DataValue):
    """A DataValue the simulator never mutates after writing it, so copies may share it.

    asyncua's server ``copy.deepcopy``s every written DataValue once per monitored item
    (``MonitoredItemValues.set_current_datavalue``), about 28 us each: at 20k changes/s that
    alone is more than half a core and saturated one simulator process near 9k/s. A fresh
    instance is written each time and never changed, so the copy is the object itself.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedDataValue:
        return self


@dataclass(slots=True)
class _Last:
    """Per welder (row) of one signal: whether, and what value and status, was last written."""

    seen: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint32]

    @classmethod
    def empty(cls, rows: int) -> _Last:
        return cls(np.zeros(rows, bool), np.full(rows, np.nan), np.zeros(rows, np.uint32))


@dataclass(frozen=True)
class SimulatorSecurity:
    """Basic256Sha256 endpoints with the server's certificate; ``users`` (name -> password),
    when given, make username login mandatory. ``allow_none`` also offers the open endpoint.
    ``trusted`` (a directory of client certificates) makes the server check client
    certificates as a strict server does: trusted, within their validity, matching URI."""

    certificate: Path
    private_key: Path
    modes: tuple[Literal["Sign", "SignAndEncrypt"], ...] = ("Sign", "SignAndEncrypt")
    users: dict[str, str] = field(default_factory=dict)
    allow_none: bool = False
    trusted: Path | None = None


class _Users(UserManager):
    """asyncua user manager: a fixed table of usernames and passwords."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


def _nodeid(path: str, ns: int) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns={ns};s={path}")


class OpcUaSimulator(Service):
    """``async with OpcUaSimulator(scenario, port=0) as sim:`` serves ``sim.endpoint``."""

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        security: SimulatorSecurity | None = None,
        start_ns: int | None = None,
        clock: Any = time.time_ns,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        """``namespaces`` are registered before the simulator's own, which then is not at index
        2: what a server that gained a namespace looks like (clients must resolve ``nsu=``).
        It is read at every ``start``, so a test may change it across a restart."""
        self.scenario = scenario
        self.namespaces = namespaces
        self.host = host
        self.port = port or free_port(host)
        self.security = security
        self._clock = clock
        self._fixed_start = start_ns
        self.start_ns = start_ns if start_ns is not None else scenario.start_ns(clock())
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._nodes: dict[str, list[ua.NodeId]] = {}  # signal -> node of each welder (row)
        self._last: dict[str, _Last] = {}  # signal -> what was last written for each welder
        self._chunk: tuple[int, dict[str, Frame]] = (0, {})
        self.ticks_written = 0
        self.ticks_skipped = 0
        self.values_written = 0

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/plantpulse"

    @property
    def running(self) -> bool:
        return self._server is not None

    def tick_at(self, ts_ns: int) -> int:
        return (ts_ns - self.start_ns) // self.scenario.tick

    async def start(self) -> None:
        """Build the address space, write the current tick and listen; idempotent.

        Without a fixed ``start_ns`` the scenario starts when the first start is ready to
        serve, so tick 0 is never skipped; a restart keeps the original start."""
        if self._server is not None:
            return
        server = await self._build()
        self._server = server
        if self._fixed_start is None and self.ticks_written == 0:
            self.start_ns = self.scenario.start_ns(self._clock())  # tick 0 is the first thing served
        self._last = {signal: _Last.empty(self.scenario.welders) for signal in SIGNALS}
        k = max(self.tick_at(self._clock()), 0)
        await self._write_tick(k)
        try:
            await server.start()
        except OSError as e:
            self._server = None
            raise ListenError.from_exception(e, "opcua", self.host, self.port) or e from None
        self._task = asyncio.create_task(self._ticks(k + 1), name=f"simulator {self.endpoint}")
        log.debug(
            "simulator %s serving %d tags of %s on %s",
            self.scenario.name,
            sum(len(nodes) for nodes in self._nodes.values()),
            self.scenario.asset,
            self.endpoint,
        )

    async def stop(self) -> None:
        """Close every connection and stop listening (the port can be reused by ``start``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("simulator %s stopped (%s)", self.scenario.name, self.endpoint)

    async def _build(self) -> Server:
        sec = self.security
        server = Server(user_manager=_Users(sec.users) if sec is not None and sec.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"plantpulse simulator ({self.scenario.name})")
        await server.set_application_uri(SERVER_URI)
        policies: list[ua.SecurityPolicyType] = []
        if sec is None or sec.allow_none:
            policies.append(ua.SecurityPolicyType.NoSecurity)
        if sec is not None:
            if "Sign" in sec.modes:
                policies.append(ua.SecurityPolicyType.Basic256Sha256_Sign)
            if "SignAndEncrypt" in sec.modes:
                policies.append(ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt)
            await server.load_certificate(str(sec.certificate))
            await server.load_private_key(str(sec.private_key))
            if sec.users:
                server.set_identity_tokens([ua.UserNameIdentityToken])
            if sec.trusted is not None:
                store = TrustStore([sec.trusted], [])
                await store.load()
                options = (
                    CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
                )
                server.set_certificate_validator(CertificateValidator(options, store))
        server.set_security_policy(policies)
        for uri in self.namespaces:
            await server.register_namespace(uri)
        ns = await server.register_namespace(NAMESPACE_URI)
        scn = self.scenario
        self._nodes = {signal: [] for signal in SIGNALS}
        line = await server.nodes.objects.add_object(_nodeid(scn.asset, ns), ua.QualifiedName(scn.asset, ns))
        for welder in scn.welder_names():
            path = f"{scn.asset}/{welder}"
            obj = await line.add_object(_nodeid(path, ns), ua.QualifiedName(welder, ns))
            for signal in SIGNALS:
                var = await obj.add_variable(
                    _nodeid(f"{path}/{signal}", ns),
                    ua.QualifiedName(signal, ns),
                    ua.Variant(0.0, ua.VariantType.Double),
                )
                self._nodes[signal].append(var.nodeid)
        return server

    async def _ticks(self, k: int) -> None:
        """Write tick ``k`` at its wall-clock instant, then the next; skip ahead when far behind."""
        tick = self.scenario.tick
        while self.scenario.loop or k < self.scenario.n_ticks:
            delay = self.start_ns + k * tick - self._clock()
            if -delay > 10 * tick:
                behind = self.tick_at(self._clock())
                self.ticks_skipped += behind - k
                log.warning("simulator %s fell behind: skipping %d ticks", self.endpoint, behind - k)
                k = behind
            # Always yield, even when late: asyncua's writes never suspend, so a simulator that
            # falls behind would otherwise starve its own network I/O and publish loop.
            await asyncio.sleep(max(delay, 0) / 1e9)
            await self._write_tick(k)
            k += 1

    def _frames(self, k: int) -> dict[str, Frame]:
        """The frames holding tick ``k``: evaluated ``_CHUNK`` ticks at a time (one numpy call per
        signal per chunk instead of per tick), so the per-tick cost is the writes alone."""
        k0, frames = self._chunk
        if not frames or not k0 <= k < k0 + _CHUNK:
            ks = np.arange(k, k + _CHUNK, dtype=np.int64)
            frames = {signal: self.scenario.evaluate(signal, ks) for signal in SIGNALS}
            self._chunk = (k, frames)
        return frames

    async def _write_tick(self, k: int) -> None:
        server = self._server
        assert server is not None
        ts = self.start_ns + k * self.scenario.tick
        source_ts = datetime.fromtimestamp(ts // 1_000_000_000, UTC).replace(
            microsecond=(ts % 1_000_000_000) // 1000
        )
        now = datetime.now(UTC)
        frames = self._frames(k)
        written = 0
        j = k - self._chunk[0]
        for signal in SIGNALS:
            frame = frames[signal]
            value, code, updated = frame.value[:, j], frame.status[:, j], frame.updated[:, j]
            last = self._last[signal]
            # written when updated and: never written, or the status changed, or a Good value changed
            changed = updated & (~last.seen | (last.status != code) | ((code == 0) & ~(last.value == value)))
            rows = np.flatnonzero(changed)
            if not len(rows):
                continue
            last.seen[rows] = True
            last.status[rows] = code[rows]
            last.value[rows] = value[rows]
            nodes = self._nodes[signal]
            for row, v, c in zip(rows.tolist(), value[rows].tolist(), code[rows].tolist(), strict=True):
                variant = ua.Variant(None, ua.VariantType.Null) if c else ua.Variant(v, ua.VariantType.Double)
                # asyncua annotates these with its own aliases of int/datetime
                fields: dict[str, Any] = {"SourceTimestamp": source_ts, "ServerTimestamp": now}
                dv = _SharedDataValue(Value=variant, StatusCode=ua.StatusCode(cast(Any, c)), **fields)
                await server.write_attribute_value(nodes[row], dv)
                written += 1
                if not written % _YIELD_EVERY:
                    await asyncio.sleep(0)  # let the server publish and serve requests in between
            self.values_written += len(rows)
        self.ticks_written += 1
