"""The worker's handle on one challenger process (serving/shadow_child.py): start, feed, stop.

A reader thread takes the child's messages as they come and hands them to `on_message`; it
blocks in `read` (the interpreter lock released) and wakes once per message, which the child
sends once per message of jobs, not per request. It also keeps the count of jobs sent and
not answered yet: what a crash loses. When the child's end closes it waits for the exit
status and sets `finished`; `crashed` tells a death (a signal, a non-zero status) from the
clean exit after the alias was removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from flywheel.serving.shadow_pipe import ChallengerSetup, PipeReader, PipeWriter, Scored, ShadowJob

logger = logging.getLogger(__name__)

CHILD_MODULE = "flywheel.serving.shadow_child"
# What a child gets to write its buffered log rows and exit once its jobs pipe is closed.
STOP_GRACE_S = 10.0


class ChallengerProcess:
    """One running child; `send` is for one thread (the worker's shadow thread) only."""

    def __init__(self, setup: ChallengerSetup, on_message: Callable[[Any], None]) -> None:
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE, str(jobs_read), str(results_write)],
            pass_fds=(jobs_read, results_write))
        os.close(jobs_read)
        os.close(results_write)
        self._jobs = PipeWriter(jobs_write)
        self._results = PipeReader(results_read)
        self._on_message = on_message
        self._lock = threading.Lock()
        self.in_flight = 0  # jobs sent and not answered yet
        self.finished = threading.Event()
        with contextlib.suppress(OSError):  # it died at once: the reader sees it end
            self._jobs.send(setup)
        self._reader = threading.Thread(target=self._read, name="flywheel-shadow-results",
                                        daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def crashed(self) -> bool:
        """It died (a signal, a non-zero status) rather than exit once the alias was gone."""
        return self.finished.is_set() and self.process.returncode != 0

    def send(self, jobs: list[ShadowJob]) -> bool:
        """Hand over one message of jobs; False when the child is gone (they are lost)."""
        with self._lock:
            self.in_flight += len(jobs)
        try:
            self._jobs.send(jobs)
        except OSError:  # BrokenPipeError: it died or is exiting
            return False
        return True

    def stop(self) -> None:
        """Close its jobs pipe (it writes its log and exits); kill it if it does not."""
        with contextlib.suppress(OSError):
            self._jobs.close()
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("shadow: challenger process %d did not stop; killing it", self.pid)
            self.process.kill()
        self._reader.join(STOP_GRACE_S)

    def _read(self) -> None:
        try:
            while (message := self._results.receive()) is not None:
                if isinstance(message, Scored):
                    with self._lock:
                        self.in_flight -= message.size
                self._on_message(message)
        except Exception:  # a message not understood: the child is stopped, treated as dead
            logger.exception("shadow: reading challenger process %d failed", self.pid)
            self.process.kill()
        finally:
            self._results.close()
            self.process.wait()
            self.finished.set()
