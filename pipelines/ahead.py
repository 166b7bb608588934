"""The run's first step, started in a process of its own as soon as `flywheel run` begins.

Validation reads only the table and its spec, and Great Expectations alone takes about 3 s to
import on two cores. Run inside the flow, that import and the validation itself came after
Prefect's temporary server had started, in the same interpreter as everything else. Started
here, in a second process, they use the other core while the server starts and the run imports
the other steps' libraries. The flow's validate task then takes this process's result instead
of running the step: the same task run, with the step's log lines (relayed into it), its row,
its dvc.lock record and, on bad data, the same error and exit code. A run without `flywheel
run` in front (a deployment on a worker, a retry of the task) runs the step in the task.

The child exits when its parent does (it watches its stdin), so a killed run leaves no
validation running; its outputs are written atomically, as every step's are. Only the fast
start (`pipelines.fast_start`) starts, hands out and ends these processes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flywheel import errors

log = logging.getLogger(__name__)

RECORD = "\x1eflywheel-log "  # starts each relayed log line on the child's stderr


@dataclass
class Ahead:
    step: str
    spec: str | None
    process: subprocess.Popen[str]


def start_ahead(step: str, spec: str | None, force: bool = False) -> Ahead:
    """Start `step` on `spec` now, in its own interpreter, for the flow's task to take."""
    command = [sys.executable, "-m", "pipelines.ahead", step, spec or "", "force" if force else ""]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return Ahead(step, spec, process)


def discard(ahead: Ahead) -> None:
    """End a process no task took (the run failed before its first step)."""
    ahead.process.kill()
    ahead.process.communicate()


def collect(ahead: Ahead) -> dict[str, Any] | None:
    """Relay the child's log lines into this thread's logging, then return its row.

    Raises the child's `FlywheelError` again (same class, same message, same exit code); a
    crash becomes a RuntimeError, which the task's retry runs again in-process.
    """
    assert ahead.process.stderr is not None and ahead.process.stdout is not None
    for line in ahead.process.stderr:
        _relay(line)
    answer = ahead.process.stdout.read()
    ahead.process.wait()
    if ahead.process.stdin is not None:
        ahead.process.stdin.close()
    if not answer.strip():
        raise RuntimeError(f"{ahead.step} ended with exit code {ahead.process.returncode}")
    outcome = json.loads(answer)
    if "error" in outcome:
        raise _error(outcome["error"], outcome["message"])
    return outcome["row"]  # type: ignore[no-any-return]


def _relay(line: str) -> None:
    if not line.startswith(RECORD):
        sys.stderr.write(line)  # a library's own print or warning, passed on as it came
        return
    record = json.loads(line.removeprefix(RECORD))
    logging.getLogger(record["name"]).log(record["level"], "%s", record["message"])


def _error(kind: str, message: str) -> Exception:
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, errors.FlywheelError):
        return cls(message)
    return RuntimeError(message)


class _RelayHandler(logging.Handler):
    """One JSON line per record on stderr, for `collect` to log again in the parent."""

    def emit(self, record: logging.LogRecord) -> None:
        line = {"name": record.name, "level": record.levelno, "message": record.getMessage()}
        sys.stderr.write(RECORD + json.dumps(line) + "\n")
        sys.stderr.flush()


def _leave_with_parent(stdin: IO[str]) -> None:
    stdin.read()  # EOF: the parent closed the pipe after collecting, or died
    os._exit(1)


def _main() -> None:
    from pipelines.collector import imports_without_gc

    with imports_without_gc():
        import dvc.repo  # noqa: F401  (what validate spends its start-up on)
        import great_expectations  # noqa: F401

        from flywheel.logs import quiet_libraries
        from flywheel.steps.context import make_context
        from flywheel.steps.execute import execute_stage

    step, spec, force = sys.argv[1], sys.argv[2] or None, sys.argv[3:] == ["force"]
    threading.Thread(target=_leave_with_parent, args=(sys.stdin,), daemon=True).start()
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything a library prints goes to stderr, and is passed on from there
    logging.basicConfig(level=logging.INFO, handlers=[_RelayHandler()], force=True)
    quiet_libraries()
    try:
        context = make_context(Path(spec) if spec else None)
        outcome: dict[str, Any] = {"row": execute_stage(context, step, force)}
    except errors.FlywheelError as exc:
        outcome = {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # a bug: its traceback goes to the run's log, the task retries
        log.error("%s crashed in its own process:\n%s", step, traceback.format_exc())
        outcome = {"error": "crash", "message": f"{step} crashed: {type(exc).__name__}: {exc}"}
    result.write(json.dumps(outcome, default=str) + "\n")
    result.flush()


if __name__ == "__main__":
    from flywheel.process_exit import run_without_teardown

    run_without_teardown(_main)
