"""``plantpulse db migrate`` and ``plantpulse db status`` for PostgreSQL/TimescaleDB stores.

The SQLite store migrates itself when it opens; these commands are for the shared database,
where an operator wants to migrate before rolling out and to see what is there.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from plantpulse.config import StoreConfig, load_config
from plantpulse.errors import StoreError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``db migrate`` and ``db status`` to ``plantpulse``."""
    db = sub.add_parser("db", help="PostgreSQL/TimescaleDB schema: migrate, status")
    dbsub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    for name, func, text in (
        ("migrate", _migrate, "apply pending schema migrations"),
        ("status", _status, "schema version, timescaledb and what the schema holds"),
    ):
        p = dbsub.add_parser(name, help=text, description=text)
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument(
            "--store", metavar="URL", help="postgresql://user@host:port/db (password: ${VAR} or PG*)"
        )
        src.add_argument(
            "-c", "--config", metavar="PLANT_YAML", help="take store.url and settings from plant.yaml"
        )
        if name == "migrate":
            p.add_argument(
                "--target", type=int, default=None, help="migrate up to this version (default: latest)"
            )
        p.set_defaults(func=func)


def _store_config(args: argparse.Namespace) -> StoreConfig:
    if args.config:
        return load_config(args.config).plant.store
    return StoreConfig(url=args.store)


def _run(args: argparse.Namespace, work: str) -> int:
    cfg = _store_config(args)
    if cfg.url.partition(":")[0].lower() not in {"postgresql", "postgres"}:
        print(
            "plantpulse db works on postgresql:// stores; the SQLite store migrates itself", file=sys.stderr
        )
        return 2
    try:
        lines = asyncio.run(_migrate_async(cfg, args.target) if work == "migrate" else _status_async(cfg))
    except (StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    return _run(args, "migrate")


def _status(args: argparse.Namespace) -> int:
    return _run(args, "status")


async def _migrate_async(cfg: StoreConfig, target: int | None) -> list[str]:
    from plantpulse.store import migrations
    from plantpulse.store.postgres import PostgresStore

    store = PostgresStore(cfg.url, cfg)
    async with store.admin_connection() as conn:
        before, after = await migrations.migrate(conn, cfg.timescale, target)
        st = await migrations.state(conn)
    if before == after:
        return [f"{store.dsn}: schema already at version {after} ({st.flavor or 'no layout yet'})"]
    return [f"{store.dsn}: schema migrated from version {before} to {after} ({st.flavor})"]


async def _status_async(cfg: StoreConfig) -> list[str]:
    from plantpulse.store import migrations, timescale
    from plantpulse.store.postgres import PostgresStore

    store = PostgresStore(cfg.url, cfg)
    async with store.admin_connection() as conn:
        st = await migrations.state(conn)
        found = await timescale.detect(conn)
        if st.version == 0:
            schema = f"version 0 of {migrations.LATEST} (empty: run plantpulse db migrate)"
        elif st.version < migrations.LATEST:
            schema = f"version {st.version} of {migrations.LATEST} ({migrations.LATEST - st.version} pending)"
        else:
            schema = f"version {st.version} of {migrations.LATEST} (up to date)"
        lines = [
            f"store:       {store.dsn}",
            f"schema:      {schema}",
            f"timescaledb: {found.describe()}",
            f"layout:      {_LAYOUTS.get(st.flavor or '', 'not decided yet (decided by migration 2)')}",
        ]
        created: list[str] = []
        if st.flavor == "timescale":
            created = await timescale.created_objects(conn)
        elif st.version:
            cur = await conn.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename IN ('samples', 'samples_1m')"
                " ORDER BY tablename, indexname"
            )
            created = [
                f"index {name} on {table}: {_index_kind(d)}" for table, name, d in await cur.fetchall()
            ]
            cur = await conn.execute("SELECT to_regclass('samples_1m') IS NOT NULL")
            row = await cur.fetchone()
            if row and row[0]:
                created.append("table samples_1m: 1-minute rollup maintained by the store at each batch")
    return lines + ["created:"] + [f"  {c}" for c in created or ["nothing yet"]]


_LAYOUTS = {
    "plain": "plain PostgreSQL (BRIN on ts, btree on (tag_id, ts), samples_1m kept by the store)",
    "timescale": "TimescaleDB (hypertable, compression, retention, continuous aggregate samples_1m)",
}


def _index_kind(definition: str) -> str:
    using = definition.partition(" USING ")[2]
    return ("unique " if "UNIQUE" in definition else "") + using
