"""The current champion scored on the candidate's test split, so the gate compares like for like.

Its scores take the shape the task judges (evaluation/scores.py): P(positive) for a binary
target, class probabilities for a multiclass one, predicted values for a regression.

Evaluate scores it for the report; promote scores it again only when the alias moved since.
Each version records the split rule it was trained under (`flywheel.split_rule`); the test rows
that rule put in the champion's train or valid split are marked, and every comparison with the
champion leaves them out: a champion is never judged on rows it learned from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flywheel.data.task import task_of
from flywheel.errors import RegistryError
from flywheel.steps.context import StepContext
from flywheel.steps.inputs import TARGET, TEST_KEYS_FILE

log = logging.getLogger(__name__)


SPLIT_RULE_TAG = "split_rule"  # lineage key: the version's tag is flywheel.split_rule


def unseen_by(ctx: StepContext, version: Any, test: pd.DataFrame) -> np.ndarray:
    """Mask of the test rows that `version` did not train on (under its recorded split rule).

    A version registered before split rules were recorded, or one whose rule needs columns
    this split lacks, gets every row, and the log says so.
    """
    from flywheel.errors import DataError
    from flywheel.features.split import trained_on
    from flywheel.registry import store

    recorded = (version.tags or {}).get(store.TAG_PREFIX + SPLIT_RULE_TAG)
    if not recorded:
        log.warning(
            "version %s records no split rule: compared on all %d test rows",
            version.version,
            len(test),
        )
        return np.ones(len(test), dtype=bool)
    keys_file = ctx.out("featurize") / TEST_KEYS_FILE
    keyed = test
    if keys_file.is_file():
        keys = pd.read_parquet(keys_file)
        keyed = pd.concat([test, keys[[c for c in keys.columns if c not in test.columns]]], axis=1)
    try:
        return ~trained_on(keyed, json.loads(recorded))
    except (DataError, KeyError, ValueError) as exc:
        log.warning(
            "version %s's split rule cannot be applied here (%s): compared on all rows",
            version.version,
            exc,
        )
        return np.ones(len(test), dtype=bool)


@dataclass(frozen=True)
class ChampionScores:
    version: str
    proba: np.ndarray  # its scores of every test row (evaluation/scores.py)
    unseen: np.ndarray  # mask: the rows the champion did not train on, the only ones compared


def score_champion(ctx: StepContext, test: pd.DataFrame) -> ChampionScores | None:
    """The champion's scores on `test` and which rows it never saw; None without a champion."""
    from flywheel.evaluation.scores import answer_scores
    from flywheel.registry import store
    from flywheel.registry.integrity import IntegrityError, load_verified

    name = ctx.model_name
    client = store.connect(ctx.settings)
    current = store.version_by_alias(client, name, store.CHAMPION)
    if current is None:
        return None
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
    proba = answer_scores(task_of(ctx.spec), answer)
    return ChampionScores(str(current.version), proba, unseen_by(ctx, current, test))


def keeps_serving(ctx: StepContext) -> str:
    """For a run that registered nothing: which champion goes on serving (or that none does)."""
    from flywheel.registry import store

    current = store.version_by_alias(store.connect(ctx.settings), ctx.model_name, store.CHAMPION)
    if current is None:
        return f"{ctx.model_name} has no champion yet"
    return f"{ctx.model_name} version {current.version} keeps serving as champion"
