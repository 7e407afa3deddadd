"""Local TCP ports for our servers (board/API, simulators, embedded broker).

``bind`` binds in our own code rather than inside a server library, so that a port in use,
a privileged port or a foreign address becomes one ``ListenError`` naming the service, where
the libraries would exit (uvicorn), log a traceback (asyncua, amqtt) or say only "Could not
start listen" (pymodbus).
"""

from __future__ import annotations

import socket

from plantpulse.errors import ListenError, Service

__all__ = ["bind", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind(host: str, port: int, service: Service) -> socket.socket:
    """A bound TCP socket on ``host:port`` (0: a free port), not yet listening; ListenError
    when the system refuses the address. SO_REUSEADDR as asyncio and uvicorn set it, so a
    port in TIME_WAIT after our own previous run is not "in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ListenError.from_exception(e, service, host, port) or e from None
    return sock
