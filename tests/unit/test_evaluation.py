"""Evaluation library on small synthetic scores with fixed seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from flywheel.atomic import write_folder
from flywheel.config import BootstrapParams, EvaluateParams
from flywheel.data.task import Task
from flywheel.errors import ConfigError, DataError
from flywheel.evaluation.bootstrap import Judged, interval, paired_resamples
from flywheel.evaluation.metrics import classification_metrics
from flywheel.evaluation.report import evaluate_scores
from flywheel.evaluation.slices import slice_metrics

KEYS = {"roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "brier"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores(n: int = 400, signal: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ~30% positives and probabilities carrying `signal` of the label."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype("int64")
    proba = np.clip(signal * y + (1 - signal) * rng.random(n), 0, 1)
    return y, proba


def paired_bootstrap(y, candidate, champion, metric, params):
    """The overall gain's summary, as the gate reads it (registry/compare.py)."""
    judged = Judged("binary", metric, "brier")
    resampled = paired_resamples(y, candidate, champion, judged, {}, params)
    low, high, used = interval(resampled.gain, params.confidence)
    return {"delta": resampled.observed_gain, "ci_low": low, "ci_high": high, "resamples": used}


@pytest.fixture
def eval_params() -> EvaluateParams:
    return EvaluateParams(
        threshold=0.5, slices=["contract", "region"], min_slice_rows=30, calibration_bins=10
    )


@pytest.fixture
def boot_params() -> BootstrapParams:
    return BootstrapParams(resamples=300, seed=7, confidence=0.95)


def frame_for(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "contract": rng.choice(["monthly", "yearly", "rare"], n, p=[0.6, 0.37, 0.03]),
            "region": rng.choice(["north", "south"], n),
        }
    )


def test_metric_keys_and_ranges():
    y, p = scores()
    metrics = classification_metrics(y, p, 0.5)
    assert set(metrics) == KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    for name in ("roc_auc", "pr_auc", "f1", "accuracy", "brier"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["log_loss"] >= 0.0
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p))


def test_perfect_beats_random():
    y, _ = scores()
    perfect = classification_metrics(y, y.astype(float) * 0.98 + 0.01, 0.5)
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    assert perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0
    assert perfect["brier"] < 0.001
    noise = classification_metrics(y, np.random.default_rng(3).random(y.size), 0.5)
    assert 0.4 < noise["roc_auc"] < 0.6
    assert noise["brier"] > 0.2 and noise["log_loss"] > perfect["log_loss"]


def test_metrics_refuse_bad_input():
    y, p = scores()
    with pytest.raises(DataError, match="align"):
        classification_metrics(y, p[:-1], 0.5)
    with pytest.raises(DataError, match="probabilities"):
        classification_metrics(y, p + 1.0, 0.5)
    with pytest.raises(DataError, match="single class"):
        classification_metrics(np.zeros(10, dtype=int), np.full(10, 0.2), 0.5)


def test_slices_skip_small_and_flag_one_class(eval_params):
    y, p = scores()
    frame = frame_for(y.size)
    y = y.copy()
    y[(frame["contract"] == "yearly").to_numpy()] = 0  # a one-class slice
    records = slice_metrics(frame, y, p, ["contract", "region"], 0.5, min_rows=30)
    keys = {(r["column"], r["value"]) for r in records}
    assert keys == {
        ("contract", "monthly"),
        ("contract", "yearly"),
        ("region", "north"),
        ("region", "south"),
    }  # "rare" (~12 rows) skipped
    yearly = next(r for r in records if r["value"] == "yearly")
    assert yearly["roc_auc"] is None and yearly["positives"] == 0
    assert yearly["accuracy"] is not None
    monthly = next(r for r in records if r["value"] == "monthly")
    assert monthly["rows"] == int((frame["contract"] == "monthly").sum())
    assert set(monthly) >= KEYS | {"column", "value", "rows", "positives"}
    assert sum(r["rows"] for r in records if r["column"] == "region") == y.size


def test_slices_unknown_column_is_config_error():
    y, p = scores()
    with pytest.raises(ConfigError, match="'tenure_band'"):
        slice_metrics(frame_for(y.size), y, p, ["contract", "tenure_band"], 0.5, 30)


def test_bootstrap_identical_models(boot_params):
    y, p = scores()
    result = paired_bootstrap(y, p, p.copy(), "roc_auc", boot_params)
    assert set(result) == {"delta", "ci_low", "ci_high", "resamples"}
    assert result["delta"] == 0.0
    assert result["ci_low"] <= 0.0 <= result["ci_high"]
    assert result["resamples"] == boot_params.resamples


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc"])
def test_bootstrap_better_model_has_positive_interval(boot_params, metric):
    y, weak = scores(signal=0.1, seed=4)
    strong = np.clip(weak + 0.4 * y, 0, 1)
    result = paired_bootstrap(y, strong, weak, metric, boot_params)
    assert result["delta"] > 0
    assert 0 < result["ci_low"] <= result["delta"] <= result["ci_high"]
    reverse = paired_bootstrap(y, weak, strong, metric, boot_params)
    assert reverse["ci_high"] < 0


def test_bootstrap_is_seeded(boot_params):
    y, a = scores(seed=5)
    _, b = scores(seed=6)
    first = paired_bootstrap(y, a, b, "pr_auc", boot_params)
    assert paired_bootstrap(y, a, b, "pr_auc", boot_params) == first
    other = boot_params.model_copy(update={"seed": boot_params.seed + 1})
    assert paired_bootstrap(y, a, b, "pr_auc", other) != first


def test_bootstrap_delta_agrees_with_sklearn(boot_params):
    y, a = scores(seed=8)
    _, b = scores(seed=9)
    a, b = a.round(2), b.round(2)  # ties must count half, as in scikit-learn
    auc = paired_bootstrap(y, a, b, "roc_auc", boot_params)
    assert auc["delta"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    ap = paired_bootstrap(y, a, b, "pr_auc", boot_params)
    expected = average_precision_score(y, a) - average_precision_score(y, b)
    assert ap["delta"] == pytest.approx(expected, abs=1e-12)


def test_bootstrap_resamples_chunks_of_weights_and_matches_sklearn(boot_params, monkeypatch):
    """The weights come in bounded chunks (a 1M-row test split must not make a B x n matrix);
    each resample's AUC is still scikit-learn's on the rows it drew."""
    from flywheel.evaluation import bootstrap

    y, a = scores(seed=10)
    monkeypatch.setattr(bootstrap, "CHUNK_CELLS", 3 * y.size + 1)  # 3 resamples per chunk
    chunks = list(bootstrap.resample_weights(y.size, 10, seed=1))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    weights = np.concatenate(chunks)
    ranking = bootstrap._ranking(y, a, descending=False)
    for row, auc in zip(weights, bootstrap.weighted_roc_auc(ranking, weights), strict=True):
        drawn = np.repeat(np.arange(y.size), row.astype(int))
        assert auc == pytest.approx(roc_auc_score(y[drawn], a[drawn]), abs=1e-12)


def test_bootstrap_rejects_unknown_metric(boot_params):
    y, p = scores()
    with pytest.raises(ConfigError, match="f1"):
        paired_bootstrap(y, p, p, "f1", boot_params)


PLOT_FILES = [
    "confusion.csv",
    "roc.json",
    "pr.json",
    "calibration.json",
    "confusion.png",
    "roc.png",
    "pr.png",
    "calibration.png",
]


def write_evaluation(out: Path, *args) -> dict:
    """The evaluate step's write: the evaluation's files, swapped in as one folder."""
    evaluation = evaluate_scores(Task("binary", ("No", "Yes")), *args)
    write_folder(out, evaluation.files)
    return evaluation.metrics


@pytest.mark.slow  # renders every plot (matplotlib)
@pytest.mark.parametrize("with_champion", [False, True])
def test_write_evaluation_writes_every_file(tmp_path: Path, eval_params, with_champion):
    y, p = scores()
    champion = scores(signal=0.1)[1] if with_champion else None
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "stale.txt").write_text("from a previous run")

    metrics = write_evaluation(
        out, y, p, eval_params, frame_for(y.size), champion, "version 1" if with_champion else None
    )

    assert metrics["candidate"] == classification_metrics(y, p, eval_params.threshold)
    if with_champion:
        assert metrics["champion"] == classification_metrics(y, champion, eval_params.threshold)
    else:
        assert "champion" not in metrics
    assert not (out / "stale.txt").exists()  # the folder is replaced, not merged
    assert [x.name for x in tmp_path.iterdir()] == ["evaluation"]  # no temp folders left
    for name in ["metrics.json", "slices.json", "report.html"]:
        assert (out / name).is_file()
    for name in PLOT_FILES:
        assert (out / "plots" / name).is_file(), name
        if name.endswith(".png"):
            assert (out / "plots" / name).read_bytes()[:8] == PNG_MAGIC

    stored = json.loads((out / "metrics.json").read_text())
    assert set(stored) == KEYS
    assert all(isinstance(v, float) for v in stored.values())

    models = {"candidate", "champion"} if with_champion else {"candidate"}
    for name, fields in [
        ("roc", {"fpr", "tpr"}),
        ("pr", {"recall", "precision"}),
        ("calibration", {"mean_predicted", "fraction_positive"}),
    ]:
        records = json.loads((out / "plots" / f"{name}.json").read_text())
        assert {r["model"] for r in records} == models
        assert all(fields <= set(r) for r in records)
        for model in models:
            assert sum(r["model"] == model for r in records) <= 201

    confusion = pd.read_csv(out / "plots" / "confusion.csv")
    assert list(confusion.columns) == ["actual", "predicted"] and len(confusion) == y.size
    assert set(confusion["actual"]) == {"negative", "positive"}

    slices = json.loads((out / "slices.json").read_text())
    assert {r["model"] for r in slices} == models

    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 4
    assert "http://" not in report.replace("https://", "") and "<script" not in report
    assert ("against champion version 1" in report) == with_champion
    assert "champion champion" not in report


def test_write_evaluation_failure_keeps_previous_output(tmp_path: Path, eval_params):
    y, p = scores()
    out = tmp_path / "evaluation"
    write_evaluation(out, y, p, eval_params, frame_for(y.size), None, None)
    before = (out / "metrics.json").read_text()
    bad = eval_params.model_copy(update={"slices": ["no_such_column"]})
    with pytest.raises(ConfigError):
        write_evaluation(out, y, 1 - p, bad, frame_for(y.size), None, None)
    assert (out / "metrics.json").read_text() == before
