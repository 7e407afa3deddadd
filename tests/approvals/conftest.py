"""Fixtures of the approvals tests: a fresh database on each backend (SQLite file, PostgreSQL),
its change log and its store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from plantpulse.approvals.changelog import ChangeLog, open_change_log
from plantpulse.config import StoreConfig, TimescaleConfig
from plantpulse.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreConfig]:
    """A ``store:`` section naming a fresh, empty database of the param's backend."""
    if request.param == "sqlite":
        yield StoreConfig(url=f"sqlite:///{tmp_path / 'plant.db'}")
        return
    from tests.store.pg_helpers import create_database, drop_database

    dsn: str = request.getfixturevalue("pg_dsn")
    url = create_database(dsn, "test_approvals")
    try:
        yield StoreConfig(url=url, timescale=TimescaleConfig(mode="off"))
    finally:
        drop_database(dsn, url)


@pytest.fixture
async def change_log(store_config: StoreConfig) -> AsyncIterator[ChangeLog]:
    log = open_change_log(store_config)
    await log.open()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
async def store(store_config: StoreConfig) -> AsyncIterator[Store]:
    s = open_store(store_config)
    await s.open()
    yield s
    await s.close()
