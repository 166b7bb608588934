"""`POST /feedback`: the true label of an answered request, checked and stored for live metrics.

The body is `{"request_id": ..., "label": ...}` or a list of them. A batch is stored whole or
not at all: 422 when a label is not one of the spec's classes (or a field is missing), 404 when
a request id is not in the inference log (not answered, not sampled, or not flushed yet: the log
rolls every `serve.inference_log_roll_seconds`), 413 for a body over `serve.max_body_bytes`.
Every outcome is counted in `flywheel_feedback_total{outcome}`. The handler is a plain Starlette
endpoint, so middleware in front of the app (authentication, say) covers it like any route.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flywheel.monitoring.feedback import (
    ACCEPTED,
    BAD_LABEL,
    UNKNOWN_REQUEST,
    RequestIndex,
    check_feedback,
    store_feedback,
)
from flywheel.settings import Settings


class FeedbackEndpoint:
    def __init__(self, state: Any, classes: list[str], settings: Settings) -> None:
        self.state = state  # ServingState: metrics and the body limit
        self.classes = classes
        self.folder = settings.feedback
        self.index = RequestIndex(settings.inference_log)

    async def handle(self, request: Request) -> JSONResponse:
        limit = self.state.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            return self._answer(413, "too_large", f"body over {limit} bytes (serve.max_body_bytes)")
        try:
            frame = _labels(json.loads(await request.body()))
        except ValueError as exc:
            return self._answer(
                422 if isinstance(exc, _Shape) else 400, "bad_request", f"request body: {exc}"
            )
        parts = await run_in_threadpool(check_feedback, frame, self.classes, self.index)
        bad, unknown = parts[BAD_LABEL], parts[UNKNOWN_REQUEST]
        if len(bad):
            first = bad.iloc[0]
            return self._answer(
                422,
                BAD_LABEL,
                f"label {first['label']!r} of request "
                f"{first['request_id']!r} is not one of {self.classes}; nothing "
                "stored",
                len(bad),
            )
        if len(unknown):
            return self._answer(
                404,
                UNKNOWN_REQUEST,
                f"request id {unknown.iloc[0]['request_id']!r}"
                " is not in the inference log (unknown, not sampled, or not "
                "flushed yet); nothing stored",
                len(unknown),
            )
        await run_in_threadpool(store_feedback, self.folder, parts[ACCEPTED])
        self._count(ACCEPTED, len(parts[ACCEPTED]))
        return JSONResponse({"accepted": len(parts[ACCEPTED])})

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
        for key in ("request_id", "label"):
            if not isinstance(item.get(key), str | int) or isinstance(item.get(key), bool):
                raise _Shape(f"item {i}: field {key!r} is missing or not a string")
    return pd.DataFrame(
        {"request_id": [str(i["request_id"]) for i in items], "label": [i["label"] for i in items]}
    )


def feedback_route(state: Any, classes: list[str], settings: Settings) -> Route:
    # A bound method, so Starlette calls it with a Request (an instance would be taken as ASGI).
    return Route("/feedback", FeedbackEndpoint(state, classes, settings).handle, methods=["POST"])


def promoted_at(registered: str | None) -> float | None:
    """Seconds since the epoch of a version's registration (what the "model stale" alert uses)."""
    from datetime import datetime

    return datetime.fromisoformat(registered).timestamp() if registered else None
