"""The one MLflow model that is registered and served: preprocessing and estimator together."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from flywheel.data.io import feature_frame
from flywheel.model import TabularModel, load_model

# What the pickled TabularModel needs to load; listed explicitly because MLflow's inference
# of requirements costs 11-19 s a model here (STACK-NOTES.md).
SPEC_ARTIFACT = "spec"  # artifact key of the dataset spec logged with every model
RUNTIME_PACKAGES = ("scikit-learn", "torch", "pandas", "numpy", "pydantic", "pyyaml")


class FlywheelPyfunc(PythonModel):
    """Answers a frame of raw records with `prediction` and `probability` columns."""

    def load_context(self, context: Any) -> None:
        self.model: TabularModel = load_model(Path(context.artifacts["model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.model.predict(model_input)


def log_pyfunc(model: TabularModel, model_file: Path, sample: pd.DataFrame) -> Any:
    """Log under the active run with a signature and input example built from real rows."""
    from mlflow.models import infer_signature

    example = feature_frame(model.spec, sample.head(5))
    signature = infer_signature(example, model.predict(example))
    import mlflow.pyfunc

    from flywheel.data.spec import save_spec

    # The version carries its own dataset spec: serving takes its request schema from it.
    spec_file = model_file.with_name(f"{model_file.stem}.{SPEC_ARTIFACT}.yaml")
    save_spec(model.spec, spec_file)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=FlywheelPyfunc(),
        artifacts={"model": str(model_file), SPEC_ARTIFACT: str(spec_file)},
        signature=signature,
        input_example=example,
        pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in RUNTIME_PACKAGES],
        metadata={"positive_class": model.spec.positive_class, "candidate": model.candidate},
    )
