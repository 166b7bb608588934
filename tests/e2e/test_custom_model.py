"""Bring your own model through `flywheel run --data`: the example ExtraTrees factory competes
with a built-in, and the registered version says which code trained it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import invoke_cli, make_project, project_in_use

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "custom_model"
TREES = "extra_trees:make_model"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> Iterator[Path]:
    train = {"candidates": ["logreg", TREES], "selection_metric": "neg_log_loss",
             "custom": {TREES: {"n_estimators": 60}}}
    root = make_project(tmp_path_factory.mktemp("custom") / "project", params={"train": train})
    with project_in_use(root, chdir=True, PREFECT_API_URL=prefect_server,
                        PYTHONPATH=str(EXAMPLES)):
        yield root


def accounts(n: int = 1500) -> pd.DataFrame:
    """Churn that depends on usage through a step (trees' strength) and on the plan."""
    rng = np.random.default_rng(3)
    usage = rng.gamma(2.0, 10.0, n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    risk = 2.0 * (usage < 8) + (plan == "basic") * 1.0 + rng.normal(0, 0.7, n)
    return pd.DataFrame({
        "account": [f"A{i:06d}" for i in range(n)],
        "usage_hours": usage,
        "plan": plan,
        "cancelled": np.where(risk > np.quantile(risk, 0.7), "yes", "no"),
    })


def test_a_factory_candidate_is_trained_judged_registered_with_its_origin(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the CLI runs in this process too
    path = root / "accounts.parquet"
    accounts().to_parquet(path)
    result = invoke_cli("run", "--data", str(path), "--target", "cancelled")
    assert result.exit_code == 0, result.output

    import json

    folder = root / "artifacts" / "models" / "flywheel-accounts"
    table = json.loads((folder / "train" / "candidates.json").read_text())
    assert [row["name"] for row in table] == ["logreg", TREES]
    selected = next(row["name"] for row in table if row["selected"])

    from flywheel.registry.store import connect, version_by_alias
    from flywheel.settings import settings

    version = version_by_alias(connect(settings()), "flywheel-accounts", "champion")
    assert version is not None, result.output
    if selected == TREES:
        source = (EXAMPLES / "extra_trees.py").read_bytes()
        assert version.tags["flywheel.custom_model.path"] == TREES
        assert version.tags["flywheel.custom_model.file_sha256"] == hashlib.sha256(
            source).hexdigest()
    else:
        assert "flywheel.custom_model.path" not in version.tags
    assert selected == TREES, table  # the step in usage is what trees find and a line cannot
