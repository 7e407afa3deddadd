"""One line per expected failure (issue 12, item 4): what, where and what to do, exit 1, and a
traceback only with ``-v``. Each case runs the command as a user would (a subprocess) against
the real obstacle: a port somebody listens on, a second plantpulse holding the spool, a broker
that is not there, a folder or file this user may not write (as ``nobody`` when the tests run
as root, who may write anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from plantpulse.httpserve import free_port

pytestmark = pytest.mark.slow

IN_USE = "the port is in use by another program"
BOARD = "for the board, API and acknowledge links"


def plantpulse(*argv: str, cwd: Path, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``plantpulse argv`` in ``cwd``; as ``user`` through setpriv (which resolves the
    interpreter, under /root here, before it drops root's rights)."""
    command = [sys.executable, "-m", "plantpulse", *argv]
    if user is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) runs a command as another user"
        account = pwd.getpwnam(user)
        ids = [f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]
        command = [setpriv, *ids, *command]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit 1, the error as the last line of stderr, no traceback."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == expected


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def plant(folder: Path, **extra: object) -> Path:
    """A plant.yaml whose only source is a broker nobody runs (the runner just retries)."""
    doc = {
        "sources": [
            {"kind": "mqtt", "name": "m", "host": "127.0.0.1", "port": free_port(),
             "subscriptions": [{"topic": "x/+", "tag": "a/{1}", "value": "$.v"}]},
        ],
        "store": {"url": "sqlite:///plant.db", "spool": {"lock_wait": "0s"}},
        **extra,
    }  # fmt: skip
    path = folder / "plant.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def scenario(folder: Path, protocol: str) -> Path:
    path = folder / f"{protocol}.yaml"
    path.write_text(
        "name: s\nasset: line1\nwelders: 1\ntick: 100ms\nduration: 1m\n"
        f"protocols: {{{protocol}: [weld01]}}\n",
        encoding="utf-8",
    )
    return path


# -- ports ------------------------------------------------------------------------------------


def test_run_board_port_in_use(tmp_path: Path) -> None:
    with listening() as port:
        plant(tmp_path, api={"listen": f"127.0.0.1:{port}", "token": "t" * 24})
        done = plantpulse("run", "-c", "plant.yaml", "--duration", "10", cwd=tmp_path)
    one_line(
        done,
        f"plantpulse: cannot listen on 127.0.0.1:{port} {BOARD}: {IN_USE}; "
        "stop the program on that port, or choose another with api.listen in plant.yaml",
    )


def test_demo_board_port_in_use_and_the_traceback_with_v(tmp_path: Path) -> None:
    with listening() as port:
        done = plantpulse("demo", "--listen", f"127.0.0.1:{port}", "--duration", "5", cwd=tmp_path)
        verbose = plantpulse("-v", "demo", "--listen", f"127.0.0.1:{port}", "--duration", "5", cwd=tmp_path)
    expected = (
        f"plantpulse: cannot listen on 127.0.0.1:{port} {BOARD}: {IN_USE}; "
        "stop the program on that port, or choose another with --listen HOST:PORT"
    )
    one_line(done, expected)
    assert done.stderr.count("\n") == 1  # nothing started, nothing else said
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == expected


AGAIN = "stop the program on that port, or choose another with"
MQTT_HINT = (
    "if that is an MQTT broker, publish to it with --mqtt-broker 127.0.0.1:{port}; "
    "or choose another port with --mqtt-port (0: any free port)"
)


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("mqtt", "for the embedded MQTT broker: {in_use}; " + MQTT_HINT),
        ("opcua", "for the OPC UA server: {in_use}; " + AGAIN + " --opcua-port (0: any free port)"),
        ("modbus", "for the Modbus TCP server: {in_use}; " + AGAIN + " --modbus-port (0: any free port)"),
    ],
)
def test_simulate_port_in_use(tmp_path: Path, protocol: str, expected: str) -> None:
    path = scenario(tmp_path, protocol)
    with listening() as port:
        done = plantpulse(
            "simulate",
            "--scenario",
            str(path),
            f"--{protocol}-port",
            str(port),
            "--duration",
            "5",
            cwd=tmp_path,
        )
    one_line(
        done, f"plantpulse: cannot listen on 127.0.0.1:{port} " + expected.format(in_use=IN_USE, port=port)
    )


def test_simulate_replay_port_in_use(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("ts,tag,value\n2026-01-01T00:00:00Z,a/b,1\n", encoding="utf-8")
    with listening() as port:
        done = plantpulse(
            "simulate", "--replay", "r.csv", "--protocol", "opcua", "--opcua-port", str(port), cwd=tmp_path
        )
    one_line(
        done,
        f"plantpulse: cannot listen on 127.0.0.1:{port} for the OPC UA server: {IN_USE}; "
        + AGAIN
        + " --opcua-port (0: any free port)",
    )


def test_simulate_where_a_broker_already_runs(tmp_path: Path, mqtt_broker: tuple[str, int]) -> None:
    """The first-device guide's ``simulate --scenario`` on a machine with Mosquitto on 1883."""
    host, port = mqtt_broker
    done = plantpulse(
        "simulate", "--scenario", str(scenario(tmp_path, "mqtt")), "--duration", "5", cwd=tmp_path
    )
    one_line(
        done,
        f"plantpulse: cannot listen on {host}:{port} for the embedded MQTT broker: {IN_USE}; "
        + MQTT_HINT.format(port=port),
    )


# -- a second plantpulse ------------------------------------------------------------------------


async def _second_while_first_runs(
    first: list[str], second: list[str], cwd: Path, ready: str
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "plantpulse", *first, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stream = proc.stderr if ready.startswith("running:") else proc.stdout
    assert stream is not None
    try:
        async with asyncio.timeout(30):
            while ready not in (line := (await stream.readline()).decode()):
                assert line, f"{first} ended before {ready!r}"
        done = await asyncio.to_thread(plantpulse, *second, cwd=cwd)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        return proc.pid, done.stderr.splitlines()[-1]
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize("same", ["config", "store"])
async def test_second_run_on_the_same_spool(tmp_path: Path, same: str) -> None:
    plant(tmp_path)
    other = tmp_path / "other.yaml"
    shutil.copy(tmp_path / "plant.yaml", other)  # another config, the same store
    config = "plant.yaml" if same == "config" else other.name
    pid, line = await _second_while_first_runs(
        ["run", "-c", "plant.yaml"], ["run", "-c", config, "--duration", "10"], tmp_path, "running:"
    )
    assert line == (
        f"plantpulse: spool plant.db.spool is in use by another plantpulse (pid {pid}); "
        "stop that one first, or give this one another store"
    )


async def test_second_demo_in_the_same_folder(tmp_path: Path) -> None:
    pid, line = await _second_while_first_runs(
        ["demo", "--listen", f"127.0.0.1:{free_port()}", "--lang", "en"],
        ["demo", "--listen", f"127.0.0.1:{free_port()}", "--duration", "5"],
        tmp_path,
        "demo: live board on",
    )
    assert line == (
        f"plantpulse: spool plantpulse-demo.db.spool is in use by another plantpulse (pid {pid}); "
        "stop that one first, or give this one another store"
    )


# -- a broker that is not there -----------------------------------------------------------------


def test_broker_unreachable_at_start(tmp_path: Path) -> None:
    path = scenario(tmp_path, "mqtt")
    port = free_port()  # nobody listens
    done = plantpulse(
        "simulate",
        "--scenario",
        str(path),
        "--mqtt-broker",
        f"127.0.0.1:{port}",
        "--duration",
        "5",
        cwd=tmp_path,
    )
    one_line(
        done,
        f"plantpulse: mqtt://127.0.0.1:{port}: unavailable: cannot connect: connection refused; "
        "start that broker, or leave out --mqtt-broker to use an embedded one",
    )


# -- permission denied --------------------------------------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's private tmp (0700), so that ``nobody`` can enter it."""
    path = Path(tempfile.mkdtemp(prefix="plantpulse-perm-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in (path, *path.rglob("*")):
            with contextlib.suppress(OSError):
                p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(path)


def _as_other_user() -> tuple[str | None, str]:
    """(user to run as, who that is): ``nobody`` when we are root, who may write anything."""
    if os.geteuid() == 0:
        return "nobody", "nobody"
    return None, pwd.getpwuid(os.geteuid()).pw_name


def _owned(path: Path) -> str:
    st = path.stat()
    kind = "folder" if path.is_dir() else "file"
    return f"{kind} {path} owned by {pwd.getpwuid(st.st_uid).pw_name}, mode {st.st_mode & 0o777:04o}"


def test_state_dir_permission_denied(shared_dir: Path) -> None:
    plant(shared_dir)
    as_user, user = _as_other_user()
    if as_user is None:
        shared_dir.chmod(0o555)  # nobody may create the spool directory in it
    done = plantpulse("run", "-c", "plant.yaml", "--duration", "10", cwd=shared_dir, user=as_user)
    one_line(
        done,
        "plantpulse: cannot write the spool and state directory plant.db.spool: permission denied "
        f"({_owned(shared_dir)}); let user {user} write there, or choose another location",
    )


def test_store_file_permission_denied(shared_dir: Path) -> None:
    plant(shared_dir)
    db = shared_dir / "plant.db"
    db.touch()
    as_user, user = _as_other_user()
    if as_user is None:
        db.chmod(0o444)
    else:
        shared_dir.chmod(0o777)  # the spool directory can be made; the database file is root's
    done = plantpulse("run", "-c", "plant.yaml", "--duration", "10", cwd=shared_dir, user=as_user)
    one_line(
        done,
        "plantpulse: store: cannot write the SQLite store plant.db: permission denied "
        f"({_owned(db)}); let user {user} write there, or choose another location",
    )
