"""The fast start of `flywheel run`: every start-up measure, owned here and entered once.

A run on the default table spends most of its first seconds starting things: Prefect's
temporary server, Great Expectations' import, scikit-learn's, torch's and MLflow's, and the
fresh interpreter that load-checks the registered model. Done one after another they were on
the critical path; done here they overlap:

- the temporary Prefect server starts first (`prefect_server`), before the run imports anything;
- validate runs in a process of its own (`ahead`) while the server starts;
- the cyclic collector is paused while this process imports its libraries (`collector`), and
  a prewarm thread imports what the later steps need, in the order they need it;
- promote's load checker starts when the flow does and imports while the steps run.

`flywheel run` enters `fast_start()` once; the flow reaches it through one hook, `active()`,
and takes what was started for it. Without it (a deployment on a worker, `flywheel step`,
`dvc repro`) every step simply runs in the task. Leaving the block ends whatever no step took,
quietly: a run stopped early by bad data prints its one error line and nothing else.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import subprocess
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from pipelines.ahead import Ahead, discard, start_ahead
from pipelines.collector import pause_for_imports, resume_after_imports
from pipelines.prefect_server import TemporaryServer, prefect_api, start_server

log = logging.getLogger(__name__)

# What the steps after validate import, in the order they need it (validate imports Great
# Expectations in its own process).
SKLEARN_IMPORTS = ("sklearn.compose", "sklearn.ensemble")
TORCH_IMPORTS = ("torch", "torch._dynamo")  # only for the mlp candidate; its optimizer: dynamo
MLFLOW_IMPORTS = (
    "mlflow.pyfunc",
    # MLflow's SQLite stores: their import configures SQLAlchemy mappers, seconds on 2 cores
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)
FIRST_STEP = "validate"


@dataclass
class HeadStart:
    """What `flywheel run` started ahead of the flow, each handed out once."""

    server: TemporaryServer | None
    ahead: list[Ahead] = field(default_factory=list)
    checker: subprocess.Popen[str] | None = None
    closing: threading.Event = field(default_factory=threading.Event)

    def launch(self, spec: str | None, candidates: Collection[str], force: bool = False) -> None:
        """Validate in its own process, then the flow's and the steps' imports, collector off."""
        self.ahead.append(start_ahead(FIRST_STEP, spec, force))
        pause_for_imports()  # until the prewarm thread has imported the steps' libraries
        importlib.import_module("pipelines.training")  # Prefect: seconds, while validate runs
        torch = TORCH_IMPORTS if "mlp" in candidates else ()
        modules = (*SKLEARN_IMPORTS, *torch, *MLFLOW_IMPORTS)
        threading.Thread(
            target=self._prewarm, args=(modules,), name="flywheel-prewarm", daemon=True
        ).start()

    @contextlib.contextmanager
    def flow_api(self) -> Iterator[None]:
        """Prefect's client pointed at the temporary server; the load checker starts now."""
        from flywheel.registry.loadcheck import start_checker

        with prefect_api(self.server):
            self.checker = start_checker()
            yield

    def take_ahead(self, step: str, spec: str | None) -> Ahead | None:
        """The process started for this step and spec, if any; each is taken once."""
        for ahead in self.ahead:
            if (ahead.step, ahead.spec) == (step, spec):
                self.ahead.remove(ahead)
                return ahead
        return None

    def take_checker(self) -> subprocess.Popen[str] | None:
        """The load checker started ahead, if it is still waiting; taken once."""
        checker, self.checker = self.checker, None
        return checker if checker is not None and checker.poll() is None else None

    def close(self) -> None:
        """End what no step took; a prewarm still importing ends without a word."""
        self.closing.set()
        resume_after_imports()  # the prewarm does this, unless the run failed before it ran
        while self.ahead:
            discard(self.ahead.pop())
        checker, self.checker = self.checker, None
        if checker is not None and checker.poll() is None:
            checker.kill()
            checker.communicate()

    def _prewarm(self, modules: tuple[str, ...]) -> None:
        """Import the steps' libraries while Prefect's server starts; nothing is configured.

        Also starts the chart renderer's JavaScript engine (it runs outside the GIL). A run
        that already failed may be tearing down what an import touches: then say nothing.
        """
        try:
            from flywheel.evaluation.plots import warm_renderer

            for module in modules:
                if self.closing.is_set():
                    return
                importlib.import_module(module)
            resume_after_imports()
            warm_renderer()
        except BaseException:  # a warm-up only: a step imports again what it needs
            if not self.closing.is_set():
                log.debug("prewarm stopped", exc_info=True)


_ACTIVE: HeadStart | None = None


def active() -> HeadStart | None:
    """The flow's one hook: what `flywheel run` started for it, or None (no fast start)."""
    return _ACTIVE


@contextlib.contextmanager
def fast_start() -> Iterator[HeadStart]:
    """Entered once by `flywheel run`, first: the temporary server starts at once."""
    global _ACTIVE
    head = HeadStart(server=start_server())
    _ACTIVE = head
    try:
        yield head
    finally:
        _ACTIVE = None
        head.close()
