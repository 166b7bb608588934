"""One writer per project: `flywheel run`, `flywheel step` and `dvc repro` never interleave.

Two runs on one project would overwrite each other's step folders and race on the registry
aliases. Every writer holds an exclusive `flock` on `<artifacts>/.flywheel.lock` while it runs;
the kernel drops the lock when the process dies, even under `kill -9`, so a crash never leaves
the project locked. The file also records who holds it and whether that run finished, which is
how `flywheel status` can say that the last run was interrupted.

`dvc repro` holds DVC's own lock (`.dvc/tmp/lock`) for the whole reproduction and calls
`flywheel step` per stage, each of which takes ours. `flywheel run` therefore also refuses
while DVC's lock is held, so it cannot slip in between two of repro's stages.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from flywheel.atomic import remove_leftovers
from flywheel.errors import ProjectBusy, StorageError

if TYPE_CHECKING:
    from flywheel.settings import Settings

log = logging.getLogger(__name__)

LOCK_NAME = ".flywheel.lock"
POLL_S = 0.2
# Write failures a user fixes on the machine, reported as one line instead of a traceback.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EIO}
)


def lock_path(settings: Settings) -> Path:
    return settings.artifacts / LOCK_NAME


@contextmanager
def project_lock(settings: Settings, what: str, check_dvc: bool = False) -> Iterator[None]:
    """Hold the project lock for the block, waiting at most `settings.lock_timeout_s`.

    Refuses with `ProjectBusy` (one line naming the holder) when the wait runs out. On exit
    the file records whether the block finished or failed; after a crash it still says
    `running`, with no holder, which `last_run` reports as interrupted.
    """
    with _storage_errors():
        path = lock_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            _acquire(handle, settings.lock_timeout_s, path)
            if check_dvc:
                _refuse_if_dvc_busy(settings.root)
            _record(handle, what, "running")
            remove_leftovers(settings.artifacts)  # what a killed writer left behind
            outcome = "failed"
            try:
                yield
                outcome = "finished"
            finally:
                _record(handle, what, outcome)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def refuse_if_busy(settings: Settings, check_dvc: bool = False) -> None:
    """Wait or refuse as `project_lock` would, before a run starts its servers and imports.

    A busy project is then refused in a second instead of after a Prefect server start-up.
    Only a shortcut: the run still takes `project_lock` for real afterwards.
    """
    path = lock_path(settings)
    if path.is_file():
        with _storage_errors(), path.open("a+") as handle:
            _acquire(handle, settings.lock_timeout_s, path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    if check_dvc:
        _refuse_if_dvc_busy(settings.root)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """A write the machine refused (disk full, read-only) is one line, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            raise
        raise StorageError(
            f"cannot write {exc.filename or 'an output'}: {exc.strerror or exc}; the step "
            "stopped and earlier outputs were left as they were (free space or fix the "
            "folder's permissions, then run again)"
        ) from exc


def last_run(settings: Settings) -> dict[str, Any] | None:
    """What the lock file says about the latest writer; `interrupted` when it died mid-run."""
    return last_run_at(lock_path(settings))


def last_run_at(path: Path) -> dict[str, Any] | None:
    """`last_run` for the lock file at `path` (`flywheel status` knows it without Settings)."""
    try:
        text = path.read_text()
        info: dict[str, Any] = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return None
    if not info:
        return None
    if info.get("state") == "running" and not _held(path):
        info["state"] = "interrupted"
    return info


def _acquire(handle: IO[str], timeout_s: float, path: Path) -> None:
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                holder = _describe(handle.read())
                raise ProjectBusy(
                    f"another Flywheel run is writing this project ({holder}; lock {path}); "
                    "wait for it to finish, or set FLYWHEEL_LOCK_TIMEOUT_S to wait longer"
                ) from None
            time.sleep(POLL_S)


def _refuse_if_dvc_busy(root: Path) -> None:
    """Refuse while a DVC command works on this repository.

    DVC holds an flock on `.dvc/tmp/lock` for its bookkeeping and, while a stage command runs,
    lists itself (pid, command) in `.dvc/tmp/rwlock` instead; either means `dvc repro` is on.
    """
    tmp = root / ".dvc" / "tmp"
    holder = _dvc_rwlock_holder(tmp / "rwlock")
    if holder is None and (tmp / "lock").is_file():
        with (tmp / "lock").open("r") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            except BlockingIOError:
                holder = "a DVC command"
    if holder is not None:
        raise ProjectBusy(
            f"{holder} is working on this project (.dvc/tmp); wait for it to finish before "
            "`flywheel run` (`dvc repro` runs the same steps)"
        )


def _dvc_rwlock_holder(path: Path) -> str | None:
    """The command of a live process DVC's rwlock lists, if any."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return None
    entries = [*info.get("write", {}).values()]
    entries += [e for readers in info.get("read", {}).values() for e in readers]
    for entry in entries:
        try:
            os.kill(int(entry["pid"]), 0)
        except (OSError, KeyError, TypeError, ValueError):
            continue
        return f"`{entry.get('cmd', 'dvc')}` (pid {entry['pid']})"
    return None


def _held(path: Path) -> bool:
    with path.open("r") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _record(handle: IO[str], what: str, state: str) -> None:
    info = {
        "what": what,
        "pid": os.getpid(),
        "command": " ".join(sys.argv)[:300],
        "state": state,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(info))
    handle.flush()


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return f"{info['what']} by pid {info['pid']} since {info['at']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
