"""An embedded MQTT 3.1.1 broker (amqtt) on loopback, for the demo when no broker is configured.

It runs inside the caller's event loop, so nothing in that loop may block waiting on it (a
synchronous ``wait_for_publish`` from the same thread would deadlock). Anonymous access, no
persistence, no ``$SYS`` publisher: a test-bench broker, not a production one (use Mosquitto).

    async with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        broker.port  # the port actually bound
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

from plantpulse.errors import ListenError
from plantpulse.simulators.service import Service

__all__ = ["EmbeddedBroker"]

log = logging.getLogger(__name__)


class EmbeddedBroker(Service):
    """``async with EmbeddedBroker() as b`` listens on ``b.host:b.port`` until the block ends."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        # optional dependency, imported only when used (and untyped: hence Any)
        broker_module: Any = importlib.import_module("amqtt.broker")

        if self._broker is not None:
            return
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = broker_module.Broker(config)
        try:
            await broker.start()
        except Exception as e:  # amqtt's BrokerError, caused by the bind's OSError
            raise ListenError.from_exception(e, "mqtt", self.host, self.port) or e from None
        server = broker._servers["default"].instance  # amqtt exposes no public bound-port accessor
        self.port = int(server.sockets[0].getsockname()[1])
        self._broker = broker
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            # amqtt's shutdown leaves the server side of still-open connections to the garbage
            # collector (ResourceWarning); close them first (private: amqtt has no public API)
            try:
                # bounded: amqtt 0.12 can wait forever on a client that never finishes closing
                async with asyncio.timeout(5):
                    for _, handler in list(getattr(broker, "_sessions", {}).values()):
                        writer = getattr(handler, "writer", None)
                        if writer is not None:
                            with contextlib.suppress(OSError, ConnectionError, AttributeError, RuntimeError):
                                await writer.close()
                    await broker.shutdown()
            except TimeoutError:
                log.warning("embedded MQTT broker on %s did not stop within 5 s; abandoned", self.url)
            else:
                log.info("embedded MQTT broker on %s stopped", self.url)
