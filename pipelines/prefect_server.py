"""A temporary Prefect API for one `flywheel run`, started before the run imports anything.

With no API configured, Prefect starts the same temporary server itself, but only at the
first flow call: after the CLI has imported Prefect, inferred a spec and loaded the flow, so
the server's own start-up (its imports, and the database migrations on a fresh clone) is all
on the critical path. Starting it first lets that overlap with the run's imports. It is the
server Prefect would have started (same app, UI off, bound to 127.0.0.1), it holds the run
and its task runs like any other, and it stops when the run ends. A project's first run gets
its database from the migrated schema rather than by migrating (`prefect_db`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import FlywheelError

log = logging.getLogger(__name__)

DEFAULT_STARTUP_TIMEOUT_S = 90.0


@dataclass
class TemporaryServer:
    process: subprocess.Popen[bytes]
    api_url: str

    def wait_healthy(self, timeout_s: float) -> None:
        """Block until the API answers its health check; fail clearly if it dies or hangs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FlywheelError(
                    f"the temporary Prefect server exited with code {self.process.returncode} "
                    "before answering; run `prefect server start` to see why"
                )
            health = f"{self.api_url}/health"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return
            time.sleep(0.1)
        raise FlywheelError(
            f"the temporary Prefect server did not answer within {timeout_s:.0f} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server() -> TemporaryServer | None:
    """Launch Prefect's API app under uvicorn on a free loopback port; returns at once.

    None when `PREFECT_API_URL` is set (or, in a process that already imported Prefect, its
    settings name an API, as a test harness does): runs go to that server.
    """
    if os.environ.get("PREFECT_API_URL") or _configured_in_process():
        return None
    spec = importlib.util.find_spec("prefect")
    assert spec is not None and spec.submodule_search_locations, "prefect is a dependency"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(next(iter(spec.submodule_search_locations))).parent),
        "--factory",
        "pipelines.prefect_db:create_app",  # Prefect's app, on a seeded new database
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    # The flags Prefect gives its own temporary server: no UI, ephemeral services only. And no
    # block types registered at start (a second of a fresh clone's first run, importing every
    # installed Prefect collection): nothing a run does uses them, and `prefect server start`
    # on the same database registers them.
    env = os.environ | {
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
        "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
    }
    server = TemporaryServer(subprocess.Popen(command, env=env), f"http://127.0.0.1:{port}/api")
    # Stopped at exit, as Prefect stops its own: its log and event workers flush at exit too.
    atexit.register(server.stop)
    return server


@contextlib.contextmanager
def prefect_api(server: TemporaryServer | None) -> Iterator[str | None]:
    """Point Prefect's client at `server` for the block, once it answers.

    A Prefect profile that names an API wins: the temporary server is stopped unused, and a
    profile's API that does not answer is refused with one line, as one in the environment is.
    """
    if server is None:
        yield None
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        temporary_settings,
    )

    from pipelines.prefect_api import check_reachable

    if PREFECT_API_URL.value():
        server.stop()
        check_reachable(str(PREFECT_API_URL.value()))
        yield None
        return
    timeout = float(
        os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
        or DEFAULT_STARTUP_TIMEOUT_S
    )
    try:
        server.wait_healthy(timeout)
    except FlywheelError:
        server.stop()
        raise
    log.info("temporary Prefect server at %s", server.api_url)
    # No flow-run heartbeats: they let a lasting server mark a run whose process died as
    # crashed, and this one ends with the run; the thread that sends them also sleeps in
    # one-second steps, which the flow's end waited out.
    no_heartbeat = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with temporary_settings(updates={PREFECT_API_URL: server.api_url, **no_heartbeat}):
        yield server.api_url


def _configured_in_process() -> bool:
    if "prefect.settings" not in sys.modules:  # importing Prefect here would cost seconds
        return False
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
