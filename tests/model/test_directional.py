"""Directional expectations: what a person knows about churn, checked on the trained model.

Checked on the default table first (see each docstring): these hold for the logistic
regression the session trains, row by row, and for the gradient-boosted candidate in most
rows, so each test allows a few rows to move the wrong way by a little and asserts the
average move. Monthly charges are not here: with the services held fixed, a higher bill
lowers the logistic regression's risk and raises the boosted trees' (the bill mostly encodes
the services), so there is no direction a model must follow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.model.conftest import Trained

TOLERANCE = 0.05  # a row may move the wrong way by at most this much ...
FEW = 0.05  # ... and only this share of rows may


def assert_lowers(trained: Trained, changed: pd.DataFrame, before: pd.DataFrame) -> None:
    """`changed` rows score lower on average than `before`, and almost never higher."""
    old = trained.model.positive_proba(before)
    new = trained.model.positive_proba(changed)
    assert new.mean() < old.mean(), (new.mean(), old.mean())
    assert (new > old + TOLERANCE).mean() <= FEW, (new - old).max()


def with_internet_add_on(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """`column` set to `value` for every customer with internet (the others cannot have it)."""
    has_internet = frame["internet_service"] != "No"
    return frame.assign(**{column: np.where(has_internet, value, "No internet service")})


def test_longer_tenure_does_not_raise_churn_risk(trained: Trained) -> None:
    """Mean risk by tenure quartile on the test split: 0.47, 0.34, 0.18, 0.07."""
    test = trained.test
    assert_lowers(trained, test.assign(tenure=np.minimum(test["tenure"] + 24, 72)), test)


def test_a_two_year_contract_is_safer_than_month_to_month(trained: Trained) -> None:
    """Churn in the table: 43% month-to-month, 11% one year, 3% two years."""
    test = trained.test
    monthly = test.assign(contract="Month-to-month")
    assert_lowers(trained, test.assign(contract="One year"), monthly)
    assert_lowers(trained, test.assign(contract="Two year"), test.assign(contract="One year"))


def test_automatic_payment_is_safer_than_an_electronic_check(trained: Trained) -> None:
    test = trained.test
    check = test.assign(payment_method="Electronic check")
    assert_lowers(trained, test.assign(payment_method="Credit card (automatic)"), check)
    assert_lowers(trained, test.assign(payment_method="Bank transfer (automatic)"), check)


def test_tech_support_and_online_security_do_not_raise_churn_risk(trained: Trained) -> None:
    test = trained.test
    for add_on in ("tech_support", "online_security"):
        without = with_internet_add_on(test, add_on, "No")
        assert_lowers(trained, with_internet_add_on(test, add_on, "Yes"), without)


def test_fiber_optic_customers_are_at_higher_risk_than_dsl(trained: Trained) -> None:
    """Fiber customers churn most in this table (their price and competition, not the cable)."""
    online = trained.test[trained.test["internet_service"] != "No"]
    assert_lowers(trained, online.assign(internet_service="DSL"),
                  online.assign(internet_service="Fiber optic"))  # fmt: skip
