"""A worker stops when its supervisor is gone.

BentoML's supervisor (the `bentoml serve` process) opens the listening socket and hands it to
its workers. Killed with SIGKILL it cannot stop them: they went on answering on the port, and a
restart failed with "Address already in use". Each worker watches its parent here: once it has
been re-parented, it stops itself the way the supervisor would have (SIGTERM, so the inference
log is flushed), and exits hard if that has not finished within `grace_s`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

logger = logging.getLogger(__name__)


def exit_with_parent(interval_s: float = 1.0, grace_s: float = 15.0) -> threading.Thread:
    """Start the watch (a daemon thread); returns it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        logger.error("supervisor (pid %d) is gone; stopping this worker (pid %d) so the port "
                     "is freed", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="flywheel-parent-watch", daemon=True)
    thread.start()
    return thread
