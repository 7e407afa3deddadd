"""OPC UA collector: one asyncua client, one subscription, samples in event time.

Choices, and why:

* **Subscription, not polling.** One subscription at the source's ``publishing_interval``;
  each tag is a monitored item with its own ``sampling_interval`` and, when set, an absolute
  deadband (``DataChangeFilter``, trigger StatusValue).
* **Timestamps.** A sample carries the SOURCE timestamp (the device's), else the server
  timestamp, else the publish time. Quality comes from the StatusCode severity (Good ->
  good, Uncertain -> uncertain, Bad -> bad); a missing or non-numeric value is NaN/bad.
* **Heartbeats from publish responses.** Every PublishResponse (data or keep-alive) carries the
  server's ``PublishTime``. The subscription asks for a keep-alive at least every
  ``heartbeat``, so one arrives even when no tag changes, and each one calls
  ``sink.heartbeat(source, PublishTime - lag)`` after that response's samples were delivered.
  ``lag`` (publishing interval + largest sampling interval) covers values sampled just before
  the publish but reported in the next one, so the watermark never passes a sample still in
  flight. This needs no extra monitored item, and it proves the subscription itself is alive.
* **Connection loss.** asyncua's supervisor probes the server every ``min(heartbeat,
  timeout)`` and sees dropped sockets at once (``connection_lost_callback``); in addition, no
  PublishResponse for ``3 * keep-alive + timeout`` means the subscription is dead. Either way
  ``run`` raises SourceUnavailable; asyncua's own auto-reconnect is off because the runner
  owns reconnecting (and resubscribes by calling ``run`` again).
* **Backpressure.** asyncua awaits our publish callback before it sends the next
  PublishRequest. The callback converts the response and hands it to a bounded queue
  (``handoff`` responses); when the pipeline is full it waits up to ``timeout`` (holding back
  PublishRequests is OPC UA's own flow control: the server keeps the notifications), then drops
  that response and reports the drop as a counted error. The transport's receive loop is
  never blocked.
* **Node ids by namespace URI.** ``nsu=<uri>;s=...`` is resolved against the namespace array
  read at every connect (so after every reconnect too: a restarted server may number its
  namespaces differently). Node id syntax is checked by the config schema (``opcua_nodeid``).
* **Errors.** Connecting, the certificate pin and error translation live in
  ``opcua_session`` (shared with ``plantpulse discover``): refused certificates ->
  CertificateRejected, refused logins -> AuthenticationError, everything else ->
  SourceUnavailable. A tag whose node the server refuses, or whose namespace URI the server
  does not have, is reported through ``sink.error`` (which tag, which node, why) and skipped;
  the other tags keep flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError

from plantpulse.collectors.base import Sink
from plantpulse.collectors.errors import SamplesDropped, TagError
from plantpulse.collectors.opcua_nodeid import NodeRef
from plantpulse.collectors.opcua_session import Target, close_client, open_client, translate
from plantpulse.config import OpcUaSource, OpcUaTag
from plantpulse.errors import SourceUnavailable
from plantpulse.samples import Quality, Sample
from plantpulse.timefmt import NS_PER_MS, from_datetime

__all__ = ["OpcUaCollector", "namespaces_text", "node_id", "quality_of"]

log = logging.getLogger(__name__)

_LOST_CODES = frozenset((StatusCodes.BadShutdown, StatusCodes.BadTimeout, StatusCodes.BadNoCommunication))
_CREATE_CHUNK = 1000
_QUEUE_SIZE = 10  # per monitored item: keeps every change between two publishes, not just the last


def quality_of(code: int) -> Quality:
    """StatusCode severity (top two bits: 00 good, 01 uncertain, 1x bad) -> Quality."""
    severity = (code >> 30) & 0b11
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


def _as_float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    return math.nan


@dataclass(frozen=True, slots=True)
class _Publish:
    """One PublishResponse, converted: its samples and its PublishTime (ns)."""

    samples: list[Sample]
    publish_ns: int


class _Lost:
    """Marker in the handoff: the connection or the subscription is gone."""

    def __init__(self, why: str) -> None:
        self.why = why


class _Feed(Subscription):
    """An asyncua Subscription that converts whole PublishResponses straight into samples.

    Overriding ``publish_callback`` keeps one batch per notification message and avoids
    asyncua's per-item dispatch (a task per value in handler mode).
    """

    def __init__(
        self, collector: OpcUaCollector, client: Client, params: ua.CreateSubscriptionParameters
    ) -> None:
        super().__init__(client.uaclient.session, params, handler=None, queue_maxsize=1)
        self._collector = collector
        self.tags: dict[int, OpcUaTag] = {}

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        c = self._collector
        msg = publish_result.NotificationMessage
        publish_ns = from_datetime(msg.PublishTime)
        samples: list[Sample] = []
        for notif in msg.NotificationData or ():
            if isinstance(notif, ua.DataChangeNotification):
                for item in notif.MonitoredItems:
                    tag = self.tags.get(item.ClientHandle)
                    if tag is not None:
                        samples.append(_sample(tag.name, item.Value, publish_ns))
            elif isinstance(notif, ua.StatusChangeNotification) and notif.Status.value in _LOST_CODES:
                c._handoff_lost(f"subscription status {notif.Status.name}")
        await c._handoff(_Publish(samples, publish_ns))


def _sample(tag: str, dv: ua.DataValue, fallback_ns: int) -> Sample:
    stamp = dv.SourceTimestamp or dv.ServerTimestamp
    ts = from_datetime(stamp) if stamp is not None else fallback_ns
    code = dv.StatusCode.value if dv.StatusCode is not None else 0
    raw = dv.Value.Value if dv.Value is not None else None
    value = _as_float(raw)
    quality = quality_of(code)
    if math.isnan(value):
        quality = Quality.BAD
    return Sample(ts, tag, value, quality)


class OpcUaCollector:
    """A StreamingCollector for one OPC UA server (``config.OpcUaSource``)."""

    def __init__(self, source: OpcUaSource, *, handoff: int = 64) -> None:
        self.source = source
        self.name = source.name
        self.address = source.endpoint
        self._queue: asyncio.Queue[_Publish | _Lost] = asyncio.Queue(maxsize=handoff)
        self._client: Client | None = None
        self._sink: Sink | None = None
        self._heartbeat_ns = 0
        max_sampling = max((t.sampling_interval or 0 for t in source.tags), default=0)
        self.lag_ns = source.publishing_interval + max_sampling
        self.keepalive_count = max(1, source.heartbeat // max(source.publishing_interval, 1))
        keepalive_ns = self.keepalive_count * source.publishing_interval
        self.stale_after_ns = 3 * keepalive_ns + source.timeout

    # -- StreamingCollector ---------------------------------------------------------------------

    async def run(self, sink: Sink) -> None:
        """Connect, subscribe and deliver until cancelled or the connection is lost."""
        self._sink = sink
        self._drain()
        client = await self._connect()
        try:
            await self._subscribe(client, sink)
            while True:
                try:
                    item = await asyncio.wait_for(self._queue.get(), self.stale_after_ns / 1e9)
                except TimeoutError:
                    raise self._unavailable(
                        f"no publish response for {self.stale_after_ns / 1e9:g}s"
                    ) from None
                if isinstance(item, _Lost):
                    raise self._unavailable(item.why)
                if item.samples:
                    await sink.put(item.samples)
                hb = item.publish_ns - self.lag_ns
                if hb > self._heartbeat_ns:
                    self._heartbeat_ns = hb
                    sink.heartbeat(self.name, hb)
        finally:
            await self._disconnect(client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await self._disconnect(client)

    # -- connection -----------------------------------------------------------------------------

    async def _connect(self) -> Client:
        src = self.source

        async def lost(exc: Exception) -> None:
            self._handoff_lost(f"connection lost: {exc or type(exc).__name__}")

        client = await open_client(
            Target.of(src), watchdog=min(src.heartbeat, src.timeout) / 1e9, on_lost=lost
        )
        self._client = client
        return client

    async def _disconnect(self, client: Client) -> None:
        if self._client is client:
            self._client = None
        await close_client(client, self.source.timeout / 1e9)

    # -- subscription ---------------------------------------------------------------------------

    async def _subscribe(self, client: Client, sink: Sink) -> None:
        src = self.source
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = src.publishing_interval / NS_PER_MS
        params.RequestedMaxKeepAliveCount = self.keepalive_count
        params.RequestedLifetimeCount = max(10_000, 3 * self.keepalive_count)
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        feed = _Feed(self, client, params)
        try:
            nodes = await self._resolve(client, sink)
            await feed.init()
            requests = [
                (tag, self._item_request(handle, tag, nodes[tag.name]))
                for handle, tag in enumerate(src.tags, start=1)
                if tag.name in nodes
            ]
            for i in range(0, len(requests), _CREATE_CHUNK):
                chunk = requests[i : i + _CREATE_CHUNK]
                for tag, req in chunk:
                    feed.tags[_handle(req)] = tag  # before creating: the first values may come at once
                results = await feed.create_monitored_items([r for _, r in chunk])
                for (tag, req), result in zip(chunk, results, strict=True):
                    if isinstance(result, ua.StatusCode):
                        feed.tags.pop(_handle(req), None)
                        sink.error(
                            self.name,
                            TagError(
                                self.name, self.address, f"tag {tag.name}: node {tag.node}: {result.name}"
                            ),
                        )
        except (OSError, TimeoutError, UaError) as e:
            raise translate(Target.of(src), e) from None

    async def _resolve(self, client: Client, sink: Sink) -> dict[str, ua.NodeId]:
        """Each tag's NodeId on this server: ``nsu=`` URIs looked up in the namespace array read
        now (indexes may differ after a server restart). A URI the server does not have is one
        TagError per tag, all with one text (so logged once); the other tags are subscribed."""
        refs = {tag.name: tag.ref for tag in self.source.tags}
        uris = {ref.uri for ref in refs.values() if ref.uri is not None}
        array: list[str] = await client.get_namespace_array() if uris else []
        index = {uri: i for i, uri in enumerate(array)}
        missing: dict[str, list[str]] = {}
        out: dict[str, ua.NodeId] = {}
        for name, ref in refs.items():
            if ref.uri is not None and ref.uri not in index:
                missing.setdefault(ref.uri, []).append(name)
                continue
            out[name] = node_id(ref.with_index(index[ref.uri]) if ref.uri is not None else ref)
        for uri, names in missing.items():
            error = TagError(
                self.name,
                self.address,
                f"namespace {uri!r} is not on the server ({len(names)} tags not subscribed, "
                f"e.g. {names[0]}); it has: {namespaces_text(array)}",
            )
            for _ in names:
                sink.error(self.name, error)
        return out

    def _item_request(self, handle: int, tag: OpcUaTag, node: ua.NodeId) -> ua.MonitoredItemCreateRequest:
        rv = ua.ReadValueId()
        rv.NodeId = node
        rv.AttributeId = AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = handle
        mp.SamplingInterval = (tag.sampling_interval or self.source.publishing_interval) / NS_PER_MS
        mp.QueueSize = _QUEUE_SIZE
        mp.DiscardOldest = True
        if tag.deadband:
            flt = ua.DataChangeFilter()
            flt.Trigger = ua.DataChangeTrigger.StatusValue
            flt.DeadbandType = ua.DeadbandType.Absolute
            flt.DeadbandValue = tag.deadband
            mp.Filter = flt
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = rv
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = mp
        return req

    # -- handoff (called from asyncua's publish loop) ------------------------------------------

    async def _handoff(self, item: _Publish) -> None:
        try:
            self._queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            pass
        try:
            await asyncio.wait_for(self._queue.put(item), self.source.timeout / 1e9)
        except TimeoutError:
            if self._sink is not None and item.samples:
                self._sink.error(
                    self.name,
                    SamplesDropped(
                        self.name, self.address, f"pipeline full: dropped {len(item.samples)} samples"
                    ),
                )

    def _handoff_lost(self, why: str) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(_Lost(why))

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    # -- errors ---------------------------------------------------------------------------------

    def _unavailable(self, why: str) -> SourceUnavailable:
        return SourceUnavailable(self.name, self.address, why)


def namespaces_text(namespaces: Sequence[str], most: int = 8) -> str:
    """A server's own namespaces (not 0, the standard one) as ``uri (ns=N), ...``."""
    own = [f"{uri} (ns={i})" for i, uri in enumerate(namespaces) if i > 0]
    return ", ".join(own[:most]) + (", ..." if len(own) > most else "") if own else "none"


def _handle(req: ua.MonitoredItemCreateRequest) -> int:
    return int(req.RequestedParameters.ClientHandle)


def node_id(ref: NodeRef) -> ua.NodeId:
    """A parsed, index-addressed NodeId as asyncua's (the two parsers agree on ``ns=`` forms)."""
    assert ref.uri is None, "resolve nsu= against the server's namespace array first"
    return ua.NodeId.from_string(str(ref))
