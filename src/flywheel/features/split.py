"""Seeded, stratified train/valid/test split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flywheel.config import FeaturizeParams
from flywheel.errors import DataError


def split_frame(
    frame: pd.DataFrame, y: np.ndarray, params: FeaturizeParams
) -> dict[str, pd.DataFrame]:
    """`split_rows` applied to a frame: one new frame per split, rows in table order."""
    return {
        name: frame.iloc[rows].reset_index(drop=True)
        for name, rows in split_rows(y, params).items()
    }


def split_rows(y: np.ndarray, params: FeaturizeParams) -> dict[str, np.ndarray]:
    """Row numbers of train/valid/test (sorted), keeping the class balance in each.

    `valid_size` is a share of the whole table, like `test_size`, so the numbers in
    params.yaml read as the final proportions.
    """
    from sklearn.model_selection import train_test_split

    if params.test_size + params.valid_size >= 0.9:
        raise DataError("featurize: test_size + valid_size leaves under 10% of rows to train on")
    rows = np.arange(len(y))
    try:
        rest, test = train_test_split(
            rows, test_size=params.test_size, stratify=y, random_state=params.seed
        )
        train, valid = train_test_split(
            rest,
            test_size=params.valid_size / (1 - params.test_size),
            stratify=y[rest],
            random_state=params.seed,
        )
    except ValueError as exc:  # too few rows of a class to stratify
        raise DataError(f"featurize: cannot make a stratified split: {exc}") from exc
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}
