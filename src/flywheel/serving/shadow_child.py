"""The challenger's own process: `python -m flywheel.serving.shadow_child JOBS_FD RESULTS_FD`.

Started by a service worker (serving/shadow_process.py) while `NAME@challenger` exists. It
watches that alias itself, with the champion's watcher code (the same signature and integrity
check before any file is read; any signed verdict may shadow), scores each message of jobs
the worker sends (serving/shadow_scoring.py), writes the challenger's inference-log rows
itself (its own Parquet files in the model's log folder, answering flush requests like any
writer) and sends back one small `Scored` per message and one `Reloaded` per load attempt.

Why a process: scored in a thread of the worker, the challenger's model call cost the worker
~5 ms of CPU per request under the interpreter lock the champion's requests need (+11 to +38
ms at the champion's median, benchmarks/shadow.py); here it has its own, and a native crash in
its library kills only this process. It exits when the
alias is gone (after reporting `removed`), when the worker closes the jobs pipe or dies (end
of file), or on SIGTERM, writing its buffered log rows first each time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from typing import Any

from flywheel.logs import quiet_libraries
from flywheel.registry.signing import ANY_VERDICT
from flywheel.registry.store import CHALLENGER
from flywheel.serving.inference_log import InferenceLog
from flywheel.serving.registry_watch import LoadedModel, ModelHolder, RegistryWatcher
from flywheel.serving.schema_swap import SchemaSwap
from flywheel.serving.shadow_pipe import ChallengerSetup, PipeReader, PipeWriter, Reloaded
from flywheel.serving.shadow_scoring import score_jobs

logger = logging.getLogger(__name__)

# How long the loop waits for jobs before it checks whether the alias is still there.
IDLE_WAIT_S = 0.5
# Scoring and logging run at the lowest CPU priority (Linux: per thread; the alias's watcher
# keeps the normal one, so a new version loads as fast as before). The challenger then gets
# only CPU the champion's requests do not want. Measured on a saturated 2-core machine: at
# normal priority, fed every 0.05 s, it took 5-6 ms of CPU per request at 8 clients and the
# champion's median rose +62 to +171 ms; at nice 19, fed every 0.2 s (bigger calls), 1.1-1.3
# ms, within the run-to-run noise. Without spare CPU its queue fills and requests are
# dropped and counted, never delayed.
SCORING_NICE = 19


def main(argv: list[str]) -> int:
    jobs, results = PipeReader(int(argv[1])), PipeWriter(int(argv[2]))
    setup: ChallengerSetup | None = jobs.receive()
    if setup is None:  # the worker went before it said what to shadow
        return 0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s shadow[%(process)d] %(message)s")
    quiet_libraries()
    signal.signal(signal.SIGTERM, _stop)
    log = InferenceLog(spec=setup.spec, **setup.log)
    holder = ModelHolder()
    watcher = _watcher(setup, holder, log, results)
    try:
        watcher.check_once()
        watcher.start()  # loads at the priority it was started with
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SCORING_NICE)
        log.start()  # its thread inherits the scoring's priority
        _serve(jobs, results, holder, watcher, log)
    finally:
        watcher.stop()
        log.close()
    return 0


def _stop(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)  # unwinds through main's `finally`: the log is written first


def _watcher(setup: ChallengerSetup, holder: ModelHolder, log: InferenceLog,
             results: PipeWriter) -> RegistryWatcher:
    """The challenger alias's watcher; each load attempt is reported to the worker."""
    schemas = SchemaSwap(setup.spec, setup.max_string_chars, setup.schema_change)

    def prepare(model: LoadedModel, _current: LoadedModel | None) -> LoadedModel:
        return dataclasses.replace(model, request_schema=schemas.schema_of(model.spec))

    def reloaded(outcome: str, model: LoadedModel | None, previous: str | None) -> None:
        if model is not None and model.request_schema is not None:
            log.use_spec(model.request_schema.spec)  # its own columns in its rows
        results.send(Reloaded(outcome, model.version if model else None, previous))

    return RegistryWatcher(holder, _connect, setup.model_name, setup.reload_interval_s,
                           on_reload=reloaded, prepare=prepare, alias=CHALLENGER,
                           accept=ANY_VERDICT)


def _serve(jobs: PipeReader, results: PipeWriter, holder: ModelHolder,
           watcher: RegistryWatcher, log: InferenceLog) -> None:
    """Answer each message of jobs until the alias is gone or the worker closes the pipe."""
    while watcher.aliased is not False:
        if not jobs.ready(IDLE_WAIT_S):
            continue
        message = jobs.receive()
        if message is None:
            return
        try:
            results.send(score_jobs(holder.current, message, log))
        except BrokenPipeError:  # the worker is gone
            return
    logger.info("%s@%s is gone; the challenger's process stops", watcher.name, CHALLENGER)


def _connect() -> Any:
    from flywheel.registry.store import connect
    from flywheel.settings import settings

    return connect(settings())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
