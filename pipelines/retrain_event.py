"""The one Prefect event that asks for retraining, whoever noticed the need.

Both ways into retraining send it: `flywheel alert-receiver` (a firing Prometheus alert) and
the monitoring flow (its own report past a threshold). One automation in prefect.yaml turns it
into a `flywheel-training/nightly` run, so there is one cool-down (the automation's `within`)
for both, instead of one per path.
"""

from __future__ import annotations

import uuid
from typing import Any

EVENT = "flywheel.alert.firing"


def retrain_event(
    model_name: str, reason: str, event_id: uuid.UUID, **payload: Any
) -> dict[str, Any]:
    """The event, as `prefect.events.Event` fields. `reason` becomes the run's parameter (the
    automation templates `event.payload.reason`) and its `flywheel.retrain_reason` tag."""
    return {
        "id": event_id,
        "event": EVENT,
        "resource": {
            "prefect.resource.id": f"flywheel.model.{model_name}",
            "prefect.resource.name": model_name,
        },
        "payload": {"reason": reason, **payload},
    }


async def emit(event: dict[str, Any]) -> None:
    """Send the event to the Prefect API now (not through Prefect's background queue), so a
    failure reaches the caller quickly (two reconnections, not Prefect's ten): the receiver
    answers 503 and Alertmanager retries; the flow's task fails and says so."""
    from prefect.events import Event, get_events_client

    async with get_events_client(reconnection_attempts=2) as client:
        await client.emit(Event(**event))
