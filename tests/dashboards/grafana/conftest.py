"""Fixtures of the Grafana dashboard tests: seeded PostgreSQL databases of both layouts."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from grafana_seed import create_kpi_results, seed
from psycopg import sql

from plantpulse.config import StoreConfig, TimescaleConfig
from plantpulse.store.postgres import PostgresStore


@dataclass(frozen=True)
class Seeded:
    url: str
    flavor: str  # what the store recorded: "timescale" or "plain"


@pytest.fixture
def database(pg_dsn: str) -> Iterator[str]:
    """A fresh, empty database next to the test database; dropped afterwards."""
    name = f"test_grafana_{secrets.token_hex(6)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(pg_dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["timescale", "plain"])
def seeded(request: pytest.FixtureRequest, database: str) -> Seeded:
    """The store's schema and the seed (grafana_seed) in a database WITH TimescaleDB (the
    extension created first; the store then makes ``samples`` a hypertable and ``samples_1m`` a
    continuous aggregate) or WITHOUT (``timescale.mode: off``: ``samples_1m`` kept by the store),
    plus ``kpi_results`` from the contract DDL."""
    timescale = request.param == "timescale"
    if timescale:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")

    async def run() -> str | None:
        cfg = StoreConfig(url=database, timescale=TimescaleConfig(mode="auto" if timescale else "off"))
        store = PostgresStore(database, cfg)
        await store.open()
        try:
            await seed(store)
        finally:
            await store.close()
        return store.flavor

    flavor = asyncio.run(run())
    assert flavor == request.param
    create_kpi_results(database)
    return Seeded(database, request.param)
