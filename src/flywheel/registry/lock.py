"""One promotion at a time per registered model, whatever the store behind MLflow.

Two trainings racing on a shared registry could both judge against the same champion and
both move the alias; the second would silently replace the first. MLflow has no
compare-and-set for aliases, but creating a registered model is atomic in every store (a
unique name in SQLite, PostgreSQL, or behind `mlflow server`), so a lock model
`<name>.promote-lock` serves as a mutex over HTTP too. A holder that died leaves a lock older
than `STALE_AFTER_S`, which the next promotion breaks; one that ran on this host and whose
process is gone (killed mid-promotion) is broken at once, so the next run starts cleanly.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flywheel.errors import RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

WAIT_S = 120.0  # longest wait for another promotion of the same model
STALE_AFTER_S = 600.0  # a promotion holds the lock for seconds; ten minutes means its holder died
POLL_S = 0.5
HOLDER = "promotion in progress: "  # + "<host> pid <pid>", the lock model's description


@contextmanager
def promotion_lock(client: MlflowClient, model_name: str) -> Iterator[None]:
    """Hold the model's promotion lock for the block; fail after WAIT_S rather than hang."""
    name = f"{model_name}.promote-lock"
    deadline = time.monotonic() + WAIT_S
    while not _try_create(client, name):
        _break_if_stale(client, name)
        if time.monotonic() > deadline:
            raise RegistryError(
                f"{model_name}: another promotion has held {name!r} for over {WAIT_S:.0f} s; "
                "wait for it, or delete that registered model if its run died"
            )
        time.sleep(POLL_S)
    try:
        yield
    finally:
        client.delete_registered_model(name)


def _try_create(client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    holder = f"{HOLDER}{socket.gethostname()} pid {os.getpid()}"
    try:
        client.create_registered_model(name, description=holder)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return False
        raise
    return True


def _break_if_stale(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        held = client.get_registered_model(name)
    except MlflowException:
        return  # released meanwhile
    age_s = time.time() - held.creation_timestamp / 1000
    if age_s > STALE_AFTER_S or _holder_died(held.description):
        log.warning("breaking %s, held for %.0f s (%s)", name, age_s, held.description)
        client.delete_registered_model(name)


def _holder_died(description: str | None) -> bool:
    """Whether the holder ran on this host and its process no longer exists (kill -9)."""
    host, _, pid = (description or "").removeprefix(HOLDER).rpartition(" pid ")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's promotion: only its age can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
