"""PostgreSQL helpers for the store tests: throwaway databases and throwaway clusters."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from plantpulse.config import StoreConfig, TimescaleConfig

PG_BIN = Path(os.environ.get("PLANTPULSE_PG_BIN", "/usr/lib/postgresql/15/bin"))

# The two layouts every PostgreSQL test runs on. Retention is off wherever it is not under test:
# the tests' fixed dates would otherwise age out (and be dropped) while they run.
FLAVORS: dict[str, TimescaleConfig] = {
    "plain": TimescaleConfig(mode="off"),  # a database without the extension
    "timescale": TimescaleConfig(retain_for=None),  # a database with CREATE EXTENSION timescaledb
}


TIMESCALEDB_VERSION = "2.28.3"  # what ../shared/timescaledb/install.sh installs, what we test

# The role of the private cluster in conftest.unpreloaded_cluster: no superuser, needs its password.
PLANT_ROLE, PLANT_PASSWORD = "plant", "plant-pw"


def store_config(url: str, flavor: str) -> StoreConfig:
    return StoreConfig(url=url, timescale=FLAVORS[flavor])


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, or fail under PLANTPULSE_REQUIRE_SERVICES=1 (.ci/run): CI never passes by skipping."""
    if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} and PLANTPULSE_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(reason)


def free_port() -> int:
    """Like tests/conftest.free_port, for module-scoped fixtures (conftest is not importable by name)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(dsn: str, prefix: str = "test", *, timescale: bool = False) -> str:
    """CREATE DATABASE <prefix>_<random> next to ``dsn``'s database; returns its URL. With
    ``timescale``, CREATE EXTENSION timescaledb in it too (../shared/timescaledb/install.sh)."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    url = urlunsplit(urlsplit(dsn)._replace(path="/" + name))
    if timescale:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION timescaledb")
        except psycopg.Error as e:
            drop_database(dsn, url)
            why = str(e).strip().splitlines()[0]
            skip_or_fail(f"TimescaleDB is not usable here ({why}): run ../shared/timescaledb/install.sh")
    return url


def drop_database(dsn: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
        )


class Cluster:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free port in a temporary directory.

    initdb refuses to run as root, so as root every command runs as the ``postgres`` OS user
    through ``runuser`` and the directory is handed to that user.
    """

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.data = base / "data"
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._prefix: list[str] = []

    def _cmd(self, *args: str) -> list[str]:
        return [*self._prefix, *args]

    def _run(self, *args: str) -> None:
        r = subprocess.run(self._cmd(*args), check=False, capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({r.returncode}): {r.stderr or r.stdout}")

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            skip_or_fail(f"PostgreSQL binaries not found in {PG_BIN} (set PLANTPULSE_PG_BIN)")
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.skip("running as root and runuser is missing: initdb cannot run as root")
            self._prefix = [runuser, "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres", "postgres")
            self.base.chmod(0o700)
        subprocess.run(
            self._cmd(
                str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
            ),
            check=True,
            capture_output=True,
        )

    def require_password(self, role: str) -> None:
        """Before start: ``role`` must log in with its password over TCP (everyone else: trust)."""
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())

    def start(self, *settings: str) -> None:
        """Start the server; ``settings`` are extra ``name=value`` server settings."""
        extra = "".join(f" -c {s}" for s in settings)
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off{extra}"
        subprocess.run(
            self._cmd(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                opts,
                "-l",
                str(self.base / "log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        r = subprocess.run(
            self._cmd(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"),
            check=False,
            capture_output=True,
        )
        return r.returncode == 0


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A Cluster, initialised but not started, on a free port in a new temporary directory;
    stopped and removed afterwards. Not under pytest's tmp dir: that is private to root, and
    the server runs as postgres."""
    base = Path(tempfile.mkdtemp(prefix="plantpulse-pg-"))
    c = Cluster(base, free_port())
    try:
        c.init()
        yield c
    finally:
        if c.running():
            c.stop()
        shutil.rmtree(base, ignore_errors=True)
