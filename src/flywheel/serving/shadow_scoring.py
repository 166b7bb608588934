"""The challenger's side of shadowing: score a message of jobs, compare, log its rows.

Runs in the challenger's own process (serving/shadow_child.py). The requests of one message
are validated against the challenger's own schema and scored in one call (a call's fixed cost
is most of a small request's); each is compared with the champion's answer and logged under
its request id with `role` = challenger. Anything the challenger raises is a per-request
error (`invalid` for its schema, `predict` for its model), logged as an error row.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import orjson

from flywheel.monitoring.logread import CHALLENGER_ROLE
from flywheel.serving.inference_log import LogEntry
from flywheel.serving.registry_watch import LoadedModel
from flywheel.serving.request_io import decode
from flywheel.serving.scoring import score
from flywheel.serving.shadow_pipe import Scored, ShadowJob, ShadowResult

logger = logging.getLogger(__name__)

_Outcome = tuple[list[dict[str, Any]] | None, str | None]


def agreement(champion: list[dict[str, Any]],
              challenger: list[dict[str, Any]]) -> tuple[int, np.ndarray]:
    """Records predicted alike, and |p_champion - p_challenger| per record that has both."""
    agreeing = sum(str(a.get("prediction")) == str(b.get("prediction"))
                   for a, b in zip(champion, challenger, strict=False))
    distances = [abs(float(a["probability"]) - float(b["probability"]))
                 for a, b in zip(champion, challenger, strict=False)
                 if a.get("probability") is not None and b.get("probability") is not None]
    return agreeing, np.asarray(distances, dtype="float64")


def score_jobs(model: LoadedModel | None, jobs: list[ShadowJob], log: Any) -> Scored:
    """Score, compare and log one message of jobs (nothing but the count when none is loaded)."""
    if model is None:  # the alias went while these waited
        return Scored(len(jobs), None, 0.0, [])
    bodies = [_decoded(job.body) for job in jobs]
    start = time.perf_counter()
    outcomes = challenger_answers(model, bodies)
    latency = time.perf_counter() - start
    results = [_compared(model.version, job, body, answers, reason, latency, log)
               for job, body, (answers, reason) in zip(jobs, bodies, outcomes, strict=True)]
    return Scored(len(jobs), model.version, latency, results)


def _decoded(body: bytes) -> Any:
    try:
        return decode(body)
    except ValueError:  # the gate answered it, so it parsed there: only a changed rule lands here
        return None


def _compared(version: str, job: ShadowJob, records: Any, answers: list[dict[str, Any]] | None,
              reason: str | None, latency: float, log: Any) -> ShadowResult:
    """One request's comparison, and its challenger rows in the log."""
    champion = orjson.loads(job.answer)
    if answers is None:  # one error row per record, so the report counts them
        result = ShadowResult(reason, 0, 0, [])
        answers = [{"model_version": version, "prediction": None, "probability": None}
                   for _ in champion]
    else:
        agreeing, distances = agreement(champion, answers)
        result = ShadowResult(None, len(answers), agreeing, distances.tolist())
    if log is not None:
        log.submit(LogEntry(job.request_id, job.time, job.body, orjson.dumps(answers),
                            records, role=CHALLENGER_ROLE, latency_s=latency))
    return result


def challenger_answers(model: LoadedModel, bodies: list[Any]) -> list[_Outcome]:
    """Per decoded body, the challenger's answers, or None and why (`invalid` for its schema,
    `predict`). The valid ones are scored in one call; if that call raises, each is scored
    alone, so only the requests the model fails on count as its errors."""
    schema = model.request_schema
    outcomes: list[_Outcome] = [(None, "invalid")] * len(bodies)
    if schema is None:
        return outcomes
    valid: list[tuple[int, list[Any]]] = []
    for i, body in enumerate(bodies):
        try:
            valid.append((i, schema.validate(body)))
        except ValueError:  # pydantic's ValidationError is one
            continue
    if not valid:
        return outcomes
    try:
        answers = score(model, schema.spec, [r for _, records in valid for r in records])
    except Exception as exc:
        if len(valid) > 1:
            return [challenger_answers(model, [body])[0] for body in bodies]
        logger.debug("shadow: %s version %s raised %s", model.name, model.version,
                     type(exc).__name__)
        outcomes[valid[0][0]] = (None, "predict")
        return outcomes
    offset = 0
    for i, records in valid:
        outcomes[i] = (answers[offset:offset + len(records)], None)
        offset += len(records)
    return outcomes
