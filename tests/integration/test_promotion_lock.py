"""Promotion on a shared registry: one at a time, and only against the champion judged."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flywheel.errors import RegistryError
from flywheel.registry import lock
from flywheel.registry.gate import Check, Verdict
from flywheel.registry.promote import _still_against

NAME = "lock-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One SQLite store for the module: creating one costs seconds of migrations."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture()
def client(store: Any) -> Iterator[Any]:
    store.create_registered_model(NAME)
    yield store
    store.delete_registered_model(NAME)


def test_second_promotion_waits_for_the_first(client: Any) -> None:
    order: list[str] = []

    def second() -> None:
        with lock.promotion_lock(client, NAME):
            order.append("second")

    with lock.promotion_lock(client, NAME):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(1.0)  # not a timing assert: gives the waiter a chance to (wrongly) enter
        order.append("first")
    waiter.join(timeout=300)  # a bound, not a timing assert: minutes on a loaded machine
    assert order == ["first", "second"]
    assert not client.search_registered_models(f"name='{NAME}.promote-lock'")


def test_a_held_lock_fails_after_the_wait_and_a_stale_one_is_broken(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.create_registered_model(f"{NAME}.promote-lock", description="a run that died")
    monkeypatch.setattr(lock, "WAIT_S", 0.5)
    with (
        pytest.raises(RegistryError, match="another promotion has held"),
        lock.promotion_lock(client, NAME),
    ):
        pass
    monkeypatch.setattr(lock, "STALE_AFTER_S", 0.0)
    with lock.promotion_lock(client, NAME):
        pass  # the dead holder's lock was broken


def test_a_lock_whose_holder_was_killed_on_this_host_is_broken_at_once(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process: a promotion killed with -9
    holder = f"{lock.HOLDER}{socket.gethostname()} pid {dead.pid}"
    client.create_registered_model(f"{NAME}.promote-lock", description=holder)
    monkeypatch.setattr(lock, "WAIT_S", 0.5)  # far below STALE_AFTER_S: only death breaks it
    with lock.promotion_lock(client, NAME):
        pass


def test_a_pass_against_a_champion_that_moved_is_refused_with_the_reason(client: Any) -> None:
    passed = Verdict(promote=True, reason="beats the champion", checks=[Check("x", True, "")])
    assert _still_against(client, NAME, None, passed) == (passed, None)  # nothing moved

    run = client.create_run(client.create_experiment("e")).info.run_id
    version = client.create_model_version(NAME, f"runs:/{run}/model", run_id=run).version
    client.set_registered_model_alias(NAME, "champion", version)

    refused, now = _still_against(client, NAME, None, passed)
    assert now == str(version) and not refused.promote
    assert refused.reason.startswith(f"champion moved from None to {version}")
    assert refused.checks[-1].name == "champion_unchanged"
    rejected = Verdict(promote=False, reason="too weak")
    assert _still_against(client, NAME, None, rejected)[0] is rejected  # a no stays a no
