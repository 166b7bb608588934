"""Alertmanager's webhook receiver: a firing alert group becomes one Prefect event.

Prefect's own webhooks are a Prefect Cloud feature, so this small server stands in for them.
Alertmanager posts a notification per alert group; a Prefect automation (a trigger on the
training deployment in prefect.yaml) turns the event into a training run. Storm control is
layered: resolved notifications are ignored here, a repeat of a group already handled is
ignored here (and carries the same event id, which Prefect's triggers also skip), the
automation's `within` is a cool-down, and the deployment's concurrency limit cancels a run that
would start while one runs.

A notification starts training, so it is authenticated (alert_guard.py: Host, bearer token,
JSON only, size and time caps, all before the body is read): an unauthenticated forgery is
refused before it can reach the deduplication memory or the automation's cool-down. Nothing a
caller chooses is trusted further than it must be: the model is the receiver's own
(`--model`), alerts labelled for another model are ignored, the deduplication key hashes the
labels itself (not Alertmanager's `fingerprint`), a `startsAt` in the future is refused (it
could pre-empt a real alert's key), and only a few labels, cleaned and truncated, reach the
event and the logs.

Start it with `flywheel alert-receiver` (loopback by default; the token is generated in
`.flywheel/alert-receiver.token`, which infra/alertmanager/alertmanager.yml sends).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from flywheel.errors import ConfigError
from pipelines.alert_guard import Guard, Refused, allowed_hosts, printable, receiver_token
from pipelines.retrain_event import EVENT, emit, retrain_event

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9095
MAX_BODY_BYTES = 1 << 20
MAX_EVENT_BYTES = 64 << 10  # Prefect drops larger events after accepting them: refuse first
BODY_TIMEOUT_S = 10.0
MAX_ALERTS = 1000
CLOCK_SKEW = timedelta(minutes=5)
SEEN_KEYS = 10_000  # how many handled groups are remembered for deduplication
SHOWN_LABELS = ("alertname", "feature", "metric", "model_version")  # what reaches the event
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/=+-]")
_KEY_NAMESPACE = uuid.UUID("3f0b8c1e-5d2a-4c7e-9a61-0c2f7e4b9d10")


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(max_length=64)
    startsAt: AwareDatetime  # noqa: N815 (Alertmanager's field name)

    @field_validator("startsAt")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("startsAt is in the future")
        return value


class Notification(BaseModel):
    """Alertmanager's webhook payload, version 4 (the fields we use)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4096)  # noqa: N815
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_ALERTS)


def parse_notification(body: bytes) -> Notification:
    """The payload, or a ValueError whose one line names the field and what was expected."""
    try:
        return Notification.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValueError(
            f"{printable(where, 80)}: {printable(first['msg'], 120)} "
            "(expected an Alertmanager v4 webhook)"
        ) from None


def firing_for(notification: Notification, model_name: str) -> list[Alert]:
    """Firing alerts about this receiver's model (unlabelled ones count as ours)."""
    if notification.status != "firing":
        return []
    return [
        a for a in notification.alerts
        if a.status == "firing" and a.labels.get("model_name", model_name) == model_name
    ]


def event_for(notification: Notification, model_name: str) -> dict[str, Any] | None:
    """The Prefect event for a notification, or None when nothing should start.

    The id is derived from the group and its firing alerts' own label sets and start times, so
    the same group re-sent (repeat_interval, a retry, a second Alertmanager replica) yields the
    same event id. The model is always `model_name`, the receiver's own.
    """
    firing = firing_for(notification, model_name)
    if not firing:
        return None
    starts = sorted(f"{_labels_digest(a.labels)}@{a.startsAt.isoformat()}" for a in firing)
    key = uuid.uuid5(_KEY_NAMESPACE, "|".join([notification.groupKey, *starts]))
    shown = [_shown(a.labels) for a in firing]
    reason = "alert: " + "; ".join(sorted({_describe(labels) for labels in shown}))
    return retrain_event(
        model_name,
        reason,
        key,
        alertnames=sorted({labels.get("alertname", "unknown") for labels in shown}),
        group_key=notification.groupKey[:512],  # correlation only; never logged
        alerts=shown,
    )


def _labels_digest(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:32]


def _clean(value: str, limit: int = 64) -> str:
    """Only plain characters, at most `limit`: what fits a run parameter and a log line."""
    return _UNSAFE.sub("?", value[:limit])


def _shown(labels: dict[str, str]) -> dict[str, str]:
    return {k: _clean(labels[k]) for k in SHOWN_LABELS if k in labels}


def _describe(labels: dict[str, str]) -> str:
    """`FlywheelFeatureDrift feature=tenure model_version=3`: what fired, on what."""
    detail = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
    return f"{labels.get('alertname', 'unknown')} {detail}".strip()


@dataclass
class Receiver:
    """One process's memory of handled groups (bounded) and its outcome counter."""

    model_name: str
    seen: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict)
    counts: Any = None

    async def handle(self, notification: Notification) -> tuple[int, str]:
        event = event_for(notification, self.model_name)
        if event is None:
            if notification.status == "resolved" or not any(
                a.status == "firing" for a in notification.alerts
            ):
                return self._count(200, "resolved", "resolved notification ignored")
            return self._count(200, "other_model", f"no firing alert for {self.model_name}")
        if event["id"] in self.seen:
            return self._count(200, "duplicate", "group already handled")
        size = len(json.dumps(event, default=str))
        if size > MAX_EVENT_BYTES:  # refused here, not dropped by Prefect after a 202
            return self._count(413, "invalid", f"event of {size} bytes over {MAX_EVENT_BYTES}")
        await emit(event)
        self.seen[event["id"]] = None
        while len(self.seen) > SEEN_KEYS:
            self.seen.popitem(last=False)
        logger.info("emitted %s for %s", EVENT, printable(event["payload"]["reason"]))
        return self._count(202, "emitted", f"event {event['id']}: {event['payload']['reason']}")

    def _count(self, status: int, outcome: str, message: str) -> tuple[int, str]:
        self.counts.labels(outcome=outcome).inc()
        return status, message


def create_app(model_name: str, guard: Guard) -> Any:
    """The ASGI app: POST /alerts (guarded), GET /healthz, GET /metrics (its own counters)."""
    from prometheus_client import CollectorRegistry, Counter, make_asgi_app
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    registry = CollectorRegistry()
    counts = Counter(
        "flywheel_alert_receiver_notifications",
        "Alertmanager notifications by outcome (emitted, resolved, other_model, duplicate, "
        "invalid, unauthorized, error)",
        ["outcome"],
        registry=registry,
    )
    receiver = Receiver(model_name=model_name, counts=counts)

    async def alerts(request: Request) -> JSONResponse:
        try:
            guard.check_headers(request.headers)
            body = await guard.read_body(request.stream())
            notification = parse_notification(body)
        except Refused as exc:
            counts.labels(outcome="unauthorized" if exc.status in (401, 403) else "invalid").inc()
            logger.warning("refused a notification (%d): %s", exc.status, exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        except ValueError as exc:
            counts.labels(outcome="invalid").inc()
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            status, message = await receiver.handle(notification)
        except Exception as exc:  # Prefect unreachable: 503 makes Alertmanager retry
            counts.labels(outcome="error").inc()
            logger.error("could not send the event to Prefect: %s", printable(str(exc)))
            return JSONResponse({"error": f"Prefect API: {printable(str(exc))}"}, status_code=503)
        return JSONResponse({"error" if status >= 400 else "result": message}, status_code=status)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz),
            Mount("/metrics", make_asgi_app(registry)),
        ]
    )


def plain_logging() -> None:
    """This module logs through a plain handler, never the CLI's Rich one: Rich highlights
    every message with regular expressions (quadratic on a long label: minutes of CPU that
    also blocked SIGTERM) and would interpret markup in request text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def serve(host: str, port: int, model_name: str) -> None:
    """Run until interrupted. Needs PREFECT_API_URL: events go to a running Prefect server,
    and a token (FLYWHEEL_ALERT_TOKEN, or the token file, generated on a loopback bind)."""
    import uvicorn
    from prefect.settings import PREFECT_API_URL

    from flywheel.settings import settings

    if not (PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")):
        raise ConfigError(
            "PREFECT_API_URL is not set: the alert receiver sends events to a running Prefect "
            "server (e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    current = settings()
    guard = Guard(
        token=receiver_token(current, host),
        allowed_hosts=allowed_hosts(current, host),
        max_body_bytes=MAX_BODY_BYTES,
        body_timeout_s=BODY_TIMEOUT_S,
    )
    plain_logging()
    logger.info("alert receiver on http://%s:%s/alerts, events for %s (token from %s)", host,
                port, model_name, "FLYWHEEL_ALERT_TOKEN" if current.alert_token
                else current.alert_token_path)
    uvicorn.run(create_app(model_name, guard), host=host, port=port, log_level="warning",
                timeout_keep_alive=5, limit_concurrency=64)
