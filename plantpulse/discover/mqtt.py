"""``discover mqtt``: listen to a topic filter for a while, then propose MQTT sources.

Choices, and why:

* **The collector's own connection.** Sniffing reuses ``MqttCollector`` (paho on the event loop,
  TLS, login, and the translation of refusals into our errors) with its ``raw`` hook: messages
  are kept as they came instead of being decoded. So discover connects, and fails, exactly
  as the collector will, and its errors are the same one-liners. It subscribes at QoS 0 with a
  clean session under its own client id, leaving nothing behind at the broker.
* **Sparkplug births.** Metric names travel in births only; with ``--rebirth`` an edge node
  heard without one is asked once (NCMD ``Node Control/Rebirth``, what the collector does on
  start anyway). Off by default: discover only listens unless told.
* **Bounded.** At most ``keep`` messages per topic are kept (and counted beyond), at most
  ``max_topics`` topics: a busy broker cannot exhaust memory in a long listen.
* The inference itself is pure (``mqtt_infer``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from plantpulse.collectors.mqtt import MqttCollector
from plantpulse.collectors.mqtt_config import MqttSource
from plantpulse.collectors.mqtt_json import DecodeError
from plantpulse.collectors.sparkplug import NAMESPACE, node_topic, parse_topic, rebirth_payload
from plantpulse.discover.mqtt_infer import Inference, Message, subscriptions
from plantpulse.discover.table import columns
from plantpulse.errors import SourceError, SourceUnavailable
from plantpulse.samples import Sample

__all__ = ["Heard", "sniff", "source_entries", "table"]


class Heard:
    """Messages kept per topic, and how many arrived in all."""

    def __init__(self, keep: int, max_topics: int) -> None:
        self.keep = keep
        self.max_topics = max_topics
        self.messages: list[Message] = []
        self.counts: dict[str, int] = {}

    def add(self, topic: str, payload: bytes, received: int) -> None:
        n = self.counts.get(topic, 0)
        if n == 0 and len(self.counts) >= self.max_topics:
            return
        self.counts[topic] = n + 1
        if n < self.keep:
            self.messages.append(Message(topic, payload, received))


class _Sniffer:
    """Keeps every message raw (the collector's ``raw`` hook: nothing is decoded); with
    ``rebirth``, a Sparkplug edge node heard without its birth is asked once for one (NCMD
    Rebirth), as the collector itself would, so its metric names can be shown."""

    def __init__(self, source: MqttSource, heard: Heard, *, rebirth: bool = False) -> None:
        self.collector = MqttCollector(source, raw=self._message)
        self.heard = heard
        self.rebirth = rebirth
        self._born: set[tuple[str, str]] = set()
        self._asked: set[tuple[str, str]] = set()

    def _message(self, raw_topic: bytes, payload: bytes, received: int) -> None:
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError:
            return
        self.heard.add(topic, payload, received)
        if self.rebirth and topic.startswith(NAMESPACE + "/"):
            self._ask_for_birth(topic, received)

    def _ask_for_birth(self, topic: str, received: int) -> None:
        try:
            t = parse_topic(topic)
        except DecodeError:
            return
        node = (t.group, t.node)
        if t.type == "NBIRTH":
            self._born.add(node)
        elif t.type in ("NDATA", "DDATA", "DBIRTH") and node not in self._born | self._asked:
            self._asked.add(node)
            self.collector.publish(
                node_topic(t.group, "NCMD", t.node), rebirth_payload(received // 1_000_000)
            )


class _Discard:
    """The sink of a sniffer: it decodes nothing, so nothing arrives here but errors."""

    async def put(self, samples: Sequence[Sample]) -> None:
        return None

    def heartbeat(self, source: str, ts: int) -> None:
        return None

    def error(self, source: str, error: SourceError) -> None:
        return None


def listening_source(
    topic: str,
    host: str,
    port: int,
    *,
    name: str,
    username: str | None = None,
    password: str | None = None,
    tls: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> MqttSource:
    """The source a sniffer connects with (ValidationError for a bad filter or TLS options)."""
    return MqttSource.model_validate(
        {
            "kind": "mqtt",
            "name": name,
            "host": host,
            "port": port,
            "client_id": f"plantpulse-discover-{os.getpid()}",
            "persistent": False,
            "qos": 0,
            "timeout": timeout,
            "username": username,
            "password": password,
            "tls": tls,
            "subscriptions": [{"topic": topic, "tag": "{topic}"}],
        }
    )


async def sniff(
    source: MqttSource, seconds: float, *, rebirth: bool = False, keep: int = 20, max_topics: int = 10_000
) -> Heard:
    """Connect, subscribe, listen ``seconds`` once the broker acknowledged, disconnect.
    SourceError (one line) when the broker cannot be reached or refuses us."""
    heard = Heard(keep, max_topics)
    collector = _Sniffer(source, heard, rebirth=rebirth).collector
    task = asyncio.create_task(collector.run(_Discard()))
    subscribed = asyncio.create_task(collector.subscribed.wait())
    try:
        done, _ = await asyncio.wait(
            {task, subscribed}, timeout=2 * source.timeout / 1e9, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            task.result()  # raises the collector's SourceError
            raise SourceUnavailable(source.name, source.address, "connection ended")
        if not done:
            raise SourceUnavailable(
                source.name, source.address, "the broker did not acknowledge the subscription"
            )
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if task in done:
            task.result()
            raise SourceUnavailable(source.name, source.address, "connection ended")
    finally:
        for t in (task, subscribed):
            t.cancel()
        await asyncio.gather(task, subscribed, return_exceptions=True)
        await collector.close()
    return heard


# -- pure: what is printed ----------------------------------------------------------------------


def source_entries(found: Inference, *, name: str, connection: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON source (every subscription) and one Sparkplug source per group."""
    out: list[dict[str, Any]] = []
    subs = subscriptions(found)
    if subs:
        out.append({"kind": "mqtt", "name": name, **connection, "subscriptions": subs})
    many = len(found.sparkplug) > 1
    for g in found.sparkplug:
        out.append(
            {
                "kind": "mqtt",
                "name": f"{name}-sparkplug" + (f"-{g.group}" if many else ""),
                **connection,
                "format": "sparkplug",
                "sparkplug": {"group": g.group, "edge_nodes": g.nodes},
            }
        )
    return out


def table(found: Inference, counts: dict[str, int]) -> list[str]:
    """Per group: its filter, messages, and what each path is (value -> tag, timestamp, ...)."""
    rows: list[tuple[str, ...]] = [("topic filter", "messages", "path", "is", "example / tag")]
    for g in found.json:
        n = sum(counts.get(t, 0) for t in g.topics)
        first = True
        base = g.tag or "(per topic)"  # "": one subscription per exact topic
        if g.pattern is not None:
            rows.append((", ".join(g.filters), str(n), g.pattern, "fields", "every number, boolean and null"))
            first = False
        for f, tag in zip(g.values, g.tags(base), strict=True):
            rows.append(
                (
                    ", ".join(g.filters) if first else "",
                    str(n) if first else "",
                    f.path,
                    "value",
                    f"{f.example} -> {tag}",
                )
            )
            first = False
        if g.array is not None:
            rows.append(
                (
                    "",
                    "",
                    g.array,
                    "readings",
                    f"one sample per element, named by {g.name.path}" if g.name else "one sample per element",
                )
            )
        if g.timestamp is not None:
            rows.append(("", "", g.timestamp.path, "timestamp", g.timestamp.format or ""))
        if g.quality is not None:
            rows.append(("", "", g.quality.path, "quality", ""))
    for sp in found.sparkplug:
        rows.append(
            (
                f"spBv1.0/{sp.group}/+/{'|'.join(sp.nodes)}/#",
                str(sp.messages),
                "",
                "Sparkplug B",
                f"{len(sp.metrics)} metrics",
            )
        )
        rows.extend(("", "", "", "metric", f"{value} -> {tag}") for tag, value in sp.metrics.items())
    lines = columns(rows)
    for t, why in sorted(found.skipped.items()):
        lines.append(f"skipped {t}: {why}")
    for g in found.json:
        lines.extend(f"note {', '.join(g.filters)}: {n}" for n in g.notes)
    for sp in found.sparkplug:
        lines.extend(f"note spBv1.0/{sp.group}: {n}" for n in sp.notes)
    return lines
