"""`flywheel shadow start|stop`: the `challenger` alias, which running services shadow.

Setting the alias is all it takes: each service polls it (serving/shadow.py) and checks the
version's signature and files itself before loading it, so nothing is verified twice here;
the version must exist, so a typo is an error now, not a silent "nothing shadows".
"""

from __future__ import annotations

from typing import Any

from flywheel.errors import RegistryError
from flywheel.registry import store
from flywheel.settings import Settings


def start_challenger(settings: Settings, name: str, version: str) -> dict[str, Any]:
    """Point `NAME@challenger` at `version`; what it pointed at before, if anything."""
    from mlflow.exceptions import MlflowException

    client = store.connect(settings)
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise RegistryError(f"{name!r} has no version {version!r}; `flywheel status` lists "
                            "the registered ones") from exc
    before = store.version_by_alias(client, name, store.CHALLENGER)
    client.set_registered_model_alias(name, store.CHALLENGER, version)
    return {"model_name": name, "challenger": version,
            "replaced": None if before is None else str(before.version)}


def stop_challenger(settings: Settings, name: str) -> dict[str, Any]:
    """Remove `NAME@challenger` (services stop shadowing within a reload interval)."""
    client = store.connect(settings)
    before = store.version_by_alias(client, name, store.CHALLENGER)
    if before is not None:
        client.delete_registered_model_alias(name, store.CHALLENGER)
    return {"model_name": name, "removed": None if before is None else str(before.version)}
