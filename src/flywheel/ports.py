"""Is the address a server command would listen on free? Asked before the server starts.

A busy port otherwise surfaces deep inside uvicorn, BentoML or MLflow's server as a long
traceback ("Address already in use"), after seconds of start-up; a bind test on the very
host and port answers in a millisecond with one line that says what to do.
"""

from __future__ import annotations

import errno
import socket

from flywheel.errors import PortInUse


def require_free_port(host: str, port: int, command: str) -> None:
    """Raise PortInUse naming `host:port` and the fix unless this process could bind it now.

    SO_REUSEADDR as servers set it, so a port left in TIME_WAIT by a stopped server is free.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise PortInUse(f"{command}: cannot listen on {host!r}: {exc.strerror}; pass --host "
                        "with an address of this machine (e.g. 127.0.0.1)") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise PortInUse(_why(exc, host, port, command)) from None


def _why(exc: OSError, host: str, port: int, command: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"{command}: port {port} on {host} is already in use (another server is "
                f"listening there; `ss -ltnp 'sport = :{port}'` shows which): stop it or "
                "pass --port with a free one")
    if exc.errno == errno.EACCES:
        return (f"{command}: no permission to listen on {host}:{port} (ports below 1024 need "
                "privileges): pass --port 1024 or above")
    return f"{command}: cannot listen on {host}:{port}: {exc.strerror}; pass another --host"
