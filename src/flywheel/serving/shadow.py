"""Shadow: the registry's `challenger` scores the champion's requests, off the response path.

A second registry watcher keeps the version the `challenger` alias points at loaded next to the
champion: the same polling, the same signature and integrity check before any file is read (a
version signed with any verdict may shadow, since its answers never reach a client; an unsigned,
forged or tampered one is refused and counted in `flywheel_shadow_reloads_total`). Removing
the alias unloads it within one reload interval.

The gate hands each answered request to `offer` after the champion's answer was sent: a sampled
one (`serve.shadow_sample_rate`, by request id) is put on a bounded queue, or dropped and
counted when the queue is full; nothing waits on the challenger. One worker thread validates
each request against the challenger's own schema, scores what piled up meanwhile in one call
(a call's fixed cost is most of a small request's), compares the two answers
(`flywheel_shadow_*`, serving/shadow_metrics.py) and logs the challenger's rows under the same
request id with `role` = challenger (serving/inference_log.py). Anything the challenger raises
is counted and logged as an error row; it never reaches a client. A native crash (a segfault in
the challenger's library) would take its worker process down with it: shadow in-process trades
that isolation for no extra hop.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from flywheel.monitoring.logread import CHALLENGER_ROLE
from flywheel.registry.signing import ANY_VERDICT
from flywheel.registry.store import CHALLENGER
from flywheel.serving.gate import sampled
from flywheel.serving.inference_log import LogEntry
from flywheel.serving.registry_watch import LoadedModel, ModelHolder, RegistryWatcher
from flywheel.serving.request_io import decode
from flywheel.serving.scoring import score
from flywheel.serving.shadow_metrics import ShadowMetrics

logger = logging.getLogger(__name__)

# How long the worker waits for a request before it checks whether it should stop.
IDLE_WAIT_S = 0.5
# Requests that piled up while the challenger was busy are scored in one call, at most this many.
MAX_JOBS_PER_CALL = 64


@dataclass(frozen=True)
class ShadowJob:
    """One answered request: what the client sent and what the champion answered."""

    request_id: str
    time: datetime
    body: bytes
    records: Any  # the body as the gate decoded it, or None
    answer: bytes


def agreement(champion: list[dict[str, Any]],
              challenger: list[dict[str, Any]]) -> tuple[int, np.ndarray]:
    """Records predicted alike, and |p_champion - p_challenger| per record that has both."""
    agreeing = sum(str(a.get("prediction")) == str(b.get("prediction"))
                   for a, b in zip(champion, challenger, strict=False))
    distances = [abs(float(a["probability"]) - float(b["probability"]))
                 for a, b in zip(champion, challenger, strict=False)
                 if a.get("probability") is not None and b.get("probability") is not None]
    return agreeing, np.asarray(distances, dtype="float64")


class ShadowScorer:
    """Bounded queue in front of one worker thread; `offer` never blocks or raises."""

    def __init__(self, holder: ModelHolder, metrics: ShadowMetrics, log: Any, *,
                 sample_rate: float, queue_size: int) -> None:
        self.holder = holder
        self.metrics = metrics
        self.log = log  # the worker's InferenceLog (None: compare only)
        self.sample_rate = sample_rate
        self._queue: queue.Queue[ShadowJob] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flywheel-shadow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def offer(self, request_id: str, body: bytes, records: Any, answer: bytes) -> bool:
        """Queue an answered request for the challenger; True when it was queued."""
        if self.holder.current is None or not sampled(request_id, self.sample_rate):
            return False
        try:
            self._queue.put_nowait(ShadowJob(request_id, datetime.now(UTC), body, records,
                                             answer))
        except queue.Full:
            self.metrics.dropped.inc()
            return False
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                jobs = [self._queue.get(timeout=IDLE_WAIT_S)]
            except queue.Empty:
                continue
            while len(jobs) < MAX_JOBS_PER_CALL:  # what piled up meanwhile: one model call
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            model = self.holder.current
            if model is None:  # the alias went while these waited
                continue
            try:
                self._score(model, jobs)
            except Exception:  # never let one batch stop the worker
                logger.exception("shadow: %d requests not compared", len(jobs))

    def _score(self, model: LoadedModel, jobs: list[ShadowJob]) -> None:
        version = model.version
        self.metrics.requests.labels(challenger_version=version).inc(len(jobs))
        start = time.perf_counter()
        outcomes = _challenger_answers(model, jobs)
        latency = time.perf_counter() - start
        for job, (answers, reason) in zip(jobs, outcomes, strict=True):
            self._record(version, job, answers, reason, latency)

    def _record(self, version: str, job: ShadowJob, answers: list[dict[str, Any]] | None,
                reason: str | None, latency: float) -> None:
        """Count and compare one request's challenger answers, and log them."""
        self.metrics.latency.labels(challenger_version=version).observe(latency)
        if reason is not None:
            self.metrics.errors.labels(challenger_version=version, reason=reason).inc()
        champion = orjson.loads(job.answer)
        if answers is None:  # one error row per record, so the report counts them
            answers = [{"model_version": version, "prediction": None, "probability": None}
                       for _ in champion]
        else:
            agreeing, distances = agreement(champion, answers)
            self.metrics.records.labels(challenger_version=version).inc(len(answers))
            self.metrics.agreeing.labels(challenger_version=version).inc(agreeing)
            for distance in distances:
                self.metrics.distance.labels(challenger_version=version).observe(distance)
        if self.log is not None:
            self.log.submit(LogEntry(job.request_id, job.time, job.body, orjson.dumps(answers),
                                     job.records, role=CHALLENGER_ROLE, latency_s=latency))


_Outcome = tuple[list[dict[str, Any]] | None, str | None]


def _challenger_answers(model: LoadedModel, jobs: list[ShadowJob]) -> list[_Outcome]:
    """Per request, the challenger's answers, or None and why (`invalid` for its schema,
    `predict`). The valid requests are scored in one call; if that call raises, each is
    scored alone, so only the requests the model fails on count as its errors."""
    schema = model.request_schema
    outcomes: list[_Outcome] = [(None, "invalid")] * len(jobs)
    if schema is None:
        return outcomes
    valid: list[tuple[int, list[Any]]] = []
    for i, job in enumerate(jobs):
        try:
            valid.append((i, schema.validate(job.records if job.records is not None
                                              else decode(job.body))))
        except ValueError:  # pydantic's ValidationError is one
            continue
    if not valid:
        return outcomes
    try:
        answers = score(model, schema.spec, [r for _, records in valid for r in records])
    except Exception as exc:
        if len(valid) > 1:
            return [_challenger_answers(model, [job])[0] for job in jobs]
        logger.debug("shadow: %s version %s raised %s", model.name, model.version,
                     type(exc).__name__)
        return [(None, "predict")]
    offset = 0
    for i, records in valid:
        outcomes[i] = (answers[offset:offset + len(records)], None)
        offset += len(records)
    return outcomes


@dataclass
class Shadow:
    """The challenger's holder, its registry watcher and the scorer the gate offers requests."""

    scorer: ShadowScorer
    watcher: RegistryWatcher

    def offer(self, request_id: str, body: bytes, records: Any, answer: bytes) -> bool:
        return self.scorer.offer(request_id, body, records, answer)

    def start(self) -> None:
        self.watcher.check_once()
        self.watcher.start()
        self.scorer.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.scorer.stop()


def start_shadow(client_factory: Callable[[], Any], name: str, interval_s: float,
                 schema_of: Callable[[Any], Any], metrics: ShadowMetrics, log: Any, *,
                 sample_rate: float, queue_size: int) -> Shadow:
    """Watch `NAME@challenger` and score sampled requests with it; started at once."""
    holder = ModelHolder()

    def prepare(model: LoadedModel, _current: LoadedModel | None) -> LoadedModel:
        return dataclasses.replace(model, request_schema=schema_of(model.spec))

    def reloaded(outcome: str, model: LoadedModel | None, previous: str | None) -> None:
        metrics.reloads.labels(outcome=outcome).inc()
        if outcome in ("success", "removed"):
            metrics.loaded(model.version if model else None, previous)

    watcher = RegistryWatcher(holder, client_factory, name, interval_s, on_reload=reloaded,
                              prepare=prepare, alias=CHALLENGER, accept=ANY_VERDICT)
    shadow = Shadow(ShadowScorer(holder, metrics, log, sample_rate=sample_rate,
                                 queue_size=queue_size), watcher)
    shadow.start()
    return shadow
