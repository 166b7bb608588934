"""`POST /predict_image`: an image champion answering uploads, with the limits of `/predict`.

In order: a champion must serve and be an image model (503, or 400 pointing a table's client
at `/predict`); the body is read within its byte limit (a declared Content-Length over it is
refused unread, a chunked body as soon as it passes: 413) and its time limit (408); the images
are taken from the form field or the base64 JSON (serving/image_upload.py: 4xx naming the
field); each is decoded by the spec's own rules (images/decode.py: 422 naming the field); then
the images of every request waiting for the model are scored in one call (the batcher), and a
sampled request's rows go to the inference log as statistics and embedding summary. The
token (predict scope), Host and content type are checked by serving/guard.py before this runs.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flywheel.errors import DataError
from flywheel.images.decode import Decoded, decode_image
from flywheel.serving.batching import GreedyBatcher
from flywheel.serving.gate import REQUEST_ID_HEADER, sampled
from flywheel.serving.image_scoring import score_images
from flywheel.serving.image_upload import UploadRefused, field_name, uploaded_images
from flywheel.serving.inference_log import LogEntry
from flywheel.serving.limits import PayloadTooLarge, TooSlow, bounded_body
from flywheel.serving.registry_watch import LoadedModel

logger = logging.getLogger(__name__)

PATH = "/predict_image"
# Room for a form's boundaries and part headers, or JSON's quotes, around the images.
FORM_OVERHEAD_BYTES = 64 * 1024


def body_limit(max_image_bytes: int, max_body_bytes: int) -> int:
    """The body a request may send: serve.max_body_bytes, and at least one image of
    image.max_bytes in either encoding (base64 is 4/3 of the bytes)."""
    return max(max_body_bytes, max_image_bytes * 4 // 3 + FORM_OVERHEAD_BYTES)


class ImageEndpoint:
    def __init__(self, state: Any) -> None:
        self.state = state  # ServingState: the model holder, metrics, log and limits
        self.batcher = GreedyBatcher(self._score, state.max_batch_size,
                                     observe=self._observe_batch)

    async def handle(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        model = self.state.holder.current
        try:
            if model is None:
                raise UploadRefused(503, "no_model", self.state.no_model_message())
            if model.image_model is None:
                raise UploadRefused(400, "wrong_endpoint", "the champion takes records, not "
                                    "images: POST JSON records to /predict")
            decoded = await self._decoded(request, model)
        except UploadRefused as refused:
            if refused.status != 503:
                self.state.count_invalid(refused.reason)
            return _answer(refused.status, {"error": str(refused)}, request_id)
        scored = await self.batcher(decoded, model)
        answers = [answer for answer, _ in scored]
        body = orjson.dumps(answers)
        self._log(request_id, [row for _, row in scored], body)
        return Response(body, media_type="application/json",
                        headers={REQUEST_ID_HEADER.decode(): request_id})

    async def _decoded(self, request: Request, model: LoadedModel) -> list[Decoded]:
        spec = model.image_model.image
        state = self.state
        limit = body_limit(spec.max_bytes, state.max_body_bytes)
        try:
            body = await bounded_body(dict(request.scope["headers"]), request.receive, limit,
                                      state.body_timeout_s)
        except PayloadTooLarge:
            raise UploadRefused(413, "too_large", f"request body is over the limit of {limit} "
                                f"bytes (image.max_bytes {spec.max_bytes} an image)") from None
        except TooSlow:
            raise UploadRefused(408, "too_slow", "request body not received within "
                                f"{state.body_timeout_s:g} s") from None
        except ValueError:
            raise UploadRefused(400, "bad_request", "bad Content-Length header") from None
        images = await uploaded_images(Headers(scope=request.scope), body,
                                       state.max_batch_size, spec.max_bytes)
        return await run_in_threadpool(_decode_all, images, spec)

    def _score(self, decoded: list[Decoded], model: LoadedModel) -> list[Any]:
        return score_images(model, decoded, self.state.metrics)

    def _observe_batch(self, requests: int) -> None:
        if self.state.metrics is not None:
            self.state.metrics.batch_requests.observe(requests)

    def _log(self, request_id: str, rows: list[dict[str, float]], answer: bytes) -> None:
        log = self.state.inference_log
        if log is not None and sampled(request_id, self.state.sample_rate):
            log.submit(LogEntry(request_id, datetime.now(UTC), b"", answer, rows))


def _decode_all(images: list[bytes], spec: Any) -> list[Decoded]:
    """Each image by the spec's rules; the first that fails is a 422 naming its field."""
    decoded = []
    for index, data in enumerate(images):
        try:
            decoded.append(decode_image(data, spec, field_name(index, len(images))))
        except DataError as exc:
            raise UploadRefused(422, "not_an_image", str(exc)) from None
    return decoded


def _answer(status: int, payload: dict[str, Any], request_id: str) -> JSONResponse:
    return JSONResponse(payload, status_code=status,
                        headers={REQUEST_ID_HEADER.decode(): request_id})


def image_route(state: Any) -> Route:
    # A bound method, so Starlette calls it with a Request (an instance would be taken as ASGI).
    return Route(PATH, ImageEndpoint(state).handle, methods=["POST"])
