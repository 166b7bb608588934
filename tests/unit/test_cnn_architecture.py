"""The pickled CNN records its layout's version; one this code does not know is refused in one
line when it is unpickled: by the service (which keeps the champion it serves) and by every
other load (`flywheel predict` goes through the same `load_version`)."""

from __future__ import annotations

import logging
import pickle
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from flywheel.config import CNNParams
from flywheel.errors import DataError, IncompatibleModel
from flywheel.training.cnn import ARCHITECTURE, CNNClassifier, SmallCNN

CONFIG = {"channels": 1, "blocks": [2], "hidden": 4, "dropout": 0.0, "classes": 2}


def network(architecture: int = ARCHITECTURE) -> CNNClassifier:
    weights = {k: v.numpy() for k, v in SmallCNN(**CONFIG).state_dict().items()}
    return CNNClassifier(dict(CONFIG), weights, architecture=architecture)


def test_the_architecture_and_blocks_travel_with_the_pickle() -> None:
    again = pickle.loads(pickle.dumps(network()))
    assert again.architecture == ARCHITECTURE == 2 and again.config["blocks"] == [2]
    assert again.predict_proba(np.zeros((3, 1, 8, 8), dtype=np.float32)).shape == (3, 2)


def test_a_network_pickled_before_versions_loads_as_the_first_layout() -> None:
    old = CNNClassifier.__new__(CNNClassifier)  # what unpickling an old file does
    old.__setstate__({"config": dict(CONFIG), "weights": network().weights, "_module": None})
    assert old.architecture == 1
    assert old.predict_proba(np.zeros((1, 1, 8, 8), dtype=np.float32)).shape == (1, 2)


def test_a_first_layout_config_rebuilds_the_7x7_head_without_standardizing() -> None:
    old = SmallCNN(**CONFIG)  # a version 1 config: no pool, no standardize
    assert not old.standardize and old.embedding[1].in_features == 2 * 7 * 7
    new = SmallCNN(**CONFIG, pool=1, standardize=True)
    assert new.embedding[1].in_features == 2 * 1 * 1


@pytest.mark.parametrize("standardize", [True, False])
def test_standardized_answers_do_not_move_with_the_light(standardize: bool) -> None:
    import torch

    torch.manual_seed(0)
    net = SmallCNN(**{**CONFIG, "blocks": [4]}, pool=1, standardize=standardize).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.inference_mode():
        shift = (net(x) - net(x + 0.3)).abs().max().item()  # every pixel 0.3 lighter
    assert (shift < 1e-4) == standardize, shift


def test_an_unknown_architecture_is_refused_in_one_line() -> None:
    with pytest.raises(IncompatibleModel) as raised:
        pickle.loads(pickle.dumps(network(architecture=99)))
    message = str(raised.value)
    assert "\n" not in message and isinstance(raised.value, DataError)
    assert "CNN network (blocks [2])" in message
    assert "architecture version 99" in message and "loads version(s) 1, 2" in message


class Client:
    def get_run(self, run_id: str) -> None:
        return None


def test_the_service_keeps_its_champion_when_the_new_one_is_of_an_unknown_architecture(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flywheel.registry import integrity
    from flywheel.serving import registry_watch
    from flywheel.serving.registry_watch import LoadedModel, ModelHolder, RegistryWatcher

    stored = pickle.dumps(network(architecture=99))  # the files the new version holds
    version = SimpleNamespace(name="flywheel-digits", version="2", run_id=None, tags={},
                              creation_timestamp=0)
    monkeypatch.setattr(registry_watch, "version_by_alias", lambda *_args: version)
    monkeypatch.setattr(integrity, "load_verified", lambda *_a, **_k: pickle.loads(stored))
    holder, reloads = ModelHolder(), []
    holder.current = LoadedModel(pyfunc=None, name="flywheel-digits", version="1")
    watcher = RegistryWatcher(holder, Client, "flywheel-digits", 60.0,
                              lambda *args: reloads.append(args))
    with caplog.at_level(logging.ERROR, logger=registry_watch.__name__):
        watcher.check_once()

    assert holder.current.version == "1" and reloads == [("failure", None, "1")]
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is None  # a user's problem: one line, no traceback
    line = record.getMessage()
    assert "flywheel-digits version 2: CNN network (blocks [2])" in line
    assert "architecture version 99" in line and line.endswith("keeping 1")
    assert holder.refused is not None and "architecture version 99" in holder.refused


def test_the_loader_flywheel_predict_uses_names_the_version_it_could_not_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flywheel.registry import integrity
    from flywheel.serving.registry_watch import load_version

    stored = pickle.dumps(network(architecture=99))
    monkeypatch.setattr(integrity, "load_verified", lambda *_a, **_k: pickle.loads(stored))
    version: Any = SimpleNamespace(name="flywheel-digits", version="7", run_id=None)
    with pytest.raises(IncompatibleModel, match=r"^flywheel-digits version 7: CNN network"):
        load_version(Client(), version)


def test_no_rotation_and_no_shift_is_the_identity_map_and_leaves_images_unchanged() -> None:
    import torch

    from flywheel.training.cnn import augmentation, warp

    x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    params = CNNParams(shift=0, rotation=0)
    theta = augmentation(x.shape, params, torch.Generator().manual_seed(1))
    assert torch.equal(theta, torch.eye(2, 3).repeat(3, 1, 1))
    assert torch.allclose(warp(x, theta), x, atol=1e-6)
    moved = augmentation(x.shape, CNNParams(shift=2, rotation=10),
                         torch.Generator().manual_seed(1))
    assert moved.shape == (3, 2, 3) and not torch.equal(moved, theta)


@pytest.mark.gpu
def test_the_cnn_trains_as_well_with_its_step_captured_as_a_cuda_graph() -> None:
    import torch

    from flywheel.training.cnn import fit_cnn

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.2, size=(120, 1, 8, 8)).astype(np.float32)
    y = np.arange(120) % 2
    x[y == 1, :, :, :4] += 0.7
    params = CNNParams(channels=[4], hidden=8, max_epochs=30, patience=30, lr=0.01,
                       batch_size=24, device="cuda")  # 80 rows: three full batches and 8 rows
    for graph in (True, False):
        network, details = fit_cnn(params.model_copy(update={"cuda_graph": graph}), 0,
                                   (x[:80], y[:80]), (x[80:], y[80:]), classes=2)
        assert details["cuda_graph"] is graph and details["device"] == "cuda"
        assert (network.predict_proba(x[80:]).argmax(axis=1) == y[80:]).mean() >= 0.95
