"""Invariance: changes that must not move a customer's score (Made-With-ML's model tests)."""

from __future__ import annotations

import numpy as np

from tests.model.conftest import Trained


def test_a_renumbered_customer_id_does_not_move_the_score(trained: Trained) -> None:
    model, test = trained.model, trained.test
    renumbered = test.assign(rownames=np.arange(len(test))[::-1])
    assert np.array_equal(model.positive_proba(test), model.positive_proba(renumbered))


def test_an_unrelated_extra_column_does_not_move_the_score(trained: Trained) -> None:
    model, test = trained.model, trained.test
    noted = test.assign(notes="called support twice", signup_channel="web")
    assert np.array_equal(model.positive_proba(test), model.positive_proba(noted))


def test_column_order_does_not_move_the_score(trained: Trained) -> None:
    model, test = trained.model, trained.test
    shuffled = test[list(reversed(test.columns))]
    assert np.allclose(model.positive_proba(test), model.positive_proba(shuffled))


def test_a_rows_score_does_not_depend_on_the_rest_of_the_batch(trained: Trained) -> None:
    """What the batching service relies on: alone, in a batch, or in another order."""
    model, test = trained.model, trained.test.head(200)
    batch = model.positive_proba(test)
    alone = np.array([model.positive_proba(test.iloc[[i]])[0] for i in range(0, 200, 20)])
    reordered = model.positive_proba(test.iloc[::-1])[::-1]
    assert np.allclose(batch[::20], alone) and np.allclose(batch, reordered)


def test_scoring_twice_gives_the_same_scores(trained: Trained) -> None:
    model, test = trained.model, trained.test
    assert np.array_equal(model.positive_proba(test), model.positive_proba(test.copy()))
