"""/metrics and the health probes in process (httpx over ASGI) on the real spool, SQLite store,
engine and pipeline; one registry per app, tokens as docs/operations.md says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from plantpulse.api.app import Api
from plantpulse.api.config import ApiConfig
from plantpulse.config import PlantConfig, SpoolConfig, StoreConfig
from plantpulse.httpserve import free_port
from plantpulse.observe.histogram import Histogram
from plantpulse.observe.parts import Observed
from plantpulse.rules.engine import Engine
from plantpulse.rules.loader import load_rules_text
from plantpulse.samples import Sample, TagRegistry
from plantpulse.store import open_store
from plantpulse.store.spool import SpoolWriter
from plantpulse.stream.pipeline import Pipeline

TOKEN = "api-token-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"
S = 10**9
RULES = 'rules:\n  - {id: hot, tag: "line1/*/temp", above: 80, severity: high}\n'

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class App:
    def __init__(self, client: httpx.AsyncClient, writer: SpoolWriter, observed: Observed) -> None:
        self.client, self.writer, self.observed = client, writer, observed

    async def scrape(self, token: str = METRICS_TOKEN) -> Series:
        r = await self.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(r.text)
            for s in f.samples
        }

    def pipeline(self) -> Pipeline:
        tags = TagRegistry()
        p = Pipeline(Engine(load_rules_text(RULES), tags), tags, self.writer)
        self.observed.running(p, [])
        return p


@asynccontextmanager
async def app(tmp_path: Path, store_url: str | None = None) -> AsyncIterator[App]:
    url = store_url or f"sqlite:///{tmp_path / 'pp.db'}"
    plant = PlantConfig(
        store=StoreConfig(
            url=url, connect_timeout="1s", spool=SpoolConfig(dir=tmp_path / "spool", fsync=False)
        ),
        api=ApiConfig(listen="127.0.0.1:8080", token=TOKEN, metrics_token=METRICS_TOKEN),  # type: ignore[arg-type]
    )
    store = open_store(plant.store)
    writer = SpoolWriter(store, plant.store.spool_config, backoff=(30.0, 30.0))
    await writer.start()
    await writer.opened()
    observed = Observed(plant, writer)
    api = Api(store, token=TOKEN, observed=observed)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pp") as client:
        try:
            yield App(client, writer, observed)
        finally:
            await writer.stop(drain_timeout=1)


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


async def test_probes_answer_without_a_token_and_metrics_needs_one(tmp_path: Path) -> None:
    async with app(tmp_path) as a:
        live = await a.client.get("/api/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        ready = await a.client.get("/api/health/ready")  # the pipeline is not built yet
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["pipeline"] and ready.json()["phase"] == "starting"
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789"},
            {"Authorization": METRICS_TOKEN},
        ):
            r = await a.client.get("/metrics", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        r = await a.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        await a.scrape(TOKEN)  # the API token reads metrics too
        r = await a.client.get("/api/alerts", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 401  # ... but the metrics token reads nothing else
        om = await a.client.get(
            "/metrics",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
        )
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.endswith("# EOF\n")


async def test_ready_names_an_unreachable_store_and_shows_its_error_only_with_the_token(
    tmp_path: Path,
) -> None:
    nobody = f"postgresql://plantpulse@127.0.0.1:{free_port()}/plant"  # nothing listens there
    async with app(tmp_path, nobody) as a:
        a.pipeline()
        r = await a.client.get("/api/health/ready")
        assert r.status_code == 503 and r.json()["failing"] == ["store"]
        store = next(c for c in r.json()["checks"] if c["name"] == "store")
        assert store["state"] == "unreachable" and "error" not in store
        r = await a.client.get("/api/health/ready", headers={"Authorization": f"Bearer {TOKEN}"})
        store = next(c for c in r.json()["checks"] if c["name"] == "store")
        assert "127.0.0.1" in store["error"]
        r = await a.client.get("/api/health/ready", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 401  # a token that is sent must be the API token
        assert value(await a.scrape(), "plantpulse_store_up") == 0


async def test_metrics_read_the_running_parts_at_scrape_time(tmp_path: Path) -> None:
    async with app(tmp_path) as a:
        before = await a.scrape()
        assert (
            value(before, "plantpulse_ready") == 0
            and value(before, "plantpulse_engine_samples_total") is None
        )
        p = a.pipeline()
        t0 = 1_767_225_600 * S
        await p.sink.bind("oven").put(
            [Sample(t0, "line1/oven1/temp", 20.0), Sample(t0 + S, "line1/oven1/temp", 90.0)]
        )
        assert len(await p.step()) == 1
        await a.writer.flush()
        m = await a.scrape()
        st = a.writer.stats()
    assert value(m, "plantpulse_ready") == 1
    assert value(m, "plantpulse_alerts_raised_total", rule="hot") == 1
    assert value(m, "plantpulse_alerts_cleared_total", rule="hot") == 0
    assert value(m, "plantpulse_engine_samples_total") == 2
    assert value(m, "plantpulse_pipeline_samples_total") == 2
    assert value(m, "plantpulse_queue_samples") == 0
    assert value(m, "plantpulse_queue_capacity_samples") == 100_000
    assert value(m, "plantpulse_source_watermark_lag_seconds", source="oven") is not None
    assert value(m, "plantpulse_store_committed_records_total") == st.committed > 0
    assert value(m, "plantpulse_spool_fsyncs_total") == st.fsyncs > 0
    assert value(m, "plantpulse_store_write_duration_seconds_count") == st.transactions
    assert value(m, "plantpulse_store_write_duration_seconds_bucket", le="+Inf") == st.transactions
    assert value(m, "plantpulse_spool_capacity_bytes") == 1 << 30
    assert value(m, "plantpulse_build_info", version="0.1.0") == 1
    assert value(m, "process_cpu_seconds_total") is not None  # prometheus_client's process collector


async def test_every_app_has_its_own_registry(tmp_path: Path) -> None:
    """Tests run many pipelines in one process: the process-global REGISTRY would refuse the
    second app's collectors, and both would show one set of numbers."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with app(tmp_path / "a") as a, app(tmp_path / "b") as b:
        p = a.pipeline()
        await p.sink.put([Sample(1_767_225_600 * S, "line1/oven1/temp", 95.0)])
        await p.step()
        assert value(await a.scrape(), "plantpulse_alerts_raised_total", rule="hot") == 1
        assert value(await b.scrape(), "plantpulse_alerts_raised_total", rule="hot") is None


async def test_metric_names_follow_prometheus_conventions(tmp_path: Path) -> None:
    async with app(tmp_path) as a:
        a.pipeline()
        r = await a.client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    families = list(text_string_to_metric_families(r.text))
    ours = [f for f in families if f.name.startswith("plantpulse_")]
    assert {f.name.split("_")[0] for f in families} <= {"plantpulse", "process", "python"}
    assert len(ours) > 40
    for f in ours:
        assert f.documentation, f.name
        if f.type == "counter":
            assert all(s.name.endswith("_total") for s in f.samples), f.name
        else:
            assert not f.name.endswith("_total"), f.name
        if "seconds" in f.name or "bytes" in f.name:
            assert f.name.endswith(("_seconds", "_bytes")), f.name


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    h = Histogram([0.01, 0.1, 1.0])
    for v in (0.005, 0.01, 0.05, 2.0):
        h.observe(v)
    snap = h.snapshot()
    assert snap.cumulative() == [(0.01, 2), (0.1, 3), (1.0, 3), (float("inf"), 4)]
    assert (snap.count, snap.total) == (4, 2.065)
