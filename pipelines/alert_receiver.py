"""Alertmanager's webhook receiver: a firing alert group becomes one Prefect event.

Prefect's own webhooks are a Prefect Cloud feature, so this small server stands in for them.
Alertmanager posts a notification per alert group; a Prefect automation (a trigger on the
training deployment in prefect.yaml) turns the event into a training run. Storm control is
layered: resolved notifications are ignored here, a repeat of a group already handled is
ignored here (and carries the same event id, which Prefect's triggers also skip), the
automation's `within` is a cool-down, and the deployment's concurrency limit cancels a run that
would start while one runs.

Start it with `flywheel alert-receiver` (loopback by default; put it behind your network
policy if Alertmanager runs elsewhere).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.errors import ConfigError
from pipelines.retrain_event import EVENT, emit, retrain_event

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9095
MAX_BODY_BYTES = 1 << 20
SEEN_KEYS = 10_000  # how many handled groups are remembered for deduplication
_KEY_NAMESPACE = uuid.UUID("3f0b8c1e-5d2a-4c7e-9a61-0c2f7e4b9d10")


class Alert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # noqa: N815 (Alertmanager's field name)
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook payload, version 4 (the fields we use)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1)  # noqa: N815
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1)


def parse_notification(body: bytes) -> Notification:
    """The payload, or a ValueError whose one line names the field and what was expected."""
    try:
        return Notification.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValueError(f"{where}: {first['msg']} (expected an Alertmanager v4 webhook)") from None


def event_for(notification: Notification, model_name: str) -> dict[str, Any] | None:
    """The Prefect event for a notification, or None when nothing should start.

    The id is derived from the group and its firing alerts' start times, so the same group
    re-sent (repeat_interval, a retry, a second Alertmanager replica) yields the same event id.
    """
    firing = [alert for alert in notification.alerts if alert.status == "firing"]
    if notification.status != "firing" or not firing:
        return None
    names = sorted({alert.labels.get("alertname", "unknown") for alert in firing})
    starts = sorted(f"{a.fingerprint}@{a.startsAt}" for a in firing)
    key = uuid.uuid5(_KEY_NAMESPACE, "|".join([notification.groupKey, *starts]))
    model = firing[0].labels.get("model_name", model_name)
    reason = "alert: " + "; ".join(sorted({_describe(a) for a in firing}))
    return retrain_event(
        model,
        reason,
        key,
        alertnames=names,
        group_key=notification.groupKey,
        alerts=[a.labels for a in firing],
    )


def _describe(alert: Alert) -> str:
    """`FlywheelFeatureDrift feature=tenure model_version=3`: what fired, on what."""
    detail = " ".join(
        f"{k}={v}"
        for k, v in sorted(alert.labels.items())
        if k in {"feature", "metric", "model_version"}
    )
    return f"{alert.labels.get('alertname', 'unknown')} {detail}".strip()


@dataclass
class Receiver:
    """One process's memory of handled groups (bounded) and its outcome counter."""

    model_name: str
    seen: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict)
    counts: Any = None

    async def handle(self, notification: Notification) -> tuple[int, str]:
        event = event_for(notification, self.model_name)
        if event is None:
            return self._count(200, "resolved", "resolved notification ignored")
        if event["id"] in self.seen:
            return self._count(200, "duplicate", "group already handled")
        await emit(event)
        self.seen[event["id"]] = None
        while len(self.seen) > SEEN_KEYS:
            self.seen.popitem(last=False)
        logger.info("emitted %s for %s", EVENT, event["payload"]["reason"])
        return self._count(202, "emitted", f"event {event['id']}: {event['payload']['reason']}")

    def _count(self, status: int, outcome: str, message: str) -> tuple[int, str]:
        self.counts.labels(outcome=outcome).inc()
        return status, message


def create_app(model_name: str) -> Any:
    """The ASGI app: POST /alerts, GET /healthz, GET /metrics (its own counters)."""
    from prometheus_client import CollectorRegistry, Counter, make_asgi_app
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    registry = CollectorRegistry()
    counts = Counter(
        "flywheel_alert_receiver_notifications",
        "Alertmanager notifications by outcome (emitted, resolved, duplicate, invalid, error)",
        ["outcome"],
        registry=registry,
    )
    receiver = Receiver(model_name=model_name, counts=counts)

    async def alerts(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            counts.labels(outcome="invalid").inc()
            return JSONResponse({"error": f"body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        try:
            notification = parse_notification(body)
        except ValueError as exc:
            counts.labels(outcome="invalid").inc()
            return JSONResponse({"error": str(exc)}, status_code=422)
        try:
            status, message = await receiver.handle(notification)
        except Exception as exc:  # Prefect unreachable: 503 makes Alertmanager retry
            counts.labels(outcome="error").inc()
            logger.error("could not send the event to Prefect: %s", exc)
            return JSONResponse({"error": f"Prefect API: {exc}"}, status_code=503)
        return JSONResponse({"result": message}, status_code=status)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz),
            Mount("/metrics", make_asgi_app(registry)),
        ]
    )


def serve(host: str, port: int, model_name: str) -> None:
    """Run until interrupted. Needs PREFECT_API_URL: events go to a running Prefect server."""
    import uvicorn
    from prefect.settings import PREFECT_API_URL

    if not (PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")):
        raise ConfigError(
            "PREFECT_API_URL is not set: the alert receiver sends events to a running Prefect "
            "server (e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    logger.info("alert receiver on http://%s:%s/alerts, events for %s", host, port, model_name)
    uvicorn.run(create_app(model_name), host=host, port=port, log_level="warning")
