"""A registry writer cannot get code run: the attack of issue 18 against a real `bentoml serve`.

The attacker can write the registry (its SQLite file, or an unauthenticated MLflow server) but
not the signing key. They register a pickle that would create a marker file when unpickled,
tag it with its own SHA-256 (self-consistent, so the digest check alone would pass), sign it
as best they can (no signature, one copied from the real champion, one made with their own key
under the real key id) and move `champion` onto it. The service must unpickle nothing, keep the
real champion serving, count each refusal and log it; batch scoring, rollback and
`promote --version` must refuse the version with one line, before loading it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.serving.conftest import (
    MODEL_NAME,
    ROOT,
    Registry,
    Server,
    session_keyring,
    start_server,
    stop_server,
    wait_for,
)
from tests.integration.serving.test_service import sample_value, scrape

pytestmark = pytest.mark.slow
REFUSED = "flywheel_model_reloads_total"


class Payload:
    """Unpickling this opens (creates) the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> Registry:
    tmp = tmp_path_factory.mktemp("signed-registry")
    local = tmp / "model"
    shutil.copytree(Path(registry.artifacts.removeprefix("file://")), local)
    reg = Registry(uri=f"sqlite:///{tmp / 'mlflow.db'}", name=MODEL_NAME,
                   model_source=local.as_uri(), artifacts=local.as_uri())
    reg.client().search_experiments()  # create the store before the server reads it
    reg.register(commit="c0ffee1", data_md5="data-v1")
    return reg


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, own: Registry) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("signed-server"), own)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def evil(tmp_path_factory: pytest.TempPathFactory, own: Registry) -> dict[str, Any]:
    """The attacker's model folder: the real one with its python_model.pkl replaced."""
    tmp = tmp_path_factory.mktemp("evil")
    folder = tmp / "model"
    shutil.copytree(Path(own.model_source.removeprefix("file://")), folder)
    marker = tmp / "code-ran"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return {"folder": folder, "marker": marker}


def register_as_attacker(own: Registry, folder: Path, signature: str | None) -> str:
    """What a registry writer can do: a version tagged with its own digest, any signature."""
    from flywheel.registry.integrity import DIGEST_TAG, digest_of
    from flywheel.registry.signing import SIGNATURE_TAG

    tags = {DIGEST_TAG: digest_of(folder.as_uri()), "flywheel.git_commit": "evil"}
    if signature is not None:
        tags[SIGNATURE_TAG] = signature
    client = own.client()
    version = client.create_model_version(own.name, folder.as_uri(), tags=tags)
    client.set_registered_model_alias(own.name, "champion", version.version)
    return str(version.version)


def next_version(own: Registry) -> str:
    return str(len(own.client().search_model_versions(f"name='{own.name}'")) + 1)


def forged_signature(own: Registry, folder: Path, number: str, how: str) -> str | None:
    """The attacker's best signatures for their version `number`."""
    from flywheel.registry.integrity import digest_of
    from flywheel.registry.signing import PROMOTED, SIGNATURE_TAG, Keyring

    if how == "none":
        return None
    if how == "copied from version 1":
        return str(own.client().get_model_version(own.name, "1").tags[SIGNATURE_TAG])
    ring = session_keyring()  # only its key id is public knowledge; the key is the attacker's
    theirs = Keyring(path=Path("attacker.key"), signing_id=ring.signing_id,
                     keys={ring.signing_id: os.urandom(32)})
    return theirs.sign(own.name, number, digest_of(folder.as_uri()), PROMOTED)


ATTEMPTS = ("none", "copied from version 1", "the attacker's key under the real key id")


def test_the_payload_runs_when_loaded_without_the_signature_check(evil: dict[str, Any]) -> None:
    """Control: the attack is real (MLflow unpickles python_model.pkl on load)."""
    import mlflow.pyfunc

    with pytest.raises(Exception):  # noqa: B017 (what fails after the payload ran is MLflow's)
        mlflow.pyfunc.load_model(str(evil["folder"]))
    assert evil["marker"].exists()
    evil["marker"].unlink()


def test_a_self_consistently_tagged_pickle_runs_nothing_in_the_service(
    served: Server, own: Registry, evil: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    for attempt, how in enumerate(ATTEMPTS, 1):
        signature = forged_signature(own, evil["folder"], next_version(own), how)
        number = register_as_attacker(own, evil["folder"], signature)
        wait_for(lambda n=attempt: sample_value(scrape(served), REFUSED,
                                                outcome="signature_refused") >= n,
                 30, f"the service to refuse the version signed with {how}")
        assert not evil["marker"].exists(), f"payload ran ({how})"
        answer = served.client.post("/predict", json=records[0])
        assert answer.status_code == 200 and answer.json()[0]["model_version"] == "1", how
        assert served.client.get("/readyz").status_code == 200
        assert f"version {number}" in served.logs() and "refusing to load it" in served.logs()
    assert sample_value(scrape(served), REFUSED, outcome="success") == 1  # version 1 only


def test_a_genuine_but_rejected_version_cannot_be_made_champion_by_the_registry(
    served: Server, own: Registry, records: list[dict[str, Any]]
) -> None:
    before = sample_value(scrape(served), REFUSED, outcome="signature_refused")
    number = own.register(commit="rejected", data_md5="d", champion=False)  # `registered`
    own.client().set_registered_model_alias(own.name, "champion", number)
    wait_for(lambda: sample_value(scrape(served), REFUSED, outcome="signature_refused")
             > before, 30, "the refusal of a version the gate never passed")
    assert served.client.post("/predict", json=records[0]).json()[0]["model_version"] == "1"


# --- the command-line paths ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory, own: Registry) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("signed-cli")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["promote"]["model_name"] = MODEL_NAME
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "FLYWHEEL_ROOT": str(ROOT),
           "FLYWHEEL_PARAMS_FILE": str(tmp / "params.yaml"),
           "FLYWHEEL_ARTIFACTS_DIR": str(tmp / "artifacts"),
           "FLYWHEEL_TRACKING_URI": own.uri, "MLFLOW_TRACKING_URI": own.uri}
    return {"tmp": tmp, "env": env}


def flywheel(cli_env: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("flywheel")), *args],
                          env=cli_env["env"], cwd=cli_env["tmp"], capture_output=True,
                          text=True, timeout=300)


def test_batch_rollback_and_promote_refuse_the_forged_version(
    cli_env: dict[str, Any], own: Registry, evil: dict[str, Any]
) -> None:
    from flywheel.registry.integrity import SignatureRefused

    client = own.client()
    good = client.get_model_version_by_alias(own.name, "champion").version
    number = register_as_attacker(own, evil["folder"], None)
    client.set_registered_model_alias(own.name, "champion", good)
    rows = cli_env["tmp"] / "rows.csv"
    rows.write_text((ROOT / "data" / "wa_churn.csv").read_text().splitlines()[0] + "\n")
    try:
        scored = flywheel(cli_env, "predict", str(rows), "--version", number)
        client.set_registered_model_alias(own.name, "previous", number)
        back = flywheel(cli_env, "rollback")
        forward = flywheel(cli_env, "promote", "--version", number, "--force", "--reason", "x")
    finally:
        client.delete_registered_model_alias(own.name, "previous")
    for done in (scored, back, forward):
        assert done.returncode == SignatureRefused.exit_code, done.stderr[-2000:]
        assert f"version {number}: no signature" in " ".join(done.stderr.split())
    assert not evil["marker"].exists()
    assert client.get_model_version_by_alias(own.name, "champion").version == good
