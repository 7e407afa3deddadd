"""``plantpulse simulate``: devices for a test bench, until stopped.

``--scenario FILE`` serves a scenario's line, each welder on the protocol its ``protocols:``
names (OPC UA, Modbus TCP, MQTT), all on one clock; ``--replay FILE --protocol P`` plays a
recorded sample file through one protocol at ``--speed`` (a factor, or ``max``). MQTT goes to
``--mqtt-broker HOST:PORT`` or, without it, to an embedded broker on ``--host:--mqtt-port``.
Both log what they serve and stop cleanly on Ctrl-C/SIGTERM. A replay that serves (OPC UA,
Modbus, or MQTT through the embedded broker) keeps serving the last values until stopped; an
MQTT replay to ``--mqtt-broker`` exits once the broker has acknowledged every message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
from typing import Any

from plantpulse.errors import ListenError, SourceUnavailable
from plantpulse.simulators.broker import EmbeddedBroker
from plantpulse.simulators.line import SimulatedLine
from plantpulse.simulators.replay import Replayer, ReplayProtocol, load_replay, make_target
from plantpulse.simulators.scenario import Scenario, load_scenario

log = logging.getLogger("plantpulse.simulate")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` to ``plantpulse``."""
    p = sub.add_parser(
        "simulate",
        help="serve a simulated line (OPC UA, Modbus, MQTT) or replay a recording, for a test bench",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--scenario", help="scenario YAML file")
    what.add_argument("--replay", help="samples file to replay (CSV ts,tag,value[,quality] or Parquet)")
    p.add_argument(
        "--protocol", choices=["opcua", "modbus", "mqtt"], help="--replay: the protocol to replay on"
    )
    p.add_argument(
        "--speed", default="1", help="--replay: speed factor (1, 10, ...) or max (default: %(default)s)"
    )
    p.add_argument(
        "--timestamps",
        choices=["shifted", "original"],
        default="shifted",
        help="--replay: recorded spacing from now (default), or the recorded instants",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--opcua-port", "--port", dest="opcua_port", type=int, default=4840, help="0 picks a free port"
    )
    p.add_argument(
        "--modbus-port",
        type=int,
        default=5020,
        help="first Modbus TCP port (one per 247 welders); 0: free ports",
    )
    p.add_argument("--mqtt-broker", default=None, metavar="HOST:PORT", help="publish to this broker")
    p.add_argument(
        "--mqtt-port", type=int, default=1883, help="port of the embedded broker (without --mqtt-broker)"
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=_simulate)


def _broker(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"plantpulse simulate: --mqtt-broker wants HOST:PORT, not {text!r}")
    return host, int(port)


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "inf", "0"):
        return None
    try:
        speed = float(text.rstrip("xX"))
    except ValueError:
        raise SystemExit(f"plantpulse simulate: --speed wants a number or max, not {text!r}") from None
    if not speed > 0:
        raise SystemExit("plantpulse simulate: --speed must be positive")
    return speed


def _simulate(args: argparse.Namespace) -> int:
    """Expected failures go to ``cli.main`` (one line), with the option that fixes them."""
    broker = _broker(args.mqtt_broker)
    try:
        if args.replay is not None:
            if args.protocol is None:
                raise SystemExit("plantpulse simulate: --replay needs --protocol opcua|modbus|mqtt")
            return asyncio.run(_replay(args, broker, _speed(args.speed)))
        scenario = load_scenario(args.scenario)  # ConfigError -> exit 1 with FILE:LINE:COL lines
        return asyncio.run(_serve(scenario, args, broker))
    except ListenError as e:
        e.advise(_LISTEN_OPTIONS[e.service])
        if e.service == "mqtt" and e.errno == errno.EADDRINUSE:
            e.hint = (
                f"if that is an MQTT broker, publish to it with --mqtt-broker {e.host}:{e.port}; "
                f"or choose another port with {_LISTEN_OPTIONS['mqtt']}"
            )
        raise
    except SourceUnavailable as e:
        e.hint = "start that broker, or leave out --mqtt-broker to use an embedded one"
        raise


_LISTEN_OPTIONS = {
    "opcua": "--opcua-port (0: any free port)",
    "modbus": "--modbus-port (0: any free port)",
    "mqtt": "--mqtt-port (0: any free port)",
    "http": "--host",
}


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _until(stop: asyncio.Event, duration: float | None) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)


async def _serve(scenario: Scenario, args: argparse.Namespace, broker: tuple[str, int] | None) -> int:
    stop = _stop_event()
    line = SimulatedLine(
        scenario,
        args.host,
        opcua_port=args.opcua_port,
        modbus_port=args.modbus_port,
        mqtt_broker=broker,
        mqtt_port=args.mqtt_port,
    )
    async with line:
        for text in line.describe():
            log.info("%s", text)
        await _until(stop, args.duration)
        ticks = sum(s.ticks_written for s in (line.opcua, *line.modbus, line.mqtt) if s is not None)
        log.info("stopping (%d ticks written over %d simulators)", ticks, len(line.sources()))
    return 0


async def _replay(args: argparse.Namespace, broker: tuple[str, int] | None, speed: float | None) -> int:
    stop = _stop_event()
    data = load_replay(args.replay)
    protocol: ReplayProtocol = args.protocol
    embedded: EmbeddedBroker | None = None
    async with contextlib.AsyncExitStack() as stack:
        if protocol == "mqtt" and broker is None:
            embedded = await stack.enter_async_context(EmbeddedBroker(args.host, args.mqtt_port))
            broker = (embedded.host, embedded.port)
        port = args.opcua_port if protocol == "opcua" else args.modbus_port
        target = make_target(protocol, data.names, args.host, port, mqtt_broker=broker)
        await target.start()
        stack.push_async_callback(target.stop)
        log.info(
            "replaying %s: %d samples of %d tags over %.3f s at %s on %s",
            args.replay,
            len(data.ts),
            len(data.names),
            data.span_ns / 1e9,
            "max speed" if speed is None else f"{speed:g}x",
            _where(target),
        )
        for text in target.mapping():
            print(text, flush=True)
        replayer = Replayer(data, target, speed=speed, timestamps=args.timestamps)
        playing = asyncio.create_task(replayer.run(), name="replay")
        stopping = asyncio.create_task(_until(stop, args.duration), name="stop")
        await asyncio.wait({playing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if playing.done():
            stats = playing.result()
            if target.keeps_serving:
                after = "serving the last values until stopped"
            elif embedded is not None:
                after = "the embedded broker keeps running for its subscribers until stopped"
            else:
                after = f"every message acknowledged by {_where(target)}"
            log.info(
                "replay finished: %d samples in %.3f s (%.1fx), latest frame %.1f ms late; %s",
                stats.samples,
                stats.elapsed_ns / 1e9,
                stats.achieved_speed,
                stats.max_late_ns / 1e6,
                after,
            )
            if target.keeps_serving or embedded is not None:
                await stopping
            else:  # a publisher to another broker is done
                stopping.cancel()
                await asyncio.gather(stopping, return_exceptions=True)
        else:
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
            stopping.cancel()
        log.info("stopping (%d of %d samples replayed)", replayer.stats.samples, len(data.ts))
    return 0


def _where(target: Any) -> str:
    return str(
        getattr(target, "endpoint", None)
        or getattr(target, "address", None)
        or f"mqtt://{target.host}:{target.port}"
    )
