"""The optional Optuna search (training/tuning.py) with real fits, and its lineage entry."""

from __future__ import annotations

import json

import pytest

from flywheel.config import HalvingParams, SearchParams
from flywheel.registry.lineage import search_tags
from flywheel.training.candidates import BINARY
from flywheel.training.tuning import Tuned, tune
from tests.unit.test_candidate_search import params, xor  # noqa: F401 (the fixture)

TRIALS = 5


@pytest.fixture(scope="module")
def studies(xor, tmp_path_factory) -> tuple[Tuned, Tuned]:  # noqa: F811
    """The same seeded study twice; rungs of 1,000 and all 3,000 rows."""
    inputs, y_train, y_valid = xor
    cfg = params(halving=HalvingParams(min_rows=1000, factor=3, margin=0.0),
                 search=SearchParams(enabled=True, n_trials=TRIALS, timeout_s=None))
    folder = tmp_path_factory.mktemp("tuning")
    return tuple(  # type: ignore[return-value]
        tune(cfg, "hgb", inputs, (y_train, y_valid), folder, BINARY, "roc_auc") for _ in "ab")


def test_a_seeded_study_proposes_the_same_trials_and_keeps_its_best_full_fit(studies) -> None:
    first, second = studies
    assert [t["params"] for t in first.trials] == [t["params"] for t in second.trials]
    assert len(first.trials) == TRIALS
    assert {t["state"] for t in first.trials} <= {"complete", "pruned"}
    complete = [t for t in first.trials if t["state"] == "complete"]
    # a complete trial reached every row; a pruned one stopped on an earlier rung
    assert all(t["rows"] == 3000 for t in complete)
    assert all(t["rows"] < 3000 for t in first.trials if t["state"] == "pruned")
    best = first.best
    assert best is not None and best.name == "hgb"
    assert best.valid_metrics["roc_auc"] == max(t["value"] for t in complete)
    assert set(best.details["params"]) >= {"learning_rate", "max_leaf_nodes",
                                           "l2_regularization"}


def test_the_search_goes_into_the_lineage_and_an_absent_one_adds_nothing(studies,
                                                                         tmp_path) -> None:
    summary = studies[0].summary()
    path = tmp_path / "search.json"
    path.write_text(json.dumps(summary))
    entry = json.loads(search_tags(path)["search"])
    assert entry["candidate"] == "hgb" and entry["trials"] == TRIALS
    assert entry["best_params"] == summary["best_params"]
    assert search_tags(tmp_path / "absent.json") == {}
