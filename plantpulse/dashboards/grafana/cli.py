"""``plantpulse dashboards generate | push``: Grafana dashboards from ``plant.yaml``.

``generate`` writes dashboard JSON and file-provisioning YAML (``provision``); ``push`` upserts
the same through Grafana's HTTP API (``push``). Both validate the plant and its rule files
first; expected failures (unreachable store or Grafana, refused token) exit 1 with one line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from plantpulse import __version__
from plantpulse.config import LoadedConfig, PlantConfig, load_config
from plantpulse.dashboards.grafana.config import Flavor, GrafanaConfig
from plantpulse.errors import PlantPulseError


class CommandError(PlantPulseError):
    """An expected failure of ``dashboards``: printed as one line, exit 1."""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``dashboards generate`` and ``dashboards push`` to ``plantpulse``."""
    dash = sub.add_parser("dashboards", help="Grafana dashboards generated from plant.yaml: generate, push")
    dsub = dash.add_subparsers(dest="dashboards_command", metavar="COMMAND", required=True)

    gen = dsub.add_parser(
        "generate",
        help="write dashboard JSON and Grafana provisioning files",
        description="Write Grafana dashboards (JSON) and file-provisioning YAML for the plant.",
    )
    gen.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    gen.add_argument("--out", type=Path, required=True, help="directory to write (created if missing)")
    _flavor_arg(gen)
    gen.set_defaults(func=_generate)

    push = dsub.add_parser(
        "push",
        help="upsert folder, data source and dashboards through Grafana's HTTP API",
        description="Create or update the folder, data source and dashboards in Grafana, by uid.",
    )
    push.add_argument("-c", "--config", type=Path, required=True, help="plant.yaml")
    push.add_argument("--grafana", metavar="URL", help="Grafana's root URL (default: grafana.url)")
    push.add_argument(
        "--token-env", metavar="VAR", help="environment variable holding the token (default: grafana.token)"
    )
    push.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    push.add_argument("--message", help="version message of the dashboards (default: who generated them)")
    _flavor_arg(push)
    push.set_defaults(func=_push)


def _flavor_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flavor",
        choices=("auto", "timescale", "plain"),
        default=None,
        help="SQL for TimescaleDB (time_bucket) or plain PostgreSQL (date_bin); default: grafana.flavor",
    )


def _generate(args: argparse.Namespace) -> int:
    from plantpulse.dashboards.grafana.provision import connection, write_all

    try:
        loaded, cfg, flavor, why, dashboards = _prepare(args)
        conn = connection(cfg, loaded.plant.store.url)
        paths = write_all(
            args.out, dashboards=dashboards, cfg=cfg, conn=conn, flavor=flavor, source=loaded.path.name
        )
    except (CommandError, OSError) as e:
        print(f"plantpulse dashboards: {e}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"wrote {path}")
    where = f"{conn.user}@{conn.url}/{conn.database}"
    print(f"{len(dashboards)} dashboards for {flavor} ({why}); data source {where}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from plantpulse.dashboards.grafana.provision import connection, datasource_spec
    from plantpulse.dashboards.grafana.push import Api, Desired, GrafanaError, push
    from plantpulse.dashboards.grafana.sdk import to_json

    try:
        loaded, cfg, flavor, _, dashboards = _prepare(args)
        url = _url(args.grafana, cfg)
        token = _token(args.token_env, cfg)
        password = os.environ.get(cfg.datasource.password_env)
        desired = Desired(
            folder_uid=cfg.folder.uid,
            folder_title=cfg.folder.title,
            datasource=datasource_spec(cfg, connection(cfg, loaded.plant.store.url), flavor),
            password=password,
            dashboards=[to_json(d) for d in dashboards],
        )
        message = args.message or f"plantpulse {__version__}: generated from {loaded.path.name}"
        api = Api(url, token, cfg.timeout / 1e9)
        changes = push(api, desired, dry_run=args.dry_run, message=message)
    except (CommandError, GrafanaError) as e:
        text = str(e)
        print(text if text.startswith("grafana:") else f"plantpulse dashboards: {text}", file=sys.stderr)
        return 1
    for change in changes:
        print(change.line())
    counts = {s: sum(c.status == s for c in changes) for s in ("created", "updated", "unchanged")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if args.dry_run:
        print(f"dry run against {api.url}: would leave {summary}; nothing written")
    else:
        print(f"pushed to {api.url}: {summary}")
    if password is None and any(c.kind == "datasource" and c.status != "unchanged" for c in changes):
        print(f"note: ${cfg.datasource.password_env} is not set: the data source has no password from us")
    return 0


def _url(given: str | None, cfg: GrafanaConfig) -> str:
    url = given or cfg.url
    if url is None:
        raise CommandError("no Grafana URL: pass --grafana URL or set grafana.url in plant.yaml")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise CommandError(f"--grafana {url!r} is not an http(s) URL such as http://grafana:3000")
    return url


def _token(token_env: str | None, cfg: GrafanaConfig) -> str:
    if token_env is not None:
        value = os.environ.get(token_env)
        if not value:
            raise CommandError(f"--token-env {token_env}: that environment variable is not set")
        return value
    if cfg.token is not None and cfg.token.get_secret_value():
        return cfg.token.get_secret_value()
    raise CommandError(
        "no Grafana token: set grafana.token: ${GRAFANA_TOKEN} in plant.yaml or pass --token-env VAR"
    )


def _prepare(args: argparse.Namespace) -> tuple[LoadedConfig, GrafanaConfig, Flavor, str, list[Any]]:
    from plantpulse.dashboards.grafana.build import Settings, build_dashboards
    from plantpulse.dashboards.grafana.plant import plant_view
    from plantpulse.rules.loader import load_rule_files

    loaded = load_config(args.config)  # ConfigError: FILE:LINE:COL lines from cli.main
    plant = loaded.plant
    cfg = plant.grafana or GrafanaConfig()
    if not _is_postgres(plant.store.url):
        raise CommandError(
            "Grafana reads the store through its PostgreSQL data source: store.url must be postgresql://..."
        )
    flavor, why = resolve_flavor(args.flavor or cfg.flavor, plant)
    rules = load_rule_files(loaded.rule_files)
    view = plant_view(plant, rules, cfg.operator_role)
    settings = Settings(datasource_uid=cfg.datasource.uid, flavor=flavor, uid_prefix=cfg.uid_prefix)
    return loaded, cfg, flavor, why, build_dashboards(view, settings)


def _is_postgres(url: str) -> bool:
    return url.partition("://")[0].lower() in ("postgresql", "postgres")


def resolve_flavor(requested: str, plant: PlantConfig) -> tuple[Flavor, str]:
    """The SQL flavor and why: as asked, plain when the store never uses timescaledb, else the
    layout the store recorded when it migrated (``plantpulse db status`` shows it)."""
    if requested == "timescale":
        return "timescale", "as asked"
    if requested == "plain":
        return "plain", "as asked"
    if plant.store.timescale.mode == "off":
        return "plain", "store.timescale.mode is off"
    return asyncio.run(_recorded_flavor(plant)), "the layout the store recorded"


async def _recorded_flavor(plant: PlantConfig) -> Flavor:
    from plantpulse.errors import StoreError
    from plantpulse.store import migrations
    from plantpulse.store.postgres import PostgresStore

    store = PostgresStore(plant.store.url, plant.store)
    try:
        async with store.admin_connection() as conn:
            state = await migrations.state(conn)
    except StoreError as e:
        raise CommandError(
            f"cannot ask the store which layout it uses ({e}); pass --flavor timescale|plain"
        ) from None
    if state.flavor is None:
        raise CommandError(
            f"the store at {store.dsn} is not migrated yet, so its layout is unknown:"
            " run `plantpulse db migrate -c plant.yaml` or pass --flavor timescale|plain"
        )
    return state.flavor
