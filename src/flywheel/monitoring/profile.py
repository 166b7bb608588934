"""The reference profile: what the training split looked like to a registered version.

Computed at promotion from the training split and the candidate's answers on held-out rows
(per task: the positive-class probability, the predicted class, or the predicted value), and
logged with the version's run as `monitoring/reference_profile.json`, so drift is always
measured against the model that is actually serving. Each feature keeps the bins its window is
counted into: quantile edges for numerics (plus a quantile grid and the standard deviation, for
Wasserstein), the frequent categories plus one pooled "other" bin (rare and unseen levels) for
categoricals, and a last "missing" bucket.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flywheel.config import MonitorParams
from flywheel.data.answers import MONITORED_COLUMN
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import Task, task_of
from flywheel.errors import RegistryError
from flywheel.monitoring.distances import quantile_grid, shares
from flywheel.monitoring.levels import good_turing_unseen, split_counts

ARTIFACT = "monitoring/reference_profile.json"
# 2: categorical levels pooled into "other" (chosen and counted on split rows), held-out score
# reference with its row count, personal features excluded. Format 1 is still read: its
# categoricals are unpooled (unseen share 0) and its score rows are the training rows.
FORMAT = 2
READABLE = (1, 2)
PII_REASON = "personal data (pii: true): the inference log holds it hashed or not at all"
QUANTILE_POINTS = 100
QUANTILE_ROWS = 100_000


def numeric_counts(edges: list[float], values: np.ndarray) -> np.ndarray:
    """Rows per bin (-inf, e1], (e1, e2], ..., (e_last, inf), then missing (NaN) rows.

    One vectorised `<=` count per edge (NaN compares false) and differences of those running
    totals: with ten-odd edges that is about ten times cheaper than `searchsorted` + `bincount`
    over a million rows (a binary search per row), the largest cost of a drift pass.
    """
    values = np.asarray(values, dtype="float64")
    missing = int(np.count_nonzero(np.isnan(values)))
    at_most = [np.count_nonzero(values <= edge) for edge in edges]
    counts = np.diff(np.asarray([0, *at_most, values.size - missing], dtype="int64"))
    return np.append(counts, missing)


def categorical_counts(categories: list[str], values: Any) -> np.ndarray:
    """Rows per known category, then unseen values, then missing: one pass over the codes.

    The log is read dictionary-encoded, so each chunk is counted with one `bincount` over its
    integer codes and only its (few) distinct strings are looked up.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    array = values if isinstance(values, pa.ChunkedArray | pa.Array) else pa.array(values)
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(pc.cast(array, pa.string()))
    position = {name: i for i, name in enumerate(categories)}
    unseen, missing = len(categories), len(categories) + 1
    counts = np.zeros(len(categories) + 2, dtype="int64")
    for chunk in array.chunks if isinstance(array, pa.ChunkedArray) else [array]:
        names = chunk.dictionary.to_pylist()
        codes = pc.fill_null(chunk.indices, len(names)).to_numpy(zero_copy_only=False)
        per_code = np.bincount(codes, minlength=len(names) + 1)
        target = [position.get(name, unseen) for name in names] + [missing]
        counts += np.bincount(target, weights=per_code, minlength=counts.size).astype("int64")
    return counts


def quantiles(values: np.ndarray) -> tuple[list[float], float]:
    """The quantile grid and standard deviation of the non-missing values (empty: [], 0).

    Past QUANTILE_ROWS rows, every k-th row is used: the grid's error is then about
    1/sqrt(QUANTILE_ROWS) in probability, far below any drift worth reporting, and the cost
    stays flat however large the window (a full sort per feature dominated the pass).
    """
    values = np.asarray(values, dtype="float64")
    if values.size > QUANTILE_ROWS:
        values = values[:: values.size // QUANTILE_ROWS]
    # Sorted first: one sort is ~4x cheaper than np.quantile's partitions around 200 indices.
    present = np.sort(values[~np.isnan(values)])
    if present.size == 0:
        return [], 0.0
    return np.quantile(present, quantile_grid(QUANTILE_POINTS)).tolist(), float(present.std())


def numeric_profile(values: np.ndarray, bins: int) -> dict[str, Any]:
    values = np.asarray(values, dtype="float64")
    present = values[~np.isnan(values)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(present, inner)).tolist() if present.size else []
    grid, std = quantiles(values)
    counts = numeric_counts(edges, values)
    return {
        "kind": "numeric",
        "edges": edges,
        "shares": shares(counts).tolist(),
        "missing_rate": float(counts[-1] / max(values.size, 1)),
        "quantiles": grid,
        "std": std,
    }


def categorical_profile(
    values: Any, min_level_rows: int, max_levels: int, seed: int
) -> dict[str, Any]:
    """Frequent levels with their own bins; rare and unseen ones pooled (see `levels`).

    `rows` is how many reference rows the shares were counted on: the size of the reference
    sample in the drift null.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    raw = pa.array(values, from_pandas=True)
    if isinstance(raw, pa.ChunkedArray):  # an Arrow-backed column of a large table: one array
        raw = raw.combine_chunks()
    array = pc.dictionary_encode(pc.cast(raw, pa.string()))
    names = np.asarray(array.dictionary.to_pylist(), dtype=object)
    codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False)
    kept, counts = split_counts(codes, names.size, min_level_rows, max_levels, seed)
    order = np.argsort(names[kept].astype(str))
    bins = [*counts[:-2][order], *counts[-2:]]
    present = np.bincount(codes[codes >= 0], minlength=names.size)
    return {
        "kind": "categorical",
        "categories": [str(v) for v in names[kept][order]],
        "shares": shares(np.asarray(bins)).tolist(),  # kept levels, "other", missing
        "missing_rate": float(np.count_nonzero(codes < 0) / max(codes.size, 1)),
        "rows": int(counts.sum()),
        "levels": int(names.size),
        "unseen_share": good_turing_unseen(present),
    }


def build_profile(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    held_out_scores: np.ndarray,
    params: MonitorParams,
) -> dict[str, Any]:
    """Profile of the training rows' features and of the model's answers on held-out rows.

    `held_out_scores` is what `TabularModel.scores` gives on the held-out rows (binary: or the
    positive class's probabilities alone, as before tasks). The output is
    profiled as the inference log holds it (`MONITORED_COLUMN`): binary the positive class's
    probability, multiclass the predicted class (its shares: a shift in what is predicted),
    regression the predicted value. Scores on the rows a model was trained on are more extreme
    than on rows it never saw (HGB, MLP), so the score reference must come from held-out rows
    (the test split): its row count is kept, since the score's drift null depends on it.
    Personal features (`pii: true`) are not profiled at all: the inference log holds them
    hashed or not at all, and a profile of raw values would both leak them and compare apples
    with hashes.
    """
    features: dict[str, Any] = {}
    excluded: dict[str, str] = {}
    for feature in spec.features:
        if feature.pii:
            excluded[feature.name] = PII_REASON
            continue
        column = frame[feature.name]
        if feature.kind == "numeric":
            features[feature.name] = numeric_profile(
                column.to_numpy(dtype="float64"), params.psi_bins
            )
        else:
            features[feature.name] = categorical_profile(
                column, params.min_level_rows, params.max_levels, params.seed
            )
    return {
        "format": FORMAT,
        "task": spec.task,
        "rows": len(frame),
        "classes": list(spec.classes or []),
        "positive_class": spec.positive_class,
        "floors": dict(spec.floors),  # what promotion demanded: the live metrics' floors
        "features": features,
        "excluded": excluded,
        "score": _score_profile(task_of(spec), np.asarray(held_out_scores), params),
    }


def _score_profile(task: Task, scores: np.ndarray, params: MonitorParams) -> dict[str, Any]:
    """The reference of the logged output column (`score_column`), with its row count."""
    if task.kind == "multiclass":
        labels = task.decode(scores.argmax(axis=1))  # object array of class labels
        return categorical_profile(labels, params.min_level_rows, len(task.classes), params.seed)
    # Binary: the positive class's column of (n, 2) scores, or positive probabilities as given.
    values = scores[:, 1] if scores.ndim == 2 else scores
    score = numeric_profile(values.astype("float64"), params.psi_bins)
    kept = {k: score[k] for k in ("edges", "shares", "quantiles", "std")}
    return kept | {"rows": int(values.size)}


def profile_task(profile: dict[str, Any]) -> Task:
    """The task of the version a profile was written for (binary before tasks existed)."""
    kind = profile.get("task", "binary")
    classes = tuple(profile.get("classes") or ())
    if kind == "binary":  # ordered (negative, positive), as data/task.py orders them
        positive = str(profile["positive_class"])
        classes = (next((c for c in classes if c != positive), ""), positive)
    return Task(kind, classes)


def score_column(profile: dict[str, Any]) -> str:
    """The inference log column whose drift is the output's drift."""
    return MONITORED_COLUMN[profile_task(profile).kind]


def log_profile(profile: dict[str, Any]) -> None:
    """Attach the profile to the active MLflow run (the run the version is registered from)."""
    import mlflow

    mlflow.log_dict(profile, ARTIFACT)


def load_profile(run_id: str | None, what: str) -> dict[str, Any]:
    """The profile logged with a version's run; a clear error for versions that lack one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not run_id:
        raise RegistryError(f"{what} has no MLflow run, so no reference profile to compare with")
    try:
        profile = mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT}")
    except (MlflowException, OSError) as exc:
        raise RegistryError(
            f"{what} has no {ARTIFACT} (registered before monitoring existed?); promote a "
            f"version with `flywheel run` to get one ({exc})"
        ) from exc
    if profile.get("format") not in READABLE:
        raise RegistryError(
            f"{what}: reference profile format {profile.get('format')} is not one of {READABLE}"
        )
    return dict(profile)
