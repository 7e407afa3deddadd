"""One contract suite, every backend: the ``store`` fixture is parametrized over BACKENDS.

Each param yields a URL naming a fresh, empty database (a file in tmp_path, or a throwaway
PostgreSQL database dropped afterwards) and ``make_store`` builds a store on it; calling
``make_store`` again gives a second store on the SAME database, which is how the contract
tests check that everything survives a restart. PostgreSQL runs twice: ``postgres`` is the
plain layout in a database without the timescaledb extension, ``timescale`` the TimescaleDB
layout (hypertable, compression and its policy, continuous aggregate and its refresh policy;
retention off, pg_helpers.FLAVORS) in a database with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pg_helpers import (
    PLANT_PASSWORD,
    PLANT_ROLE,
    Cluster,
    create_database,
    drop_database,
    private_cluster,
    skip_or_fail,
    store_config,
)
from psycopg import sql

from plantpulse.store import Store

StoreFactory = Callable[[], Store]


def _sqlite(url: str) -> Store:
    from plantpulse.store.sqlite import SQLiteStore

    return SQLiteStore(url)


def _postgres(flavor: str) -> Callable[[str], Store]:
    def make(url: str) -> Store:
        from plantpulse.store.postgres import PostgresStore

        return PostgresStore(url, store_config(url, flavor))

    return make


BACKENDS: dict[str, Callable[[str], Store]] = {
    "sqlite": _sqlite,
    "postgres": _postgres("plain"),
    "timescale": _postgres("timescale"),
}


@pytest.fixture(params=list(BACKENDS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database of the param's backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"  # tmp_path is absolute: sqlite:////tmp/...
        return
    dsn: str = request.getfixturevalue("pg_dsn")  # require_service("PostgreSQL", ...) first
    url = create_database(dsn, "test_contract", timescale=request.param == "timescale")
    try:
        yield url
    finally:
        drop_database(dsn, url)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store_url: str) -> StoreFactory:
    backend = request.node.callspec.params["store_url"]
    return lambda: BACKENDS[backend](store_url)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# -- a server with the timescaledb files but without shared_preload_libraries ---------------------


@pytest.fixture(scope="session")
def unpreloaded_cluster() -> Iterator[Cluster]:
    """A private cluster (tests/store/test_outage.py's pattern) whose server has the timescaledb
    files, as ../shared/timescaledb/install.sh puts them, but does not preload the library. It
    holds database ``was_timescale``, migrated by the store while the server still preloaded
    timescaledb, and role ``plant`` (password ``plant-pw``, required over TCP) owning database
    ``plant``."""
    with private_cluster() as c:
        c.require_password(PLANT_ROLE)
        c.start()
        with psycopg.connect(c.url, autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            if row is None:
                skip_or_fail("timescaledb is not installed: run ../shared/timescaledb/install.sh")
            conn.execute("CREATE DATABASE was_timescale")
            role = sql.Identifier(PLANT_ROLE)
            password = sql.Literal(PLANT_PASSWORD)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, password))
            conn.execute(sql.SQL("CREATE DATABASE plant OWNER {}").format(role))
        c.stop("fast")
        c.start("shared_preload_libraries=timescaledb")
        asyncio.run(_migrate(c.url.rsplit("/", 1)[0] + "/was_timescale"))
        c.stop("fast")
        c.start()
        yield c


async def _migrate(url: str) -> None:
    from plantpulse.store.postgres import PostgresStore

    s = PostgresStore(url)
    await s.open()
    assert s.flavor == "timescale"
    await s.close()
