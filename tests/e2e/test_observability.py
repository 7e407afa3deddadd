"""/metrics and the health probes scraped while a real pipeline runs (issue 9, item 5).

An OPC UA simulator and an MQTT feed on the real Mosquitto go through ``run_pipeline`` into a
throwaway PostgreSQL cluster, with the HTTP API on a free port. The scenario, and what the
scrapes must show:

1. ready (200) once both sources deliver; the OPC UA source's samples counter moves;
2. a reading over the limit on MQTT raises the rule once: ``alerts_raised_total{rule}`` is 1;
3. one malformed MQTT payload: ``source_errors_total{cause="malformed"}`` is 1;
4. the simulator restarts: ``source_reconnects_total`` is 1 and the source is up again;
5. the cluster stops: readiness turns 503 naming the store, ``store_up`` is 0, and
   ``plantpulse status`` says so with exit 1; the cluster starts: 200 again, exit 0.

Steps 2 and 3 run while the collector waits out its reconnect backoff of step 4.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from plantpulse.app import run_pipeline
from plantpulse.config import load_config
from plantpulse.httpserve import free_port
from plantpulse.observe.status import status
from plantpulse.rules.loader import load_rule_files
from plantpulse.simulators.opcua import OpcUaSimulator
from plantpulse.simulators.scenario import load_scenario, opcua_source
from tests.store.pg_helpers import Cluster, private_cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mqtt]

TOKEN = "api-token-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"

SCENARIO = """\
name: observe
asset: line1
welders: 1
seed: 11
tick: 100ms
duration: 120s
"""

RULES = 'rules:\n  - {id: hot, tag: "line1/m1/t", above: 50, severity: high}\n'

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """Every sample of an exposition, by name and labels (prometheus_client's own parser)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


Check = Callable[[], Awaitable[tuple[bool, object]]]


async def until(what: str, check: Check, within: float = 20) -> None:
    """Poll an outside observable (an HTTP endpoint) until ``check`` holds; ``check`` returns
    (holds, what it saw), and the last thing seen is in the failure."""
    seen: object = None
    try:
        async with asyncio.timeout(within):
            while True:
                ok, seen = await check()
                if ok:
                    return
                await asyncio.sleep(0.05)  # a server's answer: there is no event to await
    except TimeoutError:
        raise AssertionError(f"not within {within:g} s: {what}; last seen: {seen}") from None


async def status_command(config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", "status", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_metrics_and_readiness_follow_an_end_to_end_run(
    tmp_path: Path, mqtt_broker: tuple[str, int]
) -> None:
    (tmp_path / "scenario.yaml").write_text(SCENARIO, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    scenario = load_scenario(tmp_path / "scenario.yaml")
    topic = f"pptest/{uuid.uuid4().hex[:8]}"
    port = free_port()
    with private_cluster() as cluster:
        await asyncio.to_thread(cluster.start)
        async with OpcUaSimulator(scenario) as sim:
            opcua = opcua_source(scenario, sim.endpoint, heartbeat="200ms", signals=("current",))
            plant = {
                "sources": [
                    opcua.model_dump(mode="json", exclude_defaults=True) | {"kind": "opcua"},
                    {"kind": "mqtt", "name": "feed", "host": mqtt_broker[0], "port": mqtt_broker[1],
                     "client_id": f"pp-{topic.replace('/', '-')}", "heartbeat": "200ms",
                     "subscriptions": [{"topic": f"{topic}/+", "tag": "line1/m1/{-1}", "value": "$.v"}]},
                ],
                "rules": ["rules.yaml"],
                "store": {"url": cluster.url, "connect_timeout": "1s", "timescale": {"mode": "off"},
                          "spool": {"fsync": False}},
                "api": {"listen": f"127.0.0.1:{port}", "token": TOKEN, "metrics_token": METRICS_TOKEN},
            }  # fmt: skip
            config = tmp_path / "plant.yaml"
            config.write_text(yaml.safe_dump(plant, allow_unicode=True), encoding="utf-8")
            loaded = load_config(config, need_sources=True)
            stop, started = asyncio.Event(), asyncio.Event()
            running = asyncio.create_task(
                run_pipeline(loaded.plant, load_rule_files(loaded.rule_files), stop=stop, started=started)
            )
            base = f"http://127.0.0.1:{port}"
            try:
                await asyncio.wait_for(started.wait(), 30)
                async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                    await scenario_steps(http, sim, cluster, topic=topic, broker=mqtt_broker, config=config)
            finally:
                stop.set()
                await asyncio.wait_for(running, 60)


async def scenario_steps(
    http: httpx.AsyncClient, sim: OpcUaSimulator, cluster: Cluster, *, topic: str, broker: tuple[str, int],
    config: Path,
) -> None:  # fmt: skip
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    series: Series = {}

    async def scrape() -> Series:
        nonlocal series
        r = await http.get("/metrics", headers=auth)
        assert r.status_code == 200, r.text
        series = parse(r.text)
        return series

    async def ready() -> httpx.Response:
        return await http.get("/api/health/ready")

    # 1. ready once both sources deliver and the store takes writes
    await until("ready", lambda: _status_is(ready(), 200))
    assert (await http.get("/metrics")).status_code == 401
    await until("OPC UA samples counted", lambda: _has(scrape(), "plantpulse_source_samples_total",
                                                       lambda v: v > 0, source="weld-opcua"))  # fmt: skip
    assert value(series, "plantpulse_source_up", source="weld-opcua") == 1
    assert value(series, "plantpulse_source_up", source="feed") == 1
    assert value(series, "plantpulse_store_up") == 1
    assert value(series, "plantpulse_ready") == 1
    assert value(series, "plantpulse_source_reconnects_total", source="weld-opcua") == 0
    assert value(series, "plantpulse_source_errors_total", source="feed", cause="malformed") == 0

    # 4. (started now, checked below: the collector's backoff runs while MQTT is exercised)
    restart = asyncio.create_task(sim.restart())

    # 2. + 3. a reading over the limit (repeated until the subscription is surely active), then garbage
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pp-pub-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(pub.connect, *broker)
    pub.loop_start()
    try:

        async def raised() -> tuple[bool, object]:
            await asyncio.to_thread(
                pub.publish(f"{topic}/t", json.dumps({"v": 99}), qos=1).wait_for_publish, 5
            )
            n = value(await scrape(), "plantpulse_alerts_raised_total", rule="hot")
            return n == 1, n

        await until("the alert raised", raised)
        await asyncio.to_thread(pub.publish(f"{topic}/t", b"{not json", qos=1).wait_for_publish, 5)
        await until("one malformed payload counted", lambda: _has(
            scrape(), "plantpulse_source_errors_total", lambda v: v == 1, source="feed", cause="malformed"
        ))  # fmt: skip
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert value(series, "plantpulse_alerts_raised_total", rule="hot") == 1

    # 4. the simulator restarted: one reconnect, and the source is back
    await restart
    await until("one reconnect", lambda: _has(
        scrape(), "plantpulse_source_reconnects_total", lambda v: v == 1, source="weld-opcua"
    ))  # fmt: skip
    await until("OPC UA up again", lambda: _has(scrape(), "plantpulse_source_up", lambda v: v == 1,
                                                source="weld-opcua"))  # fmt: skip
    await until("ready after the restart", lambda: _status_is(ready(), 200))

    # 5. the store goes down, then comes back
    await asyncio.to_thread(cluster.stop)
    await until("503 while the store is down", lambda: _status_is(ready(), 503))
    body = (await ready()).json()
    assert body["status"] == "not ready" and body["failing"] == ["store"]
    assert "error" not in next(c for c in body["checks"] if c["name"] == "store")  # no token: no error text
    await scrape()
    assert value(series, "plantpulse_store_up") == 0 and value(series, "plantpulse_ready") == 0
    code, out, err = await status_command(config)
    assert code == 1, err
    assert out.splitlines()[0] == f"plantpulse at {http.base_url.scheme}://{http.base_url.host}:" \
        f"{http.base_url.port}: not ready (store)"  # fmt: skip
    assert any(line.split()[:2] == ["store", "FAIL"] for line in out.splitlines())
    await asyncio.to_thread(cluster.start)
    await until("200 once the store is back", lambda: _status_is(ready(), 200), within=40)
    await scrape()
    assert value(series, "plantpulse_store_outages_total") == 1
    assert (value(series, "plantpulse_store_write_duration_seconds_count") or 0) > 0
    back = await asyncio.to_thread(status, load_config(config).plant.api)  # the command, in process
    assert (back.code, back.answered) == (0, True) and back.lines[0].endswith(": ready"), back.lines


async def _status_is(response: Awaitable[httpx.Response], code: int) -> tuple[bool, object]:
    r = await response
    return r.status_code == code, f"{r.status_code} {r.text}"


async def _has(
    scraped: Awaitable[Series], name: str, ok: Callable[[float], bool], **labels: str
) -> tuple[bool, object]:
    v = value(await scraped, name, **labels)
    return v is not None and ok(v), v
