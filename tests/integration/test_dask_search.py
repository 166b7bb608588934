"""Candidate fits on a real Dask cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1, reached by address alone, as FLYWHEEL_DASK_ADDRESS reaches a team's cluster.

The fits are real scikit-learn fits on a slice of the default table. One worker is SIGKILLed
in the middle of a fit: the search still returns every candidate, the lost fit having run again
on the other worker. An address where no scheduler answers is one line naming the setting.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from tests.dask_cluster import Cluster, dask_cluster

if TYPE_CHECKING:
    import pandas as pd

    from flywheel.data.spec import DatasetSpec

pytestmark = pytest.mark.slow

Job = tuple[str, float]  # ("logreg", C) | ("hgb", max_iter) | ("hold", C): a logreg that waits
HOLD_TIMEOUT_S = 300


@dataclass(frozen=True)
class SliceFit:
    """Fit one candidate on the slice; its valid ROC-AUC and the pid of the process that fit."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    gate: Path

    def __call__(self, job: Job) -> tuple[float, int]:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        kind, value = job
        if kind == "hold":
            self._hold()
        model = (
            HistGradientBoostingClassifier(max_iter=int(value), random_state=0) if kind == "hgb"
            else make_pipeline(StandardScaler(), LogisticRegression(C=value, max_iter=1000))
        )
        model.fit(self.x_train, self.y_train)
        return float(roc_auc_score(self.y_valid, model.predict_proba(self.x_valid)[:, 1])), \
            os.getpid()

    def _hold(self) -> None:
        """Say which process holds the fit, then wait for the test to let it go."""
        (self.gate / f"started-{os.getpid()}").touch()
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while not (self.gate / "go").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never let the held fit go")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with dask_cluster(tmp_path_factory.mktemp("dask"), workers=2) as running:
        yield running


@pytest.fixture()
def slice_fit(spec: DatasetSpec, default_table: pd.DataFrame, tmp_path: Path) -> SliceFit:
    """The first 4,500 rows of the default table: numbers as they are, categories as codes."""
    import pandas as pd

    from flywheel.data.io import feature_frame, target_vector

    rows = default_table.iloc[:4500]
    features = feature_frame(spec, rows)
    x = np.column_stack([
        features[f.name] if f.kind == "numeric" else pd.Categorical(features[f.name]).codes
        for f in spec.features
    ]).astype(np.float64)
    x = np.nan_to_num(x)
    y = target_vector(spec, rows)
    return SliceFit(x[:3000], y[:3000], x[3000:], y[3000:], gate=tmp_path)


def test_fits_run_on_the_workers_in_order_and_a_failing_fit_is_its_own_outcome(
    cluster: Cluster, slice_fit: SliceFit
) -> None:
    from flywheel.training.dask_backend import map_fits_dask

    jobs: list[Job] = [("logreg", 1.0), ("hgb", 40), ("logreg", -1.0), ("hgb", 15)]
    outcomes = map_fits_dask(slice_fit, jobs, workers=2, address=cluster.address)

    assert len(outcomes) == len(jobs)
    bad = outcomes[2]
    assert bad.value is None and bad.error is not None
    assert "InvalidParameterError" in bad.error and "'C'" in bad.error and "\n" not in bad.error
    good = [(job, o) for job, o in zip(jobs, outcomes, strict=True) if o is not bad]
    assert all(o.error is None and o.value is not None and o.seconds > 0 for _, o in good)
    # the same numbers a fit in this process gives, computed in the worker processes
    assert {o.value[1] for _, o in good} <= {w.pid for w in cluster.workers}  # type: ignore[index]
    here = [slice_fit(job)[0] for job, _ in good]
    assert [o.value[0] for _, o in good] == pytest.approx(here)  # type: ignore[index]
    assert all(0.7 < auc < 0.95 for auc in here)


def test_the_search_s_seam_sends_fits_to_the_cluster_its_address_names(
    cluster: Cluster, slice_fit: SliceFit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLYWHEEL_DASK_ADDRESS alone moves the search's fits (training/executor.py) there."""
    from flywheel.training.executor import map_fits

    monkeypatch.setenv("FLYWHEEL_DASK_ADDRESS", cluster.address)
    jobs: list[Job] = [("logreg", 1.0), ("logreg", -1.0)]
    good, bad = map_fits(slice_fit, jobs, workers=1)
    assert good.error is None and good.value[1] in {w.pid for w in cluster.workers}  # type: ignore[index]
    assert bad.value is None and "InvalidParameterError" in (bad.error or "")


def test_a_worker_killed_mid_fit_costs_only_a_rerun_on_the_other(
    cluster: Cluster, slice_fit: SliceFit
) -> None:
    from flywheel.training.dask_backend import map_fits_dask

    jobs: list[Job] = [("hold", 1.0), ("hgb", 30), ("logreg", 0.5)]
    with ThreadPoolExecutor(1) as pool:
        search = pool.submit(map_fits_dask, slice_fit, jobs, workers=2, address=cluster.address)
        holder = _await_holder(slice_fit.gate)
        (victim,) = [w for w in cluster.workers if w.pid == holder]
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=60) == -signal.SIGKILL
        (slice_fit.gate / "go").touch()
        outcomes = search.result(timeout=HOLD_TIMEOUT_S)

    assert [o.error for o in outcomes] == [None, None, None]
    (survivor,) = [w.pid for w in cluster.workers if w is not victim]
    assert outcomes[0].value[1] == survivor  # type: ignore[index]  # the held fit, run again
    assert {o.value[1] for o in outcomes} <= {survivor, holder}  # type: ignore[index]
    assert outcomes[0].value[0] == pytest.approx(slice_fit(("logreg", 1.0))[0])  # type: ignore[index]


def test_an_address_where_no_scheduler_answers_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flywheel.errors import ConfigError
    from flywheel.training import dask_backend

    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
        monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT_S", 3.0)
        with pytest.raises(ConfigError) as raised:
            dask_backend.map_fits_dask(abs, [1, -2], workers=1, address=address)
    message = str(raised.value)
    assert message.startswith(f"FLYWHEEL_DASK_ADDRESS={address}: no Dask scheduler answered")
    assert "\n" not in message and raised.value.exit_code == 2


def _await_holder(gate: Path) -> int:
    deadline = time.monotonic() + HOLD_TIMEOUT_S
    while time.monotonic() < deadline:
        started = list(gate.glob("started-*"))
        if started:
            return int(started[0].name.removeprefix("started-"))
        time.sleep(0.05)
    raise AssertionError("no worker started the held fit")
