"""The CNN under DistributedDataParallel: two gloo ranks on CPU, through the MLP's torchrun
launcher (`train.cnn.nproc: 2`), on scikit-learn's 8x8 digits.

What must hold: the two-rank network scores on the valid split close to the one-process one
with the same seed; each rank stepped on its own half of the training images (observed inside
the rank processes, through a sitecustomize on PYTHONPATH as test_ddp.py does); and the
checkpoint was written once, by rank 0, and is the network returned. Started by an external
torchrun instead (as the Kubernetes GPU Job starts `flywheel step train`), the image candidates
train as the launcher's ranks and only rank 0 writes the checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from flywheel.config import CNNParams
from flywheel.training.cnn import CHECKPOINT_NAME, fit_cnn, load_checkpoint
from flywheel.training.cnn_distributed import fit_cnn_distributed
from tests.conftest import REPO

TRAIN = 1200  # of 1,797 digits; even, so DistributedSampler pads nothing

# Inside each rank: the rows of its first epoch, and every checkpoint it writes, to files.
RECORDING = """
import json, os
if os.environ.get("RANK") and os.environ.get("FLYWHEEL_TEST_RECORD"):
    from pathlib import Path
    import flywheel.training.cnn as cnn
    from flywheel.training.ranks import Group
    record, rank = Path(os.environ["FLYWHEEL_TEST_RECORD"]), os.environ["RANK"]
    _order, _save = Group.epoch_order, cnn.save_checkpoint
    def epoch_order(self, n, generator, seed, epoch):
        rows = _order(self, n, generator, seed, epoch)
        if epoch == 1:
            (record / f"rows-rank{rank}.json").write_text(json.dumps(rows.tolist()))
        return rows
    def save_checkpoint(path, *args, **kwargs):
        (record / f"saved-rank{rank}-{len(list(record.glob('saved-*')))}").write_text(str(path))
        return _save(path, *args, **kwargs)
    Group.epoch_order, cnn.save_checkpoint = epoch_order, save_checkpoint
"""


# One rank of an external launcher's job: the image candidates as `flywheel step train` calls
# them, each rank with a checkpoint folder of its own, its valid metrics to a file.
LAUNCHED_RANK = """
import json, os, sys
from pathlib import Path
from flywheel.config import load_params
from flywheel.data.task import Task
from flywheel.training.images import train_image_candidates
from tests.integration.test_ddp_cnn import PARAMS, digits

out, rank = Path(sys.argv[1]), os.environ["RANK"]
train = load_params(Path("params.yaml")).train.model_copy(
    update={"cnn": PARAMS, "image_candidates": ["cnn"]})
(result,) = train_image_candidates(train, Task("multiclass", tuple("0123456789")), *digits(),
                                   lambda _line: None, out / f"rank{rank}")
(out / f"result-rank{rank}.json").write_text(json.dumps(
    {"valid": result.valid_metrics, "nproc": result.details["nproc"]}))
"""
# One block of 8 on 8x8 digits keeps where a stroke is (pool 7): pooled to 1x1, 8 numbers
# an image are too few to tell ten digits apart.
PARAMS = CNNParams(channels=[8], pool=7, hidden=64, lr=0.01, batch_size=32, max_epochs=12,
                   patience=4, shift=1, rotation=5, device="cpu")


def digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))  # the file is sorted by writer
    images = (x[order] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)  # to_batch's layout
    y = y[order]
    return (images[:TRAIN], y[:TRAIN]), (images[TRAIN:], y[TRAIN:])


def accuracy(network, valid: tuple[np.ndarray, np.ndarray]) -> float:  # type: ignore[no-untyped-def]
    return float((network.predict_proba(valid[0]).argmax(axis=1) == valid[1]).mean())


def test_two_ranks_train_the_cnn_like_one_process_on_their_own_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, valid = digits()
    params = PARAMS
    one, _ = fit_cnn(params, 0, train, valid, classes=10)

    hooks, record = tmp_path / "hooks", tmp_path / "record"
    hooks.mkdir()
    record.mkdir()
    (hooks / "sitecustomize.py").write_text(RECORDING)
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("FLYWHEEL_TEST_RECORD", str(record))
    lines: list[str] = []
    fitted = fit_cnn_distributed(params.model_copy(update={"nproc": 2}), 0, train, valid, 10,
                                 tmp_path / "out", lines.append)

    assert fitted is not None
    two, details = fitted
    assert details["nproc"] == 2 and lines == ["cnn: DistributedDataParallel on 2 processes "
                                               "(torchrun)"]
    assert accuracy(two, valid) == pytest.approx(accuracy(one, valid), abs=0.03)
    assert accuracy(two, valid) > 0.93
    shards = [set(json.loads((record / f"rows-rank{r}.json").read_text())) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == TRAIN // 2
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(TRAIN))
    saved = sorted(p.name for p in record.glob("saved-*"))
    assert saved == ["saved-rank0-0"]  # once, by rank 0
    assert (record / saved[0]).read_text() == str((tmp_path / "out" / CHECKPOINT_NAME).resolve())
    again = load_checkpoint(tmp_path / "out" / CHECKPOINT_NAME)
    assert np.array_equal(again.predict_proba(valid[0]), two.predict_proba(valid[0]))


def test_ranks_an_external_torchrun_starts_train_the_image_cnn_and_rank_0_writes(
    tmp_path: Path,
) -> None:
    script = tmp_path / "rank.py"
    script.write_text(LAUNCHED_RANK)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         "--max-restarts=0", str(script), str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["nproc"] for r in results] == [2, 2]  # the launcher's world, not train.cnn.nproc
    assert results[0]["valid"]["accuracy"] > 0.93
    assert (tmp_path / "rank0" / CHECKPOINT_NAME).is_file()
    assert not (tmp_path / "rank1" / CHECKPOINT_NAME).exists()
