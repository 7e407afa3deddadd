"""Issue 8 item 5b: with a PostgreSQL store, rules with a short ``for`` (1 s, 2 s, 5 s, 10 s) get
their pushes. The trend over the window travels on the raise event; the notifier never reads
the store for it (the store's bucket arithmetic once refused these windows and the notifier
retried the step forever). Real PostgreSQL (a fresh database), local PushReceiver."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from service_helpers import T0, S, on_shift, raised, team_plant

from plantpulse.alerts import Trend
from plantpulse.notifier.clock import ManualClock
from plantpulse.notifier.receiver import PushReceiver
from plantpulse.notifier.runtime import start_notifying
from plantpulse.store.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(pg_dsn: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"test_notify_{secrets.token_hex(6)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(pg_dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_short_for_windows_are_pushed_with_their_trend_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    async with PushReceiver() as rx:
        plant = team_plant(rx.url)
        spool = plant.store.spool.model_copy(update={"dir": tmp_path / "state"})
        plant = plant.model_copy(
            update={"store": plant.store.model_copy(update={"url": pg_url, "spool": spool})}
        )
        store = PostgresStore(pg_url, plant.store)
        await store.open()
        n = await start_notifying(plant, store, journal=store, clock=ManualClock(T0), backoff=0.001)
        try:
            events = []
            for i, seconds in enumerate((1, 2, 5, 10)):
                trend = Trend(
                    first=200.0, last=206.0 + i, min=199.0, max=206.0 + i, n=10 * seconds, window=seconds * S
                )
                events.append(replace(raised(i), window=seconds * S, trend=trend))
            shifts = {k: v for ev in events for k, v in on_shift(plant, ev).items()}
            await store.write_alert_events(events, "raise-batch", shifts)
            assert n.notifier is not None
            n.notifier.submit(events, shifts)
            got = await rx.wait_for(8)  # each to 张伟 and 李娜
        finally:
            await n.stop()
            await store.close()
    texts = sorted({line for g in got for line in g.body["message"].split("\n") if line.startswith("趋势")})
    assert texts == [
        "趋势:近 10s 最小 199,最大 209,最新 209(上升 ↑)",
        "趋势:近 1s 最小 199,最大 206,最新 206(上升 ↑)",
        "趋势:近 2s 最小 199,最大 207,最新 207(上升 ↑)",
        "趋势:近 5s 最小 199,最大 208,最新 208(上升 ↑)",
    ]
