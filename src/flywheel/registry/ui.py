"""Opening MLflow's UI on the runs table, with metric columns, instead of its GenAI view.

MLflow 3.17's UI ignores the `mlflow.experimentKind` tag: its `useExperimentKind` hook takes
the kind from the "GenAI / Model training" switch whenever the workflow-type feature flag is
on (hard-wired on in the shipped bundle), and the switch starts at "genai" unless the URL says
`?workflowType=machine_learning` or the browser stored a click on it. No server setting
changes that. Its runs table starts with the Source, Models and Dataset columns only; a URL
with `viewStateShareKey=KEY` loads a view (columns, sort, ...) from the experiment tag
`mlflow.sharedViewState.KEY`. So every experiment carries such a view, and `flywheel ui`
prints the link that opens both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.registry.experiment_view import VIEW_KEY

if TYPE_CHECKING:
    from flywheel.settings import Settings


def runs_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table, in "Model training" mode, with the metric columns shown."""
    query = urlencode({"viewStateShareKey": VIEW_KEY, "workflowType": "machine_learning"})
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def experiment_id(settings: Settings, name: str) -> str:
    """The id of the experiment the pipeline logs `name`'s runs to (tagged with the view)."""
    missing = RegistryError(
        f"no experiment {name!r} in {settings.mlflow_uri}; run `flywheel run` first, "
        "or pass --model NAME"
    )
    if settings.local_store is not None and not settings.local_store.is_file():
        raise missing  # looking would create an empty store
    client = store.connect(settings)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise missing
    store.add_missing_tags(client, experiment)
    return str(experiment.experiment_id)


def server_command(settings: Settings, host: str, port: int) -> list[str]:
    """`mlflow server` over the project's store, bound to `host` only."""
    import sys

    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", settings.mlflow_uri,
        "--host", host, "--port", str(port),
    ]  # fmt: skip
