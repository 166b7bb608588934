"""ASGI middleware in front of `/predict`: request ids, body limit, readable 4xx, log capture.

BentoML validates the body against the spec's schema; this gate handles what it does not: a
body over the size limit (413, before it is read in full), a body that is not JSON (BentoML
answers 500 there), no model loaded yet (503 with what to do, on `/readyz` too), and
validation errors rewritten as 422 naming record and field (at most `MAX_LISTED_ERRORS` of
them), counted by reason. It
also stamps each request with an id the server issues (`X-Request-ID` in the answer; a client's
own header is ignored, so no client chooses which ids the inference log holds, or which
`/feedback` can label) and hands sampled request/response bytes to the inference log (and to the
shadow challenger, serving/shadow.py) after the response is sent, so logging costs the request
almost nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flywheel.monitoring.logread import CANARY_ROLE, CHAMPION_ROLE
from flywheel.serving.inference_log import LogEntry
from flywheel.serving.limits import (
    NOT_PARSED,
    PayloadTooLarge,
    TooDeep,
    TooSlow,
    bounded_body,
    parse_bounded,
)
from flywheel.serving.request_io import PARSED_BODY, ROUTED_MODEL
from flywheel.serving.schema import describe_errors, invalid_reason

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
# A 422 lists this many problems at most: one record with 50,000 unknown fields is one line.
MAX_LISTED_ERRORS = 10


def sampled(request_id: str, rate: float) -> bool:
    """Deterministic per request id: the same request is logged or not on every replica."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return zlib.crc32(request_id.encode()) / 2**32 < rate


class PredictGate:
    """Wraps the BentoML app; only POST requests to `path` are touched."""

    def __init__(self, app: Any, *, state: Any, path: str = "/predict",
                 bulk_path: str = "/predict_batch") -> None:
        self.app = app
        self.state = state  # flywheel.serving.state.ServingState of this worker process
        self.path = path
        self.bulk_path = bulk_path

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and scope["path"] == "/readyz" and not self.state.holder.ready:
            # BentoML's own answer is a bare 503; a probe's reader needs to know why.
            await _send_json(send, 503, {"error": self.state.no_model_message()},
                             uuid.uuid4().hex)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in (
                self.path, self.bulk_path):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = uuid.uuid4().hex
        state = self.state
        limit = state.max_body_bytes
        try:
            body = await bounded_body(headers, receive, limit, state.body_timeout_s)
            parsed = parse_bounded(body, state.max_json_depth)
        except TooSlow:
            await self._reject(send, request_id, 408, "too_slow",
                               f"request body not received within {state.body_timeout_s:g} s")
            return
        except TooDeep:
            await self._reject(send, request_id, 400, "not_json",
                               f"request body nests deeper than {state.max_json_depth} levels "
                               "or its brackets do not balance; send a list of flat records")
            return
        except PayloadTooLarge:
            await self._reject(send, request_id, 413, "too_large",
                               f"request body is over the limit of {limit} bytes "
                               "(serve.max_body_bytes); split the records into smaller batches")
            return
        except ValueError:
            await self._reject(send, request_id, 400, "not_json", "bad Content-Length header")
            return
        if not state.holder.ready:
            await _send_json(send, 503, {"error": state.no_model_message()}, request_id)
            return
        if state.holder.current.image_model is not None:
            await self._reject(send, request_id, 400, "wrong_endpoint",
                               "the champion is an image model: POST images to /predict_image "
                               """(multipart field 'image', or JSON {"image": "<base64>"})""")
            return
        # The body is JSON whatever the client declared (curl -d says form-urlencoded); this also
        # keeps BentoML's multipart and pickle decoders away from public requests.
        scope = {**scope, "headers": [*((k, v) for k, v in scope["headers"]
                                        if k != b"content-type"),
                                      (b"content-type", b"application/json")]}
        if parsed is not NOT_PARSED:  # decoded once: the endpoint validates this very value
            scope[PARSED_BODY] = parsed
        routed = state.canary.pick(request_id, parsed) if state.canary is not None else None
        if routed is not None:  # answered by the canary version (serving/canary.py)
            scope[ROUTED_MODEL] = routed
        if scope["path"] == self.path and body.count(b"{") > state.max_batch_size:
            # A list that is a batch already is scored in one call on its own route, so it
            # neither waits behind nor holds up the batched small requests.
            # Counting braces only estimates records; either route gives the same answers.
            scope["path"], scope["raw_path"] = self.bulk_path, self.bulk_path.encode()
        await self._forward(scope, body, send, request_id)

    async def _forward(self, scope: dict[str, Any], body: bytes, send: Callable[..., Any],
                       request_id: str) -> None:
        parsed = scope.get(PARSED_BODY)
        replayed = False

        async def receive() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        held = False  # error answers are held back and rewritten once complete

        async def capture(message: dict[str, Any]) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                start.update(message)
                held = message["status"] in (400, 500)
                if not held:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (REQUEST_ID_HEADER, request_id.encode())]}
                    await send(message)
                return
            if message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk:
                    chunks.append(chunk)
                if not held:
                    await send(message)
                elif not message.get("more_body", False):
                    await self._rewrite_error(send, start["status"], b"".join(chunks), body,
                                              request_id)
                return
            await send(message)

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            return
        answer = b"".join(chunks)
        # A shadowed request's champion row is always logged: the comparison needs both.
        shadowed = self.state.shadow is not None and self.state.shadow.offer(
            request_id, body, answer)
        if self.state.inference_log is not None and (
                shadowed or sampled(request_id, self.state.sample_rate)):
            self.state.inference_log.submit(
                LogEntry(request_id, datetime.now(UTC), body, answer, parsed,
                         role=CANARY_ROLE if ROUTED_MODEL in scope else CHAMPION_ROLE))

    async def _rewrite_error(self, send: Callable[..., Any], status: int, answer: bytes,
                             body: bytes, request_id: str) -> None:
        """422 naming record and field for schema errors; 400 for a body that is not JSON."""
        if status == 500:
            try:
                json.loads(body or b"{}")
            except ValueError as exc:
                await self._reject(send, request_id, 400, "not_json",
                                   f"request body is not valid JSON: {exc}")
                return
            await _send_raw(send, status, answer, request_id)  # a real server error
            return
        try:
            errors = json.loads(answer).get("detail") or []
        except (ValueError, AttributeError):
            await _send_raw(send, status, answer, request_id)
            return
        detail = describe_errors(errors[:MAX_LISTED_ERRORS])
        first = detail[0] if detail else {}
        where = ", ".join(
            part for part in (
                f"record {first['record']}" if first.get("record") is not None else "",
                f"field {first['field']!r}" if first.get("field") else "",
            ) if part
        ) or "body"
        message = f"invalid input at {where}: {first.get('msg', 'invalid')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        self._count(invalid_reason(errors))
        await _send_json(send, 422, {"error": message, "detail": detail}, request_id)

    async def _reject(self, send: Callable[..., Any], request_id: str, status: int, reason: str,
                      message: str) -> None:
        self._count(reason)
        await _send_json(send, status, {"error": message}, request_id)

    def _count(self, reason: str) -> None:
        if self.state.metrics is not None:
            self.state.metrics.invalid_requests.labels(reason=reason).inc()


async def _send_json(send: Callable[..., Any], status: int, payload: Any,
                     request_id: str) -> None:
    await _send_raw(send, status, json.dumps(payload).encode(), request_id)


async def _send_raw(send: Callable[..., Any], status: int, body: bytes, request_id: str) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (REQUEST_ID_HEADER, request_id.encode())],
    })
    await send({"type": "http.response.body", "body": body, "more_body": False})
