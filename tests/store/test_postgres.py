"""The PostgreSQL store on the real server: migrations, ingest, reads, errors, ``plantpulse db``.

Every test that touches a database runs twice (the ``flavor`` fixture): on the plain layout in
a database without the timescaledb extension, and on the TimescaleDB layout in a database with
it (pg_helpers.FLAVORS). Every module gets fresh databases (CREATE DATABASE test_<random>,
dropped at the end). What the TimescaleDB layout creates, and its jobs, are tested in
test_timescale.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pg_helpers import (
    FLAVORS,
    PLANT_PASSWORD,
    PLANT_ROLE,
    TIMESCALEDB_VERSION,
    Cluster,
    create_database,
    drop_database,
    store_config,
)

from plantpulse.alerts import AlertEvent, JournalEntry
from plantpulse.cli import main
from plantpulse.config import StoreConfig, TimescaleConfig
from plantpulse.errors import StoreError, StoreUnavailable
from plantpulse.samples import Quality, SampleBatch, TagRegistry
from plantpulse.store import migrations, open_store, timescale
from plantpulse.store.base import TagInfo
from plantpulse.store.postgres import PostgresStore, copy_payload, masked_dsn

pytestmark = pytest.mark.postgres

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000


@pytest.fixture(scope="module")
def _databases() -> Iterator[Callable[[str, bool], str]]:
    made: list[tuple[str, str]] = []

    def make(dsn: str, with_timescale: bool) -> str:
        url = create_database(dsn, timescale=with_timescale)
        made.append((dsn, url))
        return url

    yield make
    for dsn, url in made:
        drop_database(dsn, url)


@pytest.fixture(params=list(FLAVORS))
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_db(pg_dsn: str, flavor: str, _databases: Callable[[str, bool], str]) -> Callable[[], str]:
    """A factory of empty databases for the flavor (with the extension for timescale), all
    dropped when the module is done."""
    return lambda: _databases(pg_dsn, flavor == "timescale")


@pytest.fixture
async def store(new_db: Callable[[], str], flavor: str) -> AsyncIterator[PostgresStore]:
    url = new_db()
    s = PostgresStore(url, store_config(url, flavor))
    await s.open()
    assert s.flavor == flavor
    yield s
    await s.close()


async def _schema(url: str) -> list[tuple[Any, ...]]:
    """Columns and indexes of our tables: what a migration path must end up with."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        cols = await cur.fetchall()
        cur = await conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
        return cols + await cur.fetchall()


# -- migrations --------------------------------------------------------------------------------------


async def test_migrate_from_empty(new_db: Callable[[], str], flavor: str) -> None:
    url = new_db()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        assert (await migrations.state(conn)).version == 0
        assert await migrations.migrate(conn, FLAVORS[flavor]) == (0, migrations.LATEST)
        assert await migrations.migrate(conn, FLAVORS[flavor]) == (migrations.LATEST, migrations.LATEST)
        assert (await migrations.state(conn)).flavor == flavor
        cur = await conn.execute("SELECT version, flavor FROM schema_version ORDER BY version")
        assert await cur.fetchall() == [(1, None), (2, flavor), (3, flavor), (4, flavor)]


@pytest.mark.parametrize("start", range(migrations.LATEST))
async def test_migrate_from_each_earlier_version(new_db: Callable[[], str], flavor: str, start: int) -> None:
    fresh, old = new_db(), new_db()
    async with await psycopg.AsyncConnection.connect(fresh, autocommit=True) as conn:
        await migrations.migrate(conn, FLAVORS[flavor])
    async with await psycopg.AsyncConnection.connect(old, autocommit=True) as conn:
        assert await migrations.migrate(conn, FLAVORS[flavor], target=start) == (0, start)
        if start >= 1:  # rows written by an older version must survive and be rolled up
            await conn.execute("INSERT INTO tags (name, asset) VALUES ('a/b/c', 'a/b')")
            await conn.execute(
                "INSERT INTO samples SELECT to_timestamp(1767225600 + g), 1, g,"
                " CASE WHEN g = 5 THEN 2 ELSE 0 END FROM generate_series(0, 119) g"
            )
        assert await migrations.migrate(conn, FLAVORS[flavor]) == (start, migrations.LATEST)
    assert await _schema(old) == await _schema(fresh)
    if 1 <= start < 3:  # raw rows from before version 3 (the rollup's) are backfilled by it
        s = PostgresStore(old, store_config(old, flavor))
        await s.open()
        buckets = await s.series("a/b/c", T0, T0 + 120 * S, 60 * S)
        await s.close()
        assert [(b.count, b.min, b.max, b.last) for b in buckets] == [
            (59, 0.0, 59.0, 59.0),
            (60, 60.0, 119.0, 119.0),
        ]


async def test_unknown_target_is_refused(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        with pytest.raises(ValueError, match="does not exist"):
            await migrations.migrate(conn, TimescaleConfig(), target=migrations.LATEST + 1)


# -- ingest and reads --------------------------------------------------------------------------------


def _stream(reg: TagRegistry, n: int, tags: int = 7, start: int = T0) -> SampleBatch:
    names = [f"line1/weld{k:02d}/current" for k in range(tags)]
    rng = np.random.default_rng(3)
    ts = start + np.arange(n, dtype=np.int64) * 10_000_000  # 10 ms apart
    value = rng.normal(100, 5, n)
    quality = np.where(rng.random(n) < 0.02, Quality.BAD, Quality.GOOD)
    return SampleBatch.make(reg, ts, reg.ids(names)[np.arange(n) % tags], value, quality)


async def test_ingest_is_exactly_once_and_reads_agree(store: PostgresStore) -> None:
    reg = TagRegistry()
    batch = _stream(reg, 50_000)
    assert await store.write_samples(batch.take(slice(0, 30_000)), "b1")
    assert not await store.write_samples(batch.take(slice(0, 30_000)), "b1")  # same id: skipped
    # an overlapping batch under a new id: the already stored (tag, ts) are not doubled
    assert await store.write_samples(batch.take(slice(20_000, 50_000)), "b2")
    async with store._conn() as conn:
        cur = await conn.execute("SELECT count(*), sum(value) FROM samples")
        count, total = await cur.fetchone()  # type: ignore[misc]
    assert count == 50_000
    assert total == pytest.approx(float(batch.value.sum()))

    tag = "line1/weld03/current"
    sel = batch.tag == reg.id(tag)
    ts, val, q = batch.ts[sel], batch.value[sel], batch.quality[sel]
    latest = await store.latest([tag, "no/such/tag"])
    assert list(latest) == [tag] and latest[tag].ts == ts[-1] and latest[tag].value == val[-1]
    assert set(await store.latest()) == {f"line1/weld{k:02d}/current" for k in range(7)}

    for bucket in (60 * S, 120 * S, 7 * S):  # rollup, rollup regrouped, raw
        got = await store.series(tag, T0 + 30 * S, T0 + 400 * S, bucket)
        good = q != Quality.BAD
        starts = ts - ts % bucket
        lo, hi = (T0 + 30 * S) // bucket * bucket, -(-(T0 + 400 * S) // bucket) * bucket
        want = []
        for b0 in np.unique(starts[good & (starts >= lo) & (starts < hi)]):
            m = good & (starts == b0)
            want.append((int(b0), val[m].min(), val[m].max(), val[m].mean(), val[m][-1], int(m.sum())))
        assert [(b.start, b.min, b.max, b.avg, b.last, b.count) for b in got] == [
            (w[0], w[1], w[2], pytest.approx(w[3]), w[4], w[5]) for w in want
        ]


async def test_timestamps_keep_microseconds(store: PostgresStore) -> None:
    reg = TagRegistry()
    ts = T0 + 123_456_789  # sub-microsecond digits are cut (documented)
    await store.write_samples(SampleBatch.make(reg, [ts], reg.ids(["a/b/c"]), [1.5]), "t1")
    assert (await store.latest(["a/b/c"]))["a/b/c"].ts == T0 + 123_456_000


async def test_tags_register_and_list(store: PostgresStore) -> None:
    await store.register_tags([TagInfo("line1/weld01/current", "line1/weld01", "A", "welding current")])
    reg = TagRegistry()
    await store.write_samples(SampleBatch.make(reg, [T0], reg.ids(["line1/weld01/voltage"]), [20.0]), "t")
    assert await store.tags() == [
        TagInfo("line1/weld01/current", "line1/weld01", "A", "welding current"),
        TagInfo("line1/weld01/voltage", "line1/weld01", None, None),
    ]


def test_copy_payload_layout() -> None:
    payload = copy_payload(
        np.array([946_684_800_000_001_000], np.int64),
        np.array([7], np.int32),
        np.array([2.5]),
        np.array([1], np.uint8),
    )
    assert payload[:11] == b"PGCOPY\n\xff\r\n\x00" and payload[-2:] == b"\xff\xff"
    row = payload[19:-2]
    assert len(row) == 40
    assert row[:2] == b"\x00\x04" and row[6:14] == (1).to_bytes(8, "big")  # 1 µs after 2000-01-01


async def test_alerts_journal_ack_and_shelve(store: PostgresStore) -> None:
    raised = AlertEvent("raised", "weld-dev", "line1/weld01/current", "high", T0, T0, 107.5, "deviation")
    other = AlertEvent("raised", "temp", "line2/oven/temp", "low", T0 + 5 * S, T0 + 5 * S, 1.0, "hot")
    cleared = AlertEvent(
        "cleared", "weld-dev", "line1/weld01/current", "high", T0, T0 + 9 * S, 107.5, "deviation"
    )
    shifts = {raised.alert_id: {"operator": ["Wang Fang"], "team_lead": ["Li Lei"]}}
    assert await store.write_alert_events([raised, other], "a1", shifts)
    assert not await store.write_alert_events([raised, other], "a1", shifts)
    assert await store.write_alert_events([cleared], "a2")
    a = await store.alert(raised.alert_id)
    assert a is not None and a.cleared_at == T0 + 9 * S and a.on_shift == shifts[raised.alert_id]
    assert [x.id for x in await store.alerts(active_only=True)] == [other.alert_id]
    assert [x.id for x in await store.alerts(asset="line1")] == [raised.alert_id]
    assert [x.id for x in await store.alerts(asset="line")] == []
    assert [x.id for x in await store.alerts(T0 + S, T0 + 10 * S)] == [other.alert_id]
    assert [x.id for x in await store.alerts(rule="weld-dev")] == [raised.alert_id]

    acked = await store.acknowledge(raised.alert_id, "Wang Fang", T0 + 20 * S, "checked the wire feed")
    assert acked is not None and acked.acked_by == "Wang Fang"
    again = await store.acknowledge(raised.alert_id, "Li Lei", T0 + 30 * S)
    assert again is not None and again.acked_by == "Wang Fang"  # a second ack is a no-op
    assert await store.acknowledge("nope", "x", T0) is None
    shelved = await store.shelve(other.alert_id, "Li Lei", T0 + 40 * S, T0 + 3600 * S, "maintenance")
    assert shelved is not None and shelved.shelved_until == T0 + 3600 * S
    await store.append_journal(
        [JournalEntry(raised.alert_id, T0 + S, "notified", "notifier", {"to": ["Wang"]})] * 2
    )
    journal = await store.journal(raised.alert_id)
    assert [(j.action, j.actor) for j in journal] == [
        ("raised", "engine"),
        ("notified", "notifier"),
        ("cleared", "engine"),
        ("acknowledged", "Wang Fang"),
    ]
    assert journal[3].detail == {"comment": "checked the wire feed", "source": "cli"}


# -- connection handling: an outage is retried, a refusal is not -------------------------------------


async def test_unreachable_server_is_unavailable_without_the_password(port: int) -> None:
    s = PostgresStore(f"postgresql://plant:s3cret@127.0.0.1:{port}/x", StoreConfig(connect_timeout="2s"))
    with pytest.raises(StoreUnavailable) as err:
        await s.open()
    assert f"127.0.0.1:{port}" in str(err.value) and "s3cret" not in str(err.value)
    assert s.dsn == f"postgresql://plant:***@127.0.0.1:{port}/x"


async def test_a_server_that_never_answers_is_unavailable() -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        s = PostgresStore(f"postgresql://plant@127.0.0.1:{port}/x", StoreConfig(connect_timeout="2s"))
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port} is unavailable: .*timeout expired"):
            await s.open()


@pytest.fixture(params=["unknown database", "unknown role", "wrong password"])
def refusal(request: pytest.FixtureRequest, pg_dsn: str) -> tuple[str, str]:
    """A store URL the server refuses for good, and the reason it gives."""
    if request.param == "wrong password":  # the shared server trusts everyone: a private one asks
        cluster: Cluster = request.getfixturevalue("unpreloaded_cluster")
        url = f"postgresql://{PLANT_ROLE}:not-{PLANT_PASSWORD}@127.0.0.1:{cluster.port}/plant"
        return url, f'password authentication failed for user "{PLANT_ROLE}"'
    if request.param == "unknown role":
        return pg_dsn.replace("postgres@", "nobody_here@"), 'role "nobody_here" does not exist'
    return pg_dsn.rsplit("/", 1)[0] + "/no_such_database", 'database "no_such_database" does not exist'


async def test_a_refusal_is_a_permanent_error_in_one_line(
    refusal: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Retrying cannot cure these: a plain StoreError (``run`` stops), not StoreUnavailable."""
    url, reason = refusal
    s = PostgresStore(url, StoreConfig(connect_timeout="2s"))
    with pytest.raises(StoreError) as err:
        await s.open()
    assert type(err.value) is StoreError
    where = url.split("@")[1].split("/")[0]
    assert str(err.value) == f"PostgreSQL at {where} refused the connection: {reason}"
    assert await asyncio.to_thread(main, ["db", "status", "--store", url]) == 1
    assert capsys.readouterr().err == f"error: {err.value}\n"


async def test_a_failing_migration_is_a_permanent_error_in_one_line(
    pg_dsn: str, _databases: Callable[[str, bool], str]
) -> None:
    url = _databases(pg_dsn, False)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE tags (something_else integer)")  # not ours
    with pytest.raises(StoreError) as err:
        await PostgresStore(url, store_config(url, "plain")).open()
    assert type(err.value) is StoreError
    assert str(err.value) == (
        "PostgreSQL at 127.0.0.1:5432: schema migration 1"
        f' ({migrations.MIGRATIONS[0].description}) failed: relation "tags" already exists'
    )


def test_password_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PP_TEST_PW", "hunter2")
    s = PostgresStore("postgresql://plant:${PP_TEST_PW}@db.local:5433/plant")
    assert s.dsn == "postgresql://plant:***@db.local:5433/plant" and "hunter2" in s._conninfo
    monkeypatch.delenv("PP_TEST_PW")
    with pytest.raises(StoreError, match=r"\$\{PP_TEST_PW\}"):
        PostgresStore("postgresql://plant:${PP_TEST_PW}@db.local/plant")
    assert masked_dsn("host=h port=1 user=u password=p dbname=d") == "postgresql://u:***@h:1/d"


async def test_open_store_picks_postgres(new_db: Callable[[], str], flavor: str) -> None:
    url = new_db()
    s = open_store(store_config(url, flavor))
    assert isinstance(s, PostgresStore)
    await s.open()
    assert s.flavor == flavor
    await s.close()


# -- timescaledb detection and mode -------------------------------------------------------------------


async def test_detection(new_db: Callable[[], str], flavor: str) -> None:
    async with await psycopg.AsyncConnection.connect(new_db()) as conn:
        found = await timescale.detect(conn)
    if flavor == "timescale":
        assert found == timescale.Detection(TIMESCALEDB_VERSION, True, True)
        assert found.describe() == f"installed (version {TIMESCALEDB_VERSION})"
    else:
        assert found == timescale.Detection(None, True, True)
        assert found.describe() == "available on the server but not installed"


async def test_timescale_off_keeps_a_database_plain(
    pg_dsn: str, _databases: Callable[[str, bool], str]
) -> None:
    url = _databases(pg_dsn, False)
    s = PostgresStore(url, StoreConfig(url=url, timescale=TimescaleConfig(mode="off")))
    await s.open()
    assert s.flavor == "plain" and s.schema_version == migrations.LATEST
    await s.close()
    async with await psycopg.AsyncConnection.connect(url) as conn:
        assert (await timescale.detect(conn)).installed is None  # available on the server, not used


# -- plantpulse db -----------------------------------------------------------------------------------


def test_db_migrate_and_status_commands(
    new_db: Callable[[], str], flavor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_db()
    if flavor == "plain":  # this server has timescaledb: only mode off keeps a database plain
        plant = tmp_path / "plant.yaml"
        plant.write_text(f'store:\n  url: {url}\n  timescale:\n    mode: "off"\n')
        source = ["-c", str(plant)]
        extension = "available on the server but not installed"
    else:
        source = ["--store", url]
        extension = f"installed (version {TIMESCALEDB_VERSION})"
    assert main(["db", "status", *source]) == 0
    out = capsys.readouterr().out
    assert "schema:      version 0 of 4 (empty" in out and f"timescaledb: {extension}\n" in out
    assert main(["db", "migrate", *source, "--target", "1"]) == 0
    assert "from version 0 to 1" in capsys.readouterr().out
    assert main(["db", "status", *source]) == 0
    assert "version 1 of 4 (3 pending)" in capsys.readouterr().out
    assert main(["db", "migrate", *source]) == 0
    assert f"from version 1 to 4 ({flavor})" in capsys.readouterr().out
    assert main(["db", "status", *source]) == 0
    out = capsys.readouterr().out
    assert "version 4 of 4 (up to date)" in out and f"timescaledb: {extension}\n" in out
    created = out.partition("created:\n")[2]
    if flavor == "plain":
        assert "layout:      plain PostgreSQL" in out
        assert created.splitlines() == [
            "  index samples_tag_ts on samples: unique btree (tag_id, ts)",
            "  index samples_ts_brin on samples: brin (ts)",
            "  index samples_1m_pkey on samples_1m: unique btree (tag_id, bucket)",
            "  table samples_1m: 1-minute rollup maintained by the store at each batch",
        ]
    else:
        assert "layout:      TimescaleDB (hypertable" in out
        assert [line.split(" from ")[0].split(" {")[0] for line in created.splitlines()] == [
            "  hypertable: samples (compression on)",
            "  continuous aggregate: samples_1m on samples",
            "  policy: policy_compression on samples every 12:00:00",
            "  policy: policy_refresh_continuous_aggregate on samples_1m every 00:01:00",
            "  policy: policy_retention on samples every 12:00:00",
        ]


def test_db_status_reports_an_unreachable_server(port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "status", "--store", f"postgresql://u:pw@127.0.0.1:{port}/x"]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is unavailable" in err and "pw@" not in err
