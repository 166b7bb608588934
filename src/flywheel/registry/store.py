"""Connecting to MLflow and reading the registry's aliases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flywheel.registry.experiment_view import EXPERIMENT_TAGS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from flywheel.settings import Settings

CHAMPION = "champion"
PREVIOUS = "previous"
# Scored next to the champion, off the response path, by a running service (serving/shadow.py).
CHALLENGER = "challenger"
# Answers a growing share of live traffic while the controller watches it (registry/canary.py).
CANARY = "canary"
TAG_PREFIX = "flywheel."


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store; done here, at the edge, never at import.

    The project's own SQLite store is created from the stored schema on first use
    (`mlflow_db`), and gets its artifact paths moved along with the project, if it was
    copied or moved since they were written.
    """
    import mlflow

    from flywheel.registry.mlflow_db import seed_store
    from flywheel.registry.relocate import relocate_artifacts

    local = settings.local_store
    if local is not None:
        seed_store(local)
        relocate_artifacts(local, settings.mlflow_artifacts)

    mlflow.set_tracking_uri(settings.mlflow_uri)
    mlflow.set_registry_uri(settings.mlflow_uri)
    return mlflow.MlflowClient()


def ensure_experiment(client: MlflowClient, name: str, settings: Settings) -> str:
    """The model-training experiment for a registered model; locally, artifacts stay in the
    project."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        add_missing_tags(client, experiment)
        return str(experiment.experiment_id)
    location = settings.mlflow_artifacts if settings.mlflow_uri.startswith("sqlite") else None
    return str(client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS))


def add_missing_tags(client: MlflowClient, experiment: Any) -> None:
    """Experiments made before a tag existed get it on their next use."""
    for key, value in EXPERIMENT_TAGS.items():
        if key not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, key, value)


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            return None
        raise


def model_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"
