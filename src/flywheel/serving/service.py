"""The BentoML service: `POST /predict`, `POST /predict_image` (an image champion's uploads),
`POST /feedback`, `GET /metadata`, readiness, metrics.

Start it with `flywheel serve` (or `bentoml serve flywheel.serving.service:Flywheel`). This is
the edge where BentoML needs configuration at class definition (workers, an input spec), so
importing this module reads settings, params.yaml and a dataset spec file (never the registry)
and picks the served model's own log folders (`flywheel.model_logs`);
each worker resolves and verifies its champion once, when it starts, and polls the alias from
there. Each loaded model carries its own request schema (serving/schema_swap.py): a request is
validated against, and answered by, the model serving when it arrives; the spec read at import
is only the schema of a model that carries none. API methods are a few lines calling the
library.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import bentoml
from bentoml.exceptions import ServiceUnavailable
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from flywheel.config import load_params
from flywheel.data.task import task_of
from flywheel.identity import registered_model
from flywheel.model_logs import model_logs
from flywheel.serving import schema
from flywheel.serving.batching import GreedyBatcher
from flywheel.serving.canary import CanaryRoute
from flywheel.serving.canary_metrics import routed_metrics
from flywheel.serving.feedback import feedback_route, promoted_at
from flywheel.serving.gate import PredictGate
from flywheel.serving.guard import RequestGuard, parse_allowed_hosts
from flywheel.serving.header_timeout import limit_header_time
from flywheel.serving.heap import settle, time_pauses
from flywheel.serving.image_request import image_route
from flywheel.serving.index import LocalIndex
from flywheel.serving.inference_log import InferenceLog
from flywheel.serving.metrics import serving_metrics
from flywheel.serving.openapi import OpenApiDocument
from flywheel.serving.parent_watch import exit_with_parent
from flywheel.serving.quiet import quiet_rejections
from flywheel.serving.registry_watch import (
    LoadedModel,
    RegistryWatcher,
    bundled_or_refuse,
    request_spec,
)
from flywheel.serving.request_io import Validated, json_response, records_input
from flywheel.serving.request_schema import RequestSchema
from flywheel.serving.route_labels import fold_unknown_routes
from flywheel.serving.schema_swap import SchemaSwap
from flywheel.serving.scoring import score
from flywheel.serving.shadow import start_shadow
from flywheel.serving.shadow_metrics import shadow_metrics
from flywheel.serving.shadow_pipe import ChallengerSetup
from flywheel.serving.state import ServingState
from flywheel.settings import settings
from flywheel.tokens import scope_tokens

logger = logging.getLogger(__name__)
# Each registry load downloads the model; its per-file progress bars would flood the log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

_SETTINGS = settings()
_PARAMS = load_params(_SETTINGS.params_path)
SERVE = _PARAMS.serve
MODEL_NAME = registered_model(_SETTINGS, _PARAMS, _SETTINGS.serve_model)
LOGS = model_logs(_SETTINGS, MODEL_NAME, _PARAMS.promote.model_name)  # this model's folders only
SPEC = request_spec(_SETTINGS, _SETTINGS.root / _PARAMS.data.spec)  # no registry at import
SCHEMAS = SchemaSwap(SPEC, SERVE.max_string_chars, SERVE.schema_change)
# Which requests meet the canary: params' canary.route_by (request_id without a canary section).
_CANARY_ROUTE_BY = _PARAMS.canary.route_by if _PARAMS.canary else "request_id"
# `bentoml serve ... --arg workers=N` (what `flywheel serve --workers` passes) overrides params.
_WORKERS = int(getattr(bentoml.use_arguments(), "workers", None) or SERVE.workers)

STATE = ServingState(
    model_name=MODEL_NAME,
    max_body_bytes=SERVE.max_body_bytes,
    max_batch_size=SERVE.max_batch_size,
    sample_rate=SERVE.inference_log_sample_rate,
    reload_interval_s=SERVE.reload_interval_s,
    max_json_depth=SERVE.max_json_depth,
    body_timeout_s=SERVE.request_body_timeout_s,
)
# The inference log's options: this worker's log and its shadow challenger's process's.
_LOG_OPTIONS: dict[str, Any] = {
    "directory": LOGS.inference,
    "roll_rows": SERVE.inference_log_roll_rows,
    "roll_seconds": SERVE.inference_log_roll_seconds,
    "queue_size": SERVE.inference_log_queue_size,
    "pii_salt": _SETTINGS.pii_salt.get_secret_value() if _SETTINGS.pii_salt else None,
    "max_age_s": SERVE.inference_log_max_age_days * 86400,
    "max_bytes": SERVE.inference_log_max_bytes,
}
TOKENS = scope_tokens(_SETTINGS.root, _SETTINGS.tokens_file)
ROUTES = ("/", "/predict", "/predict_batch", "/predict_image", "/feedback", "/metadata", "/livez",
          "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json")
# Both act on classes BentoML and uvicorn build from later in this worker (see their modules).
fold_unknown_routes(ROUTES, prefixes=("/static_content/", "/assets/"))
limit_header_time(SERVE.header_timeout_s)


def _answering() -> tuple[LoadedModel | None, RequestSchema]:
    """The model serving now and its request schema, from one read of the holder."""
    model = STATE.holder.current
    if model is None or model.request_schema is None:
        return model, SCHEMAS.fallback
    return model, model.request_schema


RecordsInput = records_input(_answering)
Records = schema.records_type(SCHEMAS.fallback.record)  # for the annotations only
Answer = schema.prediction_type(SPEC)  # the response schema of /docs.json, per task


async def _metadata(_: Request) -> JSONResponse:
    model = STATE.holder.current
    if model is None:
        return JSONResponse({"error": STATE.no_model_message()}, status_code=503)
    return JSONResponse(model.metadata())


@bentoml.service(
    name="flywheel",
    workers=_WORKERS,
    traffic={"timeout": 60},
    # The access log costs ~25% of throughput here; request metrics and the inference log
    # already record every request.
    logging={"access": {"enabled": False}},
    # OpenTelemetry spans (five a request, exported nowhere) cost ~1.5 ms of a one-record
    # request; the gate's X-Request-ID already traces each prediction.
    tracing={"excluded_urls": ["/predict", "/predict_batch"]},
)
class Flywheel:
    """Serves the registry's champion; hot-swaps it when the alias moves."""

    def __init__(self) -> None:
        exit_with_parent()
        quiet_rejections()
        STATE.metrics = serving_metrics()
        time_pauses(lambda generation, seconds: STATE.metrics.gc_pause.labels(
            generation=str(generation)).observe(seconds))
        STATE.inference_log = InferenceLog(spec=SPEC, metrics=STATE.metrics, **_LOG_OPTIONS)
        STATE.inference_log.start()
        self.batcher = GreedyBatcher(_score, SERVE.max_batch_size,
                                     observe=STATE.metrics.batch_requests.observe)
        self.watcher: RegistryWatcher | None = None
        bundled = bundled_or_refuse() if _SERVICE.bento is not None else None
        if bundled is not None:
            # A bento carries its model: no registry access needed, nothing to hot-swap.
            bundled = SCHEMAS.prepare(bundled, None)
            self._swapped("success", bundled, None)
            STATE.holder.current = bundled
            return
        self.watcher = RegistryWatcher(
            STATE.holder, _connect, STATE.model_name, SERVE.reload_interval_s,
            on_reload=self._swapped, prepare=SCHEMAS.prepare)
        self.watcher.check_once()  # ready at once when a champion exists
        self.watcher.start()
        STATE.shadow = start_shadow(
            ChallengerSetup(STATE.model_name, SERVE.reload_interval_s, SPEC,
                            SERVE.max_string_chars, SERVE.schema_change, _LOG_OPTIONS),
            _connect, shadow_metrics(), sample_rate=SERVE.shadow_sample_rate,
            queue_size=SERVE.shadow_queue_size)
        STATE.canary = CanaryRoute(_connect, STATE.model_name, SERVE.reload_interval_s,
                                   SCHEMAS.schema_of, routed_metrics(), _CANARY_ROUTE_BY)
        STATE.canary.start()

    @staticmethod
    def _swapped(outcome: str, model: LoadedModel | None, previous: str | None) -> None:
        STATE.metrics.reloads.labels(outcome=outcome).inc()
        if model is not None:
            if model.request_schema is not None:  # its columns in the inference log too
                STATE.inference_log.use_spec(model.request_schema.spec)
            STATE.metrics.serving(model.name, model.version, previous,
                                  promoted_at(model.trained_at))
            settle()  # the new model's objects out of the collector's way (heap.py)

    def __is_ready__(self) -> bool:
        return STATE.holder.ready

    @bentoml.on_shutdown
    def _stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if STATE.shadow is not None:
            STATE.shadow.stop()
        if STATE.canary is not None:
            STATE.canary.stop()
        STATE.inference_log.close()

    @bentoml.api(route="/predict", input_spec=RecordsInput)
    async def predict(self, records: Records, /) -> list[Answer]:  # type: ignore[valid-type]
        """The answer per record (class and probabilities, or the value), with lineage.

        Requests that arrive while the model is busy are scored together (GreedyBatcher);
        a lone request is scored at once. The answer is sent as ready JSON bytes
        (request_io); the annotation documents its schema.
        """
        return json_response(  # type: ignore[return-value]
            await self.batcher(records, _model_of(records)))

    @bentoml.api(route="/predict_batch", input_spec=RecordsInput)
    def predict_batch(self, records: Records, /) -> list[Answer]:  # type: ignore[valid-type]
        """Same answers as /predict for a list longer than serve.max_batch_size, in one call."""
        return json_response(_score(records, _model_of(records)))  # type: ignore[return-value]


def _model_of(records: list[Any]) -> LoadedModel | None:
    """The model the records were validated for (the one serving, for an in-process call)."""
    return records.model if isinstance(records, Validated) else STATE.holder.current


def _score(records: list[Any], model: LoadedModel | None) -> list[dict[str, Any]]:
    if model is None:
        raise ServiceUnavailable(STATE.no_model_message())
    if STATE.canary is None:  # a bento: its one model answers everything
        return _score_with(model, records)
    return STATE.canary.answer(model, records, _score_with, STATE.holder.current)


def _score_with(model: LoadedModel, records: list[Any]) -> list[dict[str, Any]]:
    spec = model.request_schema.spec if model.request_schema else SPEC
    return score(model, spec, records, STATE.metrics)


def _connect() -> Any:
    from flywheel.registry.store import connect

    return connect(_SETTINGS)


# The decorator turned the class into a bentoml Service; typed as such for the calls below.
_SERVICE: Any = Flywheel
# Outermost first: Host, scope and content type are checked before any body is read.
_SERVICE.add_asgi_middleware(RequestGuard, tokens=TOKENS,
                             allowed_hosts=parse_allowed_hosts(_SETTINGS.allowed_hosts),
                             on_reject=STATE.count_invalid)
_SERVICE.add_asgi_middleware(LocalIndex)
_SERVICE.add_asgi_middleware(PredictGate, state=STATE)
_SERVICE.add_asgi_middleware(OpenApiDocument, state=STATE, classes=lambda: _answering()[1].spec
                             .classes)
_SERVICE.mount_asgi_app(Starlette(routes=[
    Route("/metadata", _metadata, methods=["GET"]),
    image_route(STATE),
    feedback_route(STATE, lambda: task_of(_answering()[1].spec), LOGS,
                   SERVE.feedback_max_files, SERVE.inference_log_max_age_days * 86400),
]))
