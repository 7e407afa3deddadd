"""What only the SQLite store promises: URLs, WAL, versioned migrations, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from plantpulse.errors import StoreError
from plantpulse.samples import SampleBatch, TagRegistry
from plantpulse.store import open_store
from plantpulse.store import sqlite as sqlite_mod
from plantpulse.store.sqlite import SQLiteStore, parse_sqlite_url

TABLES = {"schema_version", "tags", "samples", "ingest_batches", "samples_1m", "alerts", "alert_journal"}
T0 = 1_699_999_980 * 1_000_000_000


def schema(path: Path) -> tuple[list[tuple[str, str]], list[int]]:
    """Every object's DDL and the schema_version rows, read through a separate connection."""
    with sqlite3.connect(path) as conn:
        ddl = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    conn.close()
    return ddl, versions


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/plant.db", "data/plant.db"),
        ("sqlite:////var/lib/plantpulse/plant.db", "/var/lib/plantpulse/plant.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLite:///%E7%BA%BF%E4%BD%93.db", "线体.db"),
    ],
)
def test_url(url: str, path: str) -> None:
    assert parse_sqlite_url(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/x.db", "sqlite:///", "sqlite:x.db", "postgresql:///x"])
def test_bad_url(url: str) -> None:
    with pytest.raises(StoreError, match="SQLite URL"):
        SQLiteStore(url)


def test_open_store_picks_sqlite() -> None:
    assert isinstance(open_store("sqlite:///:memory:"), SQLiteStore)


async def test_relative_url_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLiteStore("sqlite:///var/plant.db")  # the parent directory is created
    await store.open()
    await store.close()
    assert (tmp_path / "var" / "plant.db").is_file()


async def test_memory_store_works() -> None:
    store = SQLiteStore("sqlite:///:memory:")
    await store.open()
    try:
        reg = TagRegistry()
        b = SampleBatch.make(reg, [T0, T0 + 1], [reg.id("a/b")] * 2, [1.0, 2.0])
        assert await store.write_samples(b, "b1")
        assert (await store.latest())["a/b"].value == 2.0
    finally:
        await store.close()


async def test_wal_and_synchronous_normal(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.open()
    try:
        pragmas = await store._run(
            lambda c: (
                c.execute("PRAGMA journal_mode").fetchone()[0],
                c.execute("PRAGMA synchronous").fetchone()[0],
            ),
            "test",
        )
        assert pragmas == ("wal", 1)  # 1 == NORMAL
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:  # WAL is persistent in the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_migrates_an_empty_file_and_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()  # zero bytes: what a fresh volume or a pre-created file looks like
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()
    first = schema(path)
    assert {name for name, _ in first[0]} >= TABLES
    assert first[1] == list(range(1, len(sqlite_mod.MIGRATIONS) + 1))

    for _ in range(2):
        store = SQLiteStore(f"sqlite:///{path}")
        await store.open()
        await store.close()
        assert schema(path) == first


async def test_pending_migrations_apply_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    store = SQLiteStore(url)
    await store.open()
    reg = TagRegistry()
    await store.write_samples(SampleBatch.make(reg, [T0], [reg.id("a/b")], [1.0]), "b1")
    await store.close()

    n = len(sqlite_mod.MIGRATIONS)
    step = ["CREATE TABLE probe (x INTEGER)", "INSERT INTO probe VALUES (42)"]
    monkeypatch.setattr(sqlite_mod, "MIGRATIONS", [*sqlite_mod.MIGRATIONS, step])
    for _ in range(2):  # applied on the first open only
        store = SQLiteStore(url)
        await store.open()
        await store.close()
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT x FROM probe").fetchall() == [(42,)]
        conn.close()
        assert schema(path)[1] == list(range(1, n + 2))
    store = SQLiteStore(url)
    await store.open()
    try:
        assert (await store.latest())["a/b"].value == 1.0  # data kept across the migration
    finally:
        await store.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999)")
    conn.close()
    store = SQLiteStore(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        await store.open()
    await store.close()  # harmless on a store that never opened


async def test_calls_before_open_raise(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(StoreError, match="not open"):
        await store.latest()


async def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    """Rows, rollup and batch id commit together: if any part fails, a retry under the same
    batch id writes the batch in full."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'x.db'}")
    await store.open()
    try:
        reg = TagRegistry()
        b = SampleBatch.make(reg, [T0, T0 + 1_000_000], [reg.id("a/b")] * 2, [1.0, 2.0])
        # Make the last statement of the transaction (the batch id insert) fail ...
        trigger = (
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON ingest_batches BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        await store._run(lambda c: c.execute(trigger), "test")
        with pytest.raises(StoreError, match="boom"):
            await store.write_samples(b, "b1")
        await store._run(lambda c: c.execute("DROP TRIGGER boom"), "test")
        # ... then nothing of it is stored, and the retry goes through once.
        assert await store.latest() == {}
        assert await store.series("a/b", T0, T0 + 60_000_000_000, 60_000_000_000) == []
        assert await store.write_samples(b, "b1") is True
        assert await store.write_samples(b, "b1") is False
        (bucket,) = await store.series("a/b", T0, T0 + 60_000_000_000, 60_000_000_000)
        assert bucket.count == 2
    finally:
        await store.close()


async def test_rollup_is_vectorised_and_batch_sized(tmp_path: Path) -> None:
    """One rollup row per (tag, minute) after many batches of a few tags (not one per sample)."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'x.db'}")
    await store.open()
    try:
        reg = TagRegistry()
        rng = np.random.default_rng(0)
        for i in range(5):
            ts = T0 + np.sort(rng.choice(600_000, 2000, replace=False)).astype(np.int64) * 1_000_000
            tags = rng.integers(0, 3, 2000)
            b = SampleBatch.make(reg, ts, [reg.id(f"l/m/t{k}") for k in tags], rng.normal(size=2000))
            assert await store.write_samples(b, f"b{i}")
        rows = await store._run(lambda c: c.execute("SELECT count(*) FROM samples_1m").fetchone()[0], "test")
        assert rows == 3 * 10
    finally:
        await store.close()
