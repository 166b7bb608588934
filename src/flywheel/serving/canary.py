"""Canary routing: a share of live requests answered by the registry's `canary` version.

One thread per worker polls the registry: the `canary` alias through the same RegistryWatcher
the champion and the shadow use (signature and integrity checked before any file is read; only a
version signed fit to serve loads), then the share and lease the controller records
(registry/canary.py). The gate asks `pick` for each request: a stable hash of the request id, or
of the configured entity column of its first record (so one caller meets one model), below the
share goes to the canary. The lease is checked on every request against the clock, so traffic
returns to the champion on its own when the controller stops renewing it, even with the
registry unreachable.

`answer` wraps each model call: records, errors and call time per role and version
(serving/canary_metrics.py). A canary call that raises is counted against the canary and
answered by the champion when both take the same request fields, so clients of a broken canary
see the champion's answers, not 5xx, while the controller sees the errors and rolls back.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flywheel.monitoring.logread import CANARY_ROLE, CHAMPION_ROLE
from flywheel.registry.canary import ROLLED_BACK, Progress, read_progress
from flywheel.registry.store import CANARY
from flywheel.serving.canary_metrics import RoutedMetrics
from flywheel.serving.gate import sampled
from flywheel.serving.registry_watch import LoadedModel, ModelHolder, RegistryWatcher

logger = logging.getLogger(__name__)

REQUEST_ID = "request_id"


def route_key(request_id: str, records: Any, route_by: str) -> str:
    """What the hash is taken of: the request id, or the entity column of the first record
    (the request id when the record lacks it)."""
    if route_by == REQUEST_ID:
        return request_id
    first = records[0] if isinstance(records, list) and records else records
    value = first.get(route_by) if isinstance(first, dict) else None
    return request_id if value is None else f"{route_by}={value}"


class CanaryRoute:
    """The canary's holder, the share and lease last read, and the thread that reads them."""

    def __init__(self, client_factory: Callable[[], Any], name: str, interval_s: float,
                 schema_of: Callable[[Any], Any], metrics: RoutedMetrics, route_by: str) -> None:
        self.holder = ModelHolder()
        self.metrics = metrics
        self.route_by = route_by
        self.name = name
        self.interval_s = interval_s
        self.client_factory = client_factory
        self.progress: Progress | None = None
        self._client: Any = None

        def prepare(model: LoadedModel, _current: LoadedModel | None) -> LoadedModel:
            return dataclasses.replace(model, request_schema=schema_of(model.spec))

        def reloaded(outcome: str, _model: LoadedModel | None, previous: str | None) -> None:
            metrics.reloads.labels(outcome=outcome).inc()
            if outcome == "removed" and previous is not None:
                metrics.share.labels(model_version=previous).set(0)

        self.watcher = RegistryWatcher(self.holder, client_factory, name, interval_s,
                                       on_reload=reloaded, prepare=prepare, alias=CANARY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flywheel-canary", daemon=True)

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def share(self, now: float | None = None) -> float:
        """The share routed now: 0 without a loaded canary of the recorded version, or once
        the lease lapsed."""
        model, progress = self.holder.current, self.progress
        if model is None or progress is None or progress.version != model.version:
            return 0.0
        return progress.routed_share(time.time() if now is None else now)

    def pick(self, request_id: str, records: Any) -> LoadedModel | None:
        """The canary for this request, or None (the champion answers)."""
        model, share = self.holder.current, self.share()
        if model is None or share <= 0.0:
            return None
        return model if sampled(route_key(request_id, records, self.route_by), share) else None

    def answer(self, model: LoadedModel, records: list[Any],
               score: Callable[[LoadedModel, list[Any]], list[Any]],
               champion: LoadedModel | None) -> list[Any]:
        """`score(model, records)`, counted under its role; a failed canary call is answered
        by `champion` when it takes the same request fields."""
        role = CANARY_ROLE if model is self.holder.current else CHAMPION_ROLE
        labels = {"role": role, "model_version": model.version}
        self.metrics.records.labels(**labels).inc(len(records))
        start = time.perf_counter()
        try:
            answers = score(model, records)
        except Exception:
            self.metrics.errors.labels(**labels).inc(len(records))
            if (role != CANARY_ROLE or champion is None
                    or champion.request_schema is not model.request_schema):
                raise
            logger.debug("canary version %s failed %d records; the champion answers",
                         model.version, len(records))
            return score(champion, records)
        self.metrics.seconds.labels(**labels).observe(time.perf_counter() - start)
        return answers

    def poll(self) -> None:
        """The alias (load or unload), then the recorded share and lease; never raises."""
        self.watcher.check_once()
        try:
            if self._client is None:
                self._client = self.client_factory()
            self.progress = read_progress(self._client, self.name)
        except Exception as exc:  # the lease still lapses on the clock; the next poll retries
            self._client = None
            logger.debug("canary progress not read: %s", type(exc).__name__)
        model, progress = self.holder.current, self.progress
        if model is not None:
            self.metrics.share.labels(model_version=model.version).set(self.share())
        if progress is not None and progress.state == ROLLED_BACK:  # what the alert reads
            self.metrics.rolled_back.labels(model_version=progress.version).set(
                progress.ended_at)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()
