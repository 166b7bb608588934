"""`POST /feedback`: the true label of an answered request, checked and stored for live metrics.

The body is `{"request_id": ..., "label": ...}` or a list of them. A batch is stored whole or
not at all: 422 when a label is not one of the serving model's classes, or not a finite number
for a regression (or a field is missing or too long), 404 when a request id is not in the
inference log (not answered or not sampled: ids not found on disk make the log's writers write
what they buffer, `monitoring.flush_request`, and are looked up again, so a label sent right
after its answer is accepted). The body gets the same
limits as `/predict`, before it is decoded: 413 over `serve.max_body_bytes` (a declared length
is refused unread, a chunked one as soon as it passes), 408 when it is not received within
`serve.request_body_timeout_s`, 400 deeper than `serve.max_json_depth` or not JSON (lone
surrogates included). A full disk is a 507 with one log line. Every outcome is counted in
`flywheel_feedback_total{outcome}`. The token (feedback scope), Host and content type are
checked by flywheel.serving.guard before this handler runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flywheel.data.task import Task
from flywheel.model_logs import ModelLogs
from flywheel.monitoring.feedback import (
    ACCEPTED,
    BAD_LABEL,
    UNKNOWN_REQUEST,
    RequestIndex,
    check_fresh,
    expected_label,
)
from flywheel.serving.feedback_store import store_labels
from flywheel.serving.limits import (
    NOT_PARSED,
    PayloadTooLarge,
    TooDeep,
    TooSlow,
    bounded_body,
    parse_bounded,
)
from flywheel.serving.logsafe import untrusted

logger = logging.getLogger(__name__)

# Server-issued ids are 32 hex characters; a longer "id" cannot be one.
MAX_ID_CHARS = 64
MAX_LABEL_CHARS = 256


class FeedbackEndpoint:
    def __init__(self, state: Any, task: Callable[[], Task], logs: ModelLogs, max_files: int,
                 max_age_s: float) -> None:
        self.state = state  # ServingState: metrics and the body limits
        self.task = task  # the serving model's: a champion of another task takes other labels
        self.folder = logs.feedback  # the served model's own labels and log, never another's
        self.index = RequestIndex(logs.inference)
        self.max_files = max_files
        self.max_age_s = max_age_s

    async def handle(self, request: Request) -> JSONResponse:
        payload = await self._payload(request)
        if isinstance(payload, JSONResponse):
            return payload
        try:
            frame = _labels(payload)
        except _Shape as exc:
            return self._answer(422, "bad_request", f"request body: {exc}")
        task = self.task()
        parts = await run_in_threadpool(check_fresh, frame, task, self.index)
        refusal = self._refusal(parts, task)
        if refusal is not None:
            return refusal
        try:
            await run_in_threadpool(store_labels, self.folder, parts[ACCEPTED], self.max_files,
                                    self.max_age_s)
        except OSError as exc:
            logger.error("feedback: cannot store labels in %s (%s)", self.folder,
                         untrusted(exc))
            return self._answer(507, "write_error", "labels could not be stored (server "
                                "storage); nothing stored, send them again later",
                                len(parts[ACCEPTED]))
        self._count(ACCEPTED, len(parts[ACCEPTED]))
        return JSONResponse({"accepted": len(parts[ACCEPTED])})

    async def _payload(self, request: Request) -> Any:
        """The decoded body within the limits of `/predict`, or the 4xx answer refusing it."""
        state = self.state
        try:
            body = await bounded_body(dict(request.scope["headers"]), request.receive,
                                      state.max_body_bytes, state.body_timeout_s)
            payload = parse_bounded(body, state.max_json_depth)
        except PayloadTooLarge:
            return self._answer(413, "too_large",
                                f"body over {state.max_body_bytes} bytes (serve.max_body_bytes)")
        except TooSlow:
            return self._answer(408, "too_slow", "request body not received within "
                                f"{state.body_timeout_s:g} s")
        except (TooDeep, ValueError):
            return self._answer(400, "bad_request", "request body is not JSON of at most "
                                f"{state.max_json_depth} levels (or not valid UTF-8 text)")
        if payload is NOT_PARSED:
            return self._answer(400, "bad_request", "request body is not valid JSON (or holds "
                                "text that is not valid Unicode)")
        return payload

    def _refusal(self, parts: dict[str, Any], task: Task) -> JSONResponse | None:
        bad, unknown = parts[BAD_LABEL], parts[UNKNOWN_REQUEST]
        if len(bad):
            first = bad.iloc[0]
            return self._answer(
                422, BAD_LABEL,
                f"field 'label': {untrusted(first['label'], 40)} of request "
                f"{untrusted(first['request_id'], MAX_ID_CHARS)} is not "
                f"{expected_label(task)}; nothing stored", len(bad))
        if len(unknown):
            return self._answer(
                404, UNKNOWN_REQUEST,
                f"request id {untrusted(unknown.iloc[0]['request_id'], MAX_ID_CHARS)} is not in "
                "the inference log (unknown or not sampled); nothing stored",
                len(unknown))
        return None

    def _answer(self, status: int, outcome: str, message: str, rows: int = 1) -> JSONResponse:
        self._count(outcome, rows)
        return JSONResponse({"error": message}, status_code=status)

    def _count(self, outcome: str, rows: int) -> None:
        if self.state.metrics is not None:
            self.state.metrics.feedback.labels(outcome=outcome).inc(rows)


class _Shape(ValueError):
    """Valid JSON of the wrong shape (422, not 400)."""


def _labels(payload: Any) -> pd.DataFrame:
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise _Shape('an empty list; expected {"request_id", "label"} or a list of them')
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _Shape(f"item {i} is not an object with request_id and label")
        for key, longest in (("request_id", MAX_ID_CHARS), ("label", MAX_LABEL_CHARS)):
            value = item.get(key)
            kinds = str | int | float if key == "label" else str | int
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise _Shape(f"item {i}: field {key!r} is missing or not a string"
                             + (" or number" if key == "label" else ""))
            if len(str(value)) > longest:
                raise _Shape(f"item {i}: field {key!r} is longer than {longest} characters")
    return pd.DataFrame(
        {"request_id": [str(i["request_id"]) for i in items], "label": [i["label"] for i in items]}
    )


def feedback_route(state: Any, task: Callable[[], Task], logs: ModelLogs, max_files: int,
                   max_age_s: float) -> Route:
    # A bound method, so Starlette calls it with a Request (an instance would be taken as ASGI).
    endpoint = FeedbackEndpoint(state, task, logs, max_files, max_age_s)
    return Route("/feedback", endpoint.handle, methods=["POST"])


def promoted_at(registered: str | None) -> float | None:
    """Seconds since the epoch of a version's registration (what the "model stale" alert uses)."""
    from datetime import datetime

    return datetime.fromisoformat(registered).timestamp() if registered else None
