"""The one MLflow model that is registered and served: preprocessing and estimator together.

A table's model takes its feature columns; an image model (images/model.py) takes one `binary`
column, `image`, holding each image's encoded bytes (PNG or JPEG, as a file holds them), and
decodes it exactly as training did.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from flywheel.data.io import feature_frame
from flywheel.data.rows import require_numbers
from flywheel.data.spec import DatasetSpec, FeatureSpec
from flywheel.images.model import IMAGE_COLUMN, ImageModel
from flywheel.model import Model, load_model

# What the pickled TabularModel needs to load; listed explicitly because MLflow's inference
# of requirements costs 11-19 s a model here.
SPEC_ARTIFACT = "spec"  # artifact key of the dataset spec logged with every model
RUNTIME_PACKAGES = ("scikit-learn", "torch", "pandas", "numpy", "pydantic", "pyyaml", "pillow")


class FlywheelPyfunc(PythonModel):
    """Answers a frame of raw records with `prediction` and `probability` columns."""

    def load_context(self, context: Any) -> None:
        self.model: Model = load_model(Path(context.artifacts["model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        # The signature lets any numeric column through (ints and floats alike), so text in
        # one is refused here rather than imputed as if it were missing.
        if not isinstance(self.model, ImageModel):
            require_numbers(self.model.spec, model_input)
        return self.model.predict(model_input)


def model_signature(spec: DatasetSpec, output: pd.DataFrame) -> Any:
    """Input columns typed so that a frame as a user holds it is accepted.

    MLflow refuses an int64 column declared `double` ("Can not safely convert int64 to
    float64") and a float column declared `long`, yet a user's numeric feature may be either
    (a CSV column with a blank reads as float). Numeric features are therefore declared
    `Any` and checked by `predict`; text categories stay `string`, and categories that read
    as numbers or booleans (a frame holds them as such) are `Any` too.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

    def column(feature: FeatureSpec) -> ColSpec:
        typed = DataType.string if _text_categories(feature) else AnyType()
        return ColSpec(typed, feature.name)

    outputs = infer_signature(output).inputs  # the output frame's own columns and types
    if spec.is_image:
        return ModelSignature(inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]),
                              outputs=outputs)
    return ModelSignature(inputs=Schema([column(f) for f in spec.features]), outputs=outputs)


def _text_categories(feature: FeatureSpec) -> bool:
    if feature.kind != "categorical":
        return False
    return not all(_reads_as_number(c) for c in feature.categories or [])


def _reads_as_number(text: str) -> bool:
    if text in ("True", "False"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def log_pyfunc(model: Model, model_file: Path, sample: pd.DataFrame) -> Any:
    """Log under the active run with a signature and input example built from real rows
    (an image model's: rows whose `image` column holds encoded image bytes)."""
    example = (sample[[IMAGE_COLUMN]].head(5).reset_index(drop=True)
               if isinstance(model, ImageModel) else feature_frame(model.spec, sample.head(5)))
    import mlflow.pyfunc

    from flywheel.data.spec import save_spec

    # The version carries its own dataset spec: serving takes its request schema from it.
    spec_file = model_file.with_name(f"{model_file.stem}.{SPEC_ARTIFACT}.yaml")
    save_spec(model.spec, spec_file)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=FlywheelPyfunc(),
        artifacts={"model": str(model_file), SPEC_ARTIFACT: str(spec_file)},
        signature=model_signature(model.spec, model.predict(example)),
        input_example=example,
        pip_requirements=[f"{pkg}=={version(pkg)}" for pkg in RUNTIME_PACKAGES],
        metadata={"positive_class": model.spec.positive_class, "candidate": model.candidate},
    )
