"""Where things are and which services to talk to: paths, tracking URI, Prefect.

Settings come from `FLYWHEEL_*` environment variables with local defaults that need no server
(docs/architecture.md, principle 3). Tunables are not here: they live in params.yaml.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", frozen=True)

    root: Path = Field(default_factory=Path.cwd, description="project root (holds params.yaml)")
    params_file: Path = Path("params.yaml")
    artifacts_dir: Path = Path("artifacts")
    inference_log_dir: Path = Field(
        default=Path("logs/inference"), description="where the service appends its Parquet log"
    )
    monitor_dir: Path = Field(
        default=Path("logs/monitor"), description="latest drift/decay report (JSON and HTML)"
    )
    feedback_dir: Path = Field(
        default=Path("logs/feedback"), description="ground-truth labels joined to predictions"
    )
    serve_model: str | None = Field(
        default=None, description="registered model to serve (default: promote.model_name)"
    )
    serve_spec: Path | None = Field(
        default=None,
        description="dataset spec of the champion being served (request schema); "
        "`flywheel serve` sets it from the champion's own verified files",
    )
    api_token: SecretStr | None = Field(
        default=None, description="bearer token of the predict scope (/predict, /metadata)"
    )
    tokens_file: Path = Field(
        default=Path(".flywheel/tokens.json"),
        description="local feedback/admin tokens, generated at first use (flywheel.tokens)",
    )
    allowed_hosts: str = Field(
        default="",
        description="comma-separated Host names (or name:port) the service answers writes for, "
        "besides loopback and the address a request arrived on",
    )
    pii_salt: SecretStr | None = Field(
        default=None, description="secret salt for hashing personal fields in the inference log"
    )
    signing_key_file: Path = Field(
        default=Path(".flywheel/signing.key"),
        description="keys that sign and verify registered versions; keep outside the registry",
    )
    alert_token: SecretStr | None = Field(
        default=None, description="bearer token Alertmanager sends to `flywheel alert-receiver`"
    )
    alert_token_file: Path = Field(
        default=Path(".flywheel/alert-receiver.token"),
        description="where the receiver's token is read (generated there on a loopback bind)",
    )
    alert_allowed_hosts: str = Field(
        default="",
        description="comma-separated Host names the receiver answers besides loopback ones",
    )
    lock_timeout_s: float = Field(
        default=0.0, ge=0, description="how long a second run waits for the project lock"
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; falls back to MLFLOW_TRACKING_URI, then a SQLite "
        "store under the project",
    )

    dask_address: str | None = Field(
        default=None,
        description="tcp://HOST:PORT of a Dask scheduler: candidate fits run as tasks on its "
        "workers (training/dask_backend.py); unset: `train.executor` decides",
    )

    dvc_experiment: str | None = Field(
        default=None,
        validation_alias="DVC_EXP_NAME",
        description="set by `dvc exp run` for the stages it runs: the experiment's name",
    )

    @cached_property
    def params_path(self) -> Path:
        return self._resolve(self.params_file)

    @cached_property
    def artifacts(self) -> Path:
        return self._resolve(self.artifacts_dir)

    @cached_property
    def inference_log(self) -> Path:
        return self._resolve(self.inference_log_dir)

    @cached_property
    def monitor(self) -> Path:
        return self._resolve(self.monitor_dir)

    @cached_property
    def feedback(self) -> Path:
        return self._resolve(self.feedback_dir)

    @cached_property
    def signing_key(self) -> Path:
        return self._resolve(self.signing_key_file)

    @cached_property
    def alert_token_path(self) -> Path:
        return self._resolve(self.alert_token_file)

    @cached_property
    def mlflow_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.root / 'mlflow.db'}"

    @cached_property
    def mlflow_artifacts(self) -> str:
        """Artifact root for experiments created against a local SQLite store."""
        return (self.root / "mlruns").as_uri()

    @property
    def token(self) -> str | None:
        """The API token; an empty FLYWHEEL_API_TOKEN counts as none."""
        return self.api_token.get_secret_value() or None if self.api_token else None

    @cached_property
    def artifacts_in_project(self) -> str:
        """The artifacts folder relative to the root, as DVC and the bento build need it."""
        from flywheel.errors import ConfigError

        try:
            return self.artifacts.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise ConfigError(
                f"FLYWHEEL_ARTIFACTS_DIR={self.artifacts_dir} is outside the project "
                f"{self.root}; DVC and the bento build read only inside it"
            ) from None
    @cached_property
    def local_store(self) -> Path | None:
        """The project's own SQLite store (the default), whose artifacts move with the project."""
        if self.mlflow_uri != f"sqlite:///{self.root / 'mlflow.db'}":
            return None
        return self.root / "mlflow.db"

    def step_dir(self, step: str) -> Path:
        return self.artifacts / step

    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path


def settings() -> Settings:
    """Read the environment now; called at the edges, never at import."""
    return Settings()
