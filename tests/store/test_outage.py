"""Exactly-once through outages, on a private PostgreSQL cluster this module starts and stops.

The cluster is stopped (``pg_ctl -m immediate``: a crash, transactions in flight are lost or
not) in the middle of a stream of samples and alerts written through the SpoolWriter, then
started again; afterwards every sample and alert is in the database exactly once. A second
test kills a writer process between the store's commit and the spool bookkeeping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pg_helpers import Cluster, free_port

from plantpulse.alerts import AlertEvent
from plantpulse.config import SpoolConfig, StoreConfig
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store.postgres import PostgresStore
from plantpulse.store.spool import SpoolWriter

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000
TAGS = [f"line1/weld{k:02d}/{sig}" for k in range(10) for sig in ("current", "voltage")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: that is private to root, and the cluster runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="plantpulse-pg-"))
    c = Cluster(base, free_port())
    try:
        c.init()
        c.start()
        yield c
    finally:
        if c.running():
            c.stop()
        shutil.rmtree(base, ignore_errors=True)


def _batch(reg: TagRegistry, i: int, n: int = 400) -> SampleBatch:
    k = np.arange(n)
    ts = T0 + (i * n + k) * 5_000_000
    value = np.sin(i * n + k) * 100 + i
    quality = np.where((i * n + k) % 97 == 0, Quality.BAD, Quality.GOOD)
    return SampleBatch.make(reg, ts, reg.ids(TAGS)[k % len(TAGS)], value, quality)


def _event(i: int) -> AlertEvent:
    return AlertEvent(
        "raised", "weld-dev", TAGS[i % len(TAGS)], "high", T0 + i * S, T0 + i * S, float(i), f"#{i}"
    )


def _expected(batches: int, n: int = 400) -> tuple[int, float, int]:
    reg = TagRegistry()
    allb = SampleBatch.concat(reg, [_batch(reg, i, n) for i in range(batches)])
    return len(allb), float(allb.value.sum()), int(((allb.ts - T0) // 1000).sum())


def _fresh_db(cluster: Cluster, name: str) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return cluster.url.rsplit("/", 1)[0] + "/" + name


def _totals(url: str) -> tuple[int, float, int, int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), sum(value), sum((extract(epoch FROM ts) * 1000000)::bigint - %s) FROM samples",
            (T0 // 1000,),
        ).fetchone()
        alerts = conn.execute("SELECT count(*), count(DISTINCT id) FROM alerts").fetchone()
        journal = conn.execute("SELECT count(*) FROM alert_journal").fetchone()
    assert row is not None and alerts is not None and journal is not None
    return int(row[0]), float(row[1]), int(row[2]), int(alerts[0]), int(alerts[1]), int(journal[0])


async def test_stream_through_a_database_crash_is_stored_exactly_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _fresh_db(cluster, "outage")
    store = PostgresStore(url, StoreConfig(url=url, connect_timeout="2s", timescale={"mode": "off"}))
    writer = SpoolWriter(store, SpoolConfig(dir=tmp_path / "spool", fsync=False), backoff=(0.05, 0.5))
    await writer.start()
    reg = TagRegistry()
    batches, alerts = 150, 0
    for i in range(batches):
        if i == 50:  # mid-stream, with records still pending: crash the server
            await asyncio.to_thread(cluster.stop, "immediate")
        if i == 100:  # the writer has noticed by now; everything since is in the spool
            await asyncio.wait_for(writer.wait_until(available=False), 30)
            assert writer.stats().pending_records >= 40
            await asyncio.to_thread(cluster.start)
        await writer.write_samples(_batch(reg, i))  # never raises, outage or not
        if i % 10 == 0:
            await writer.write_alert_events([_event(i)], {_event(i).alert_id: {"operator": ["Li"]}})
            alerts += 1
        await asyncio.sleep(0)  # let the drain task run, as the pipeline's own awaits would
    await asyncio.wait_for(writer.flush(), 60)
    st = writer.stats()
    await writer.stop()
    assert st.outages >= 1 and st.pending_records == 0 and st.dropped_full == 0 and st.rejected == 0
    count, total, ts_sum, n_alerts, distinct, journal = _totals(url)
    want_count, want_total, want_ts = _expected(batches)
    assert (count, ts_sum) == (want_count, want_ts)
    assert total == pytest.approx(want_total, rel=1e-12)
    assert (n_alerts, distinct, journal) == (alerts, alerts, alerts)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    assert row is not None and row[0] == batches + alerts


_KILLER = textwrap.dedent(
    """
    import asyncio, os, sys
    sys.path.insert(0, sys.argv[3])
    from test_outage import _batch, _event
    from plantpulse.config import SpoolConfig, StoreConfig
    from plantpulse.samples import TagRegistry
    from plantpulse.store.postgres import PostgresStore
    from plantpulse.store.spool import SpoolWriter

    def kill_after_second_commit(batch_id, seen=[]):
        seen.append(batch_id)
        if len(seen) == 2:
            print(batch_id, flush=True)
            os._exit(17)  # after COMMIT, before the spool marks the records done

    async def main():
        url = sys.argv[1]
        store = PostgresStore(url, StoreConfig(url=url, timescale={"mode": "off"}))
        cfg = SpoolConfig(dir=sys.argv[2], fsync=True)
        w = SpoolWriter(store, cfg, after_commit=kill_after_second_commit)
        await w.start()
        reg = TagRegistry()
        for i in range(6):
            await w.write_samples(_batch(reg, i))
            if i == 1:
                await w.write_alert_events([_event(i)])
        await w.flush()

    asyncio.run(main())
    """
)


async def test_kill_between_commit_and_spool_bookkeeping_is_still_exactly_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = _fresh_db(cluster, "killed")
    spool = tmp_path / "spool"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLER,
        url,
        str(spool),
        str(Path(__file__).parent),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 17, err.decode()
    killed_batch = out.decode().strip()
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_batches WHERE id = %s", (killed_batch,)).fetchone()
    assert row == (1,)  # committed before the kill, but the spool still lists it as pending
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    assert row is not None
    in_store = row[0]  # records of the two transactions (a backlog is committed several at once)

    writer = SpoolWriter(
        PostgresStore(url, StoreConfig(url=url, timescale={"mode": "off"})), SpoolConfig(dir=spool)
    )
    await writer.start()
    pending = writer.stats().pending_records
    assert pending >= 7 - in_store + 1  # 6 batches + 1 alert record; the killed transaction's are pending
    await asyncio.wait_for(writer.flush(), 30)
    st = writer.stats()
    await writer.stop()
    assert st.skipped >= 1 and st.skipped + st.committed == pending  # the killed transaction's are skipped
    count, total, ts_sum, n_alerts, distinct, journal = _totals(url)
    want_count, want_total, want_ts = _expected(6)
    assert (count, ts_sum, n_alerts, distinct, journal) == (want_count, want_ts, 1, 1, 1)
    assert total == pytest.approx(want_total, rel=1e-12)
