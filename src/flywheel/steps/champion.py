"""The current champion scored on the candidate's test split, so the gate compares like for like.

Evaluate scores it for the report; promote scores it again only when the alias moved since.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.errors import RegistryError
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET


def score_champion(ctx: StepContext, test: pd.DataFrame) -> tuple[str | None, np.ndarray | None]:
    """The champion's version and its probabilities on `test`; (None, None) without one."""
    from flywheel.registry import store
    from flywheel.registry.integrity import IntegrityError, load_verified

    name = ctx.model_name
    client = store.connect(ctx.settings)
    current = store.version_by_alias(client, name, store.CHAMPION)
    if current is None:
        return None, None
    uri = store.model_uri(name, current.version)
    try:
        served = load_verified(current)  # an altered artifact is refused before it is unpickled
        # Our own model inside the pyfunc scores the split directly: MLflow's schema check of
        # the same frame went value by value (~3 s per 200k rows).
        answer = served.unwrap_python_model().model.predict(test.drop(columns=TARGET))
    except IntegrityError:
        raise
    except Exception as exc:  # any failure here means the two cannot be compared
        raise RegistryError(
            f"champion {uri} cannot score this test split ({type(exc).__name__}: {exc}); if "
            "the dataset changed shape, register under a new promote.model_name"
        ) from exc
    return str(current.version), answer["probability"].to_numpy(dtype="float64")
