"""The SQLite file itself: private to its owner, and opened patiently when someone holds it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store.sqlite import SQLiteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what most systems run with: files come out world-readable
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
async def test_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    db = tmp_path / "plant.db"
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    reg = TagRegistry(["a/b/c"])
    await store.write_samples(SampleBatch.make(reg, [1, 2], [0, 0], [1.0, 2.0]), "b1")
    files = [db, db.with_name("plant.db-wal"), db.with_name("plant.db-shm")]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    await store.close()
    assert modes == {p.name: 0o600 for p in files}


@pytest.mark.usefixtures("open_umask")
async def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    store = SQLiteStore(f"sqlite:///{db}")
    await store.open()
    await store.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_open_waits_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    """Longer than the 5 s busy timeout: the previous process of a quick restart, a long
    ``plantpulse ack``... Opening must wait, not fail with "database is locked"."""
    db = tmp_path / "plant.db"
    first = SQLiteStore(f"sqlite:///{db}")
    await first.open()
    await first.close()
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(20)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        store = SQLiteStore(f"sqlite:///{db}")
        opening = asyncio.create_task(store.open())
        done, _ = await asyncio.wait([opening], timeout=6)  # past the busy timeout
        assert not done, opening.exception() if done else None
        release.set()
        await asyncio.wait_for(opening, 10)
        await store.close()
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
