"""The OpenAPI document at `/docs.json` (and the Swagger page at `/` that reads it), completed.

BentoML documents only its own API methods: `/metadata`, `/feedback` and `/predict_image`,
mounted beside them, were missing. Its `info` block carried BentoML's README, five badge
images from shields.io and badgen.net (broken offline, and blocked by the page's
Content-Security-Policy anyway) and the version "None" of a service served from source. Here
the document BentoML builds is passed through and those parts are replaced: the page then
shows this service, its model and every route. The request body's example comes from the
spec itself (`schema.example_record`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

PATH = "/docs.json"
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_METADATA = {
    "type": "object",
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string", "description": "registry version serving now"},
        "trained_at": {"type": "string", "nullable": True},
        "test_metrics": {"type": "object", "additionalProperties": {"type": "number"}},
        "git_commit": {"type": "string"},
        "data_md5": {"type": "string"},
        "source": {"type": "string", "enum": ["registry", "bento"]},
        "features": {"type": "array", "items": {"type": "string"},
                     "description": "the request fields this model takes"},
    },
}


def _answers(ok: dict[str, Any], **refusals: str) -> dict[str, Any]:
    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": schema}}}

    return {"200": {"description": "OK", **body(ok)},
            **{code: {"description": why, **body(_ERROR)} for code, why in refusals.items()}}


def _label(classes: list[str]) -> dict[str, Any]:
    return {
        "type": "object", "required": ["request_id", "label"], "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "description": "X-Request-ID of a /predict answer"},
            "label": {"type": "string", "enum": classes, "description": "the true class"},
        },
    }


_IMAGE = {"type": "string", "format": "binary", "description": "a PNG or JPEG file"}
_IMAGE_ANSWER = {
    "type": "array", "description": "one answer per image, in the order sent",
    "items": {"type": "object", "properties": {
        "prediction": {"type": "string", "description": "the class"},
        "probabilities": {"type": "object", "additionalProperties": {"type": "number"},
                          "description": "per class"},
        **{key: {"type": "string"} for key in ("model_name", "model_version", "git_commit",
                                                "data_md5")},
    }},
}


def _image_route() -> dict[str, Any]:
    """`/predict_image` (serving/image_request.py): an image champion's uploads, form or JSON."""
    encoded = {"type": "object", "required": ["image"],
               "properties": {"image": {"type": "string", "format": "byte"}}}
    return {"post": {
        "summary": "an image champion's answer per uploaded image (field `image`, repeatable)",
        "security": [{"bearer": []}], "tags": ["Flywheel"],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                               "properties": {"image": _IMAGE}}},
            "application/json": {"schema": {"oneOf": [
                encoded, {"type": "array", "items": encoded, "minItems": 1}]}},
        }},
        "responses": _answers(_IMAGE_ANSWER, **{
            "400": "the champion takes records (POST them to /predict), or a malformed body",
            "401": "predict token missing or wrong",
            "403": "the Host header is not this service's",
            "408": "the body did not arrive within the time limit",
            "413": "an image over image.max_bytes, or the body over its limit",
            "415": "a body that is neither a multipart form nor JSON",
            "422": "no field `image`, or one that is not an image of the spec's size, "
                   "channels and mode",
            "503": "no model to serve, and why"}),
    }}


def routes_beside_bentoml(classes: list[str]) -> dict[str, Any]:
    """The paths of `/metadata`, `/feedback` and `/predict_image` (mounted beside BentoML's
    API methods)."""
    label = _label(classes)
    return {
        "/predict_image": _image_route(),
        "/metadata": {"get": {
            "summary": "the model serving now: version, lineage, test metrics, request fields",
            "security": [{"bearer": []}], "tags": ["Flywheel"],
            "responses": _answers(_METADATA, **{"401": "predict token missing or wrong",
                                               "503": "no model to serve, and why"}),
        }},
        "/feedback": {"post": {
            "summary": "true labels of answered requests, by their X-Request-ID",
            "security": [{"bearer": []}], "tags": ["Flywheel"],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"oneOf": [label, {"type": "array", "items": label, "minItems": 1}]},
            }}},
            "responses": _answers(
                {"type": "object", "properties": {"accepted": {"type": "integer"}}},
                **{"401": "feedback token missing or wrong",
                   "404": "request id not in the inference log; nothing stored",
                   "422": "label not one of the classes, or a malformed body; nothing stored"}),
        }},
    }


def complete(document: dict[str, Any], model: Any, model_name: str,
             classes: list[str]) -> dict[str, Any]:
    """BentoML's document with this service's info block and the routes it left out."""
    serving = (f"Serving **{model.name}** version {model.version} (git {model.git_commit[:12]}, "
               f"data {model.data_md5[:12]})." if model is not None else
               f"No model loaded yet: `/readyz` says why ({model_name}@champion).")
    document["info"] = {
        "title": f"Flywheel: {model_name}",
        "version": version("flywheel"),
        "description": f"{serving} Send records to `/predict` (an image champion's images "
                       "to `/predict_image`); `/metadata` describes the model; `/feedback` "
                       "takes true labels (feedback token).",
    }
    document.setdefault("paths", {}).update(routes_beside_bentoml(classes))
    document.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer"}
    return document


class OpenApiDocument:
    """ASGI middleware: `GET /docs.json` is BentoML's answer, completed; the rest passes."""

    def __init__(self, app: Any, *, state: Any, classes: Callable[[], list[str]]) -> None:
        self.app = app
        self.state = state  # ServingState: which model serves now
        self.classes = classes

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(complete(json.loads(body), self.state.holder.current,
                                       self.state.model_name, self.classes())).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
