"""PostgreSQL helpers for the store tests: throwaway databases and throwaway clusters."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

PG_BIN = Path(os.environ.get("PLANTPULSE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """Like tests/conftest.free_port, for module-scoped fixtures (conftest is not importable by name)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_database(dsn: str, prefix: str = "test") -> str:
    """CREATE DATABASE <prefix>_<random> next to ``dsn``'s database; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


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
            reason = f"PostgreSQL binaries not found in {PG_BIN} (set PLANTPULSE_PG_BIN)"
            if os.environ.get("PLANTPULSE_REQUIRE_SERVICES") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
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

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
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
