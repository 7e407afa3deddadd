"""One contract suite, every backend: the ``store`` fixture is parametrized over BACKENDS.

Each param yields a URL naming a fresh, empty database (a file in tmp_path, or a throwaway
PostgreSQL database dropped afterwards) and ``make_store`` builds a store on it; calling
``make_store`` again gives a second store on the SAME database, which is how the contract
tests check that everything survives a restart.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from plantpulse.store import Store

StoreFactory = Callable[[], Store]


def _sqlite(url: str) -> Store:
    from plantpulse.store.sqlite import SQLiteStore

    return SQLiteStore(url)


def _postgres(url: str) -> Store:
    from plantpulse.store.postgres import PostgresStore

    return PostgresStore(url)


BACKENDS: dict[str, Callable[[str], Store]] = {"sqlite": _sqlite, "postgres": _postgres}


def _postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """CREATE DATABASE test_contract_<random> next to tests/conftest.PG_DSN; dropped after."""
    dsn: str = request.getfixturevalue("pg_dsn")  # require_service("PostgreSQL", ...) first
    if importlib.util.find_spec("plantpulse.store.postgres") is None:
        pytest.skip("plantpulse.store.postgres not available yet")
    import psycopg
    from psycopg import sql

    name = f"test_contract_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=list(BACKENDS))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database of the param's backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"  # tmp_path is absolute: sqlite:////tmp/...
    else:
        yield from _postgres_url(request)


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
