"""End a process without interpreter teardown, once its work and exit handlers are done.

After a run has imported torch, Great Expectations, MLflow and Prefect, CPython's own shutdown
(clearing every module and collecting the millions of objects they made) takes about 2 s on
two cores, and does nothing a finished command needs. By the time it would start, Python has
already joined the non-daemon threads and run every `atexit` handler: Prefect's log and event
flushes, the temporary Prefect server's stop, MLflow's. So the last handler, registered here
before anything else can register one, flushes logging and the standard streams and ends the
process with the command's exit status. The `flywheel` command, the fresh-process load check
and the validate-ahead process end this way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable

SIGINT_STATUS = 130  # what a shell reports for a command stopped with Ctrl-C


def run_without_teardown(command: Callable[[], object]) -> None:
    """Run `command` as the process's whole work; register the exit first, then import it."""
    status = [1]  # an uncaught exception: Python prints its traceback and exits with 1
    atexit.register(_leave, status)  # registered first, so it runs after every other handler
    try:
        command()
        status[0] = 0
    except SystemExit as exc:
        status[0] = _exit_status(exc.code)
        raise
    except KeyboardInterrupt:
        status[0] = SIGINT_STATUS
        raise


def _exit_status(code: object) -> int:
    """`sys.exit`'s rules: None is success, an int is itself, anything else (a message) is 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def _leave(status: list[int]) -> None:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`flywheel status | head`) or a closed stream has nothing to flush to.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status[0])
