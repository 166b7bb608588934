"""Shadow: the registry's `challenger` scores the champion's requests in a process of its own.

While `NAME@challenger` exists, each service worker runs one challenger process
(serving/shadow_child.py): it loads the alias's version with the champion's checks (signature
and integrity before any file is read; any signed verdict may shadow, since its answers never
reach a client), scores, compares and writes the challenger's inference-log rows. Removing the
alias stops it within one reload interval.

The gate hands each answered request to `offer` after the champion's answer was sent: a sampled
one (`serve.shadow_sample_rate`, by request id) is appended to a bounded list, or dropped and
counted when the list is full (`serve.shadow_queue_size` entries, `MAX_PENDING_BYTES`); nothing
waits on the challenger. A thread takes what piled up every `SEND_INTERVAL_S` and writes it to
the child's pipe, at most `MAX_JOBS_PER_MESSAGE` a message (one model call each); no thread is
woken per request, since each wake-up takes the interpreter lock from the requests. The child's
small per-request results become the `flywheel_shadow_*` series here
(serving/shadow_metrics.py). Measured (benchmarks/shadow.py, README): scored in a thread of the
worker, the challenger's model call cost the worker ~5 ms of CPU per request under the same
interpreter lock as the champion's (+11 to +38 ms at the median); handing the bytes over
alone cost nothing measurable, so only the scoring moved out.

A child that dies (a native crash in its library, a kill, out of memory) costs clients
nothing: its requests in flight and waiting are counted as errors (`reason="crash"`), the
death in `flywheel_shadow_process_crashes_total`, and a new child is started after a backoff
(1 s, doubling to `MAX_BACKOFF_S`) if the alias still exists.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flywheel.registry.store import CHALLENGER, version_by_alias
from flywheel.serving.gate import sampled
from flywheel.serving.shadow_metrics import ShadowMetrics
from flywheel.serving.shadow_pipe import ChallengerSetup, Reloaded, Scored, ShadowJob
from flywheel.serving.shadow_process import ChallengerProcess

logger = logging.getLogger(__name__)

# How often what piled up goes to the child: rare enough to wake the thread seldom and hand
# over many requests at once, often enough that the list stays short.
SEND_INTERVAL_S = 0.2
# Requests scored in one call at most (one message to the child).
MAX_JOBS_PER_MESSAGE = 64
MAX_PENDING_BYTES = 64 * 1024 * 1024
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


class Shadow:
    """The worker's side: `offer` never blocks or raises; a thread feeds and restarts the child."""

    def __init__(self, setup: ChallengerSetup, client_factory: Callable[[], Any],
                 metrics: ShadowMetrics, *, sample_rate: float, queue_size: int) -> None:
        self.setup = setup
        self.client_factory = client_factory
        self.metrics = metrics
        self.sample_rate = sample_rate
        self.queue_size = queue_size
        self.version: str | None = None  # the challenger loaded in the child, if any
        self.child: ChallengerProcess | None = None
        self.crashes = 0  # in a row: the backoff before the next start
        self._client: Any = None
        self._next_start = 0.0  # monotonic time of the next alias check (and start)
        self._pending: deque[ShadowJob] = deque()
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flywheel-shadow", daemon=True)

    def offer(self, request_id: str, body: bytes, answer: bytes) -> bool:
        """Queue an answered request for the challenger; True when it was queued."""
        if self.version is None or not sampled(request_id, self.sample_rate):
            return False
        size = len(body) + len(answer)
        with self._lock:
            if (len(self._pending) < self.queue_size
                    and self._pending_bytes + size <= MAX_PENDING_BYTES):
                self._pending.append(ShadowJob(request_id, datetime.now(UTC), body, answer))
                self._pending_bytes += size
                return True
        self.metrics.dropped.inc()
        return False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.wait(SEND_INTERVAL_S):
                self._tick()
        finally:
            if self.child is not None:
                self._send(self._take())  # what the champion answered last is compared too
                self.child.stop()

    def _tick(self) -> None:
        """Feed the child; reap it when it has ended; start one when the alias appears."""
        child = self.child
        if child is not None and not child.finished.is_set():
            self._send(self._take())
        elif child is not None:
            self._ended(child)
        elif time.monotonic() >= self._next_start:
            self._next_start = time.monotonic() + self.setup.reload_interval_s
            if self._aliased():
                self.child = ChallengerProcess(self.setup, self._received)
                logger.info("shadow: challenger process %d started", self.child.pid)

    def _take(self) -> list[ShadowJob]:
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        return jobs

    def _send(self, jobs: list[ShadowJob]) -> None:
        assert self.child is not None
        for start in range(0, len(jobs), MAX_JOBS_PER_MESSAGE):
            if not self.child.send(jobs[start:start + MAX_JOBS_PER_MESSAGE]):
                return  # it died: the reader counts what it lost

    def _ended(self, child: ChallengerProcess) -> None:
        """A child has exited: after the alias's removal, or dead (counted, started again)."""
        self.child = None
        version, self.version = self.version, None
        lost = child.in_flight + len(self._take())
        if not child.crashed:
            self.crashes = 0
            return
        self.crashes += 1
        backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (self.crashes - 1))
        self._next_start = time.monotonic() + backoff
        self.metrics.crashes.inc()
        if version is not None:
            self.metrics.loaded(None, version)
            if lost:
                self.metrics.errors.labels(challenger_version=version, reason="crash").inc(lost)
        logger.error("shadow: challenger process %d died (exit status %s) with %d requests; "
                     "starting another in %g s", child.pid, child.process.returncode, lost,
                     backoff)

    def _aliased(self) -> bool:
        """`NAME@challenger` exists (a poll that fails is counted and retried next interval)."""
        try:
            if self._client is None:
                self._client = self.client_factory()
            return version_by_alias(self._client, self.setup.model_name, CHALLENGER) is not None
        except Exception:
            self._client = None
            self.metrics.reloads.labels(outcome="registry_error").inc()
            return False

    def _received(self, message: Any) -> None:
        """A child's message, on its reader thread: the series, and which version shadows."""
        if isinstance(message, Reloaded):
            self.metrics.reloads.labels(outcome=message.outcome).inc()
            if message.outcome in ("success", "removed"):
                self.metrics.loaded(message.version, message.previous)
                self.version = message.version
        elif isinstance(message, Scored) and message.version is not None:
            self._count(message)

    def _count(self, scored: Scored) -> None:
        metrics, version = self.metrics, scored.version
        metrics.requests.labels(challenger_version=version).inc(scored.size)
        for result in scored.results:
            metrics.latency.labels(challenger_version=version).observe(scored.latency_s)
            if result.reason is not None:
                metrics.errors.labels(challenger_version=version, reason=result.reason).inc()
                continue
            metrics.records.labels(challenger_version=version).inc(result.records)
            metrics.agreeing.labels(challenger_version=version).inc(result.agreeing)
            for distance in result.distances:
                metrics.distance.labels(challenger_version=version).observe(distance)


def start_shadow(setup: ChallengerSetup, client_factory: Callable[[], Any],
                 metrics: ShadowMetrics, *, sample_rate: float, queue_size: int) -> Shadow:
    """Shadow `NAME@challenger` whenever it exists; started at once."""
    shadow = Shadow(setup, client_factory, metrics, sample_rate=sample_rate,
                    queue_size=queue_size)
    shadow.start()
    return shadow
