"""A small convolutional network for an image dataset, trained with early stopping.

Read it top to bottom: build the network, seed, loop over epochs (augment, step, score on
valid, keep the best weights in memory), restore the best, wrap them for inference. Each image
is first standardized (per channel, to zero mean and unit spread: a shape is the same shape in
any colours or light), then conv blocks (conv 3x3, batch norm, ReLU, 2x2 max-pool) and an
adaptive pool make any image size fit one head: pooled to 1x1 (the default) the head sees what
was found, wherever it was in the image; to 7x7 (the first layout) also where. The head's
hidden layer is the embedding monitoring compares. The wrapper
(`CNNClassifier`) holds plain numpy weights and rebuilds the module on the CPU when first used,
so what is pickled into the ImageModel loads and serves without a GPU. It records the layout's
`ARCHITECTURE` version: code that changes the layout raises it, and a network of a version the
code does not know is refused when it is unpickled, with one line, rather than failing on the
first request with a shape error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from flywheel.atomic import write_atomically
from flywheel.config import CNNParams
from flywheel.errors import ConfigError, IncompatibleModel
from flywheel.training import cuda_graph
from flywheel.training.device import DeviceChoice, choose_device
from flywheel.training.ranks import SINGLE, Group

# SmallCNN's layout: conv blocks (conv 3x3, batch norm, ReLU, 2x2 max-pool), adaptive pool to
# 7x7, hidden layer, dropout, head. Version 1 is also every network pickled before versions;
# version 2 adds the per-image standardization and the pool's side to the config (a version 1
# config has neither: no standardization, 7x7, as it was trained).
ARCHITECTURE = 2
KNOWN_ARCHITECTURES = (1, 2)
CHECKPOINT_NAME = "cnn.pt"
POOLED = 7  # version 1's pool side: the head sees channels x 7 x 7 numbers (28 / 2 / 2)
SPREAD_FLOOR = 0.05  # added to a flat image's spread, so standardizing it divides by no zero
SCORE_BATCH = 512  # images per forward pass when scoring


class SmallCNN(nn.Module):
    def __init__(self, channels: int, blocks: list[int], hidden: int, dropout: float,
                 classes: int, pool: int = POOLED, standardize: bool = False) -> None:
        super().__init__()
        self.standardize = standardize
        layers: list[nn.Module] = []
        width = channels
        for out in blocks:
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        layers.append(nn.AdaptiveAvgPool2d(pool))
        self.features = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(width * pool * pool, hidden),
                                       nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            spread = x.std(dim=(2, 3), keepdim=True) + SPREAD_FLOOR
            x = (x - x.mean(dim=(2, 3), keepdim=True)) / spread
        return self.embedding(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@dataclass
class CNNClassifier:
    """The trained network as served: `predict_proba` and `embed` on `decode.to_batch` input."""

    config: dict[str, Any]  # SmallCNN's arguments: the block widths, hidden, dropout, classes
    weights: dict[str, np.ndarray]
    architecture: int = ARCHITECTURE
    _module: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "weights": self.weights,
                "architecture": self.architecture, "_module": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        architecture = state.get("architecture", 1)  # pickled before versions: the first layout
        check_architecture(architecture, f"CNN network (blocks {state['config'].get('blocks')})")
        self.__dict__.update({**state, "architecture": architecture, "_module": None})

    def module(self) -> SmallCNN:
        if self._module is None:
            net = SmallCNN(**self.config)
            net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.weights.items()})
            self._module = net.eval()
        return self._module  # type: ignore[no-any-return]

    def _run(self, batch: np.ndarray, embed: bool) -> np.ndarray:
        net, parts = self.module(), []
        with torch.inference_mode():
            for start in range(0, len(batch), SCORE_BATCH):
                x = torch.from_numpy(np.ascontiguousarray(batch[start:start + SCORE_BATCH]))
                out = net.embed(x) if embed else torch.softmax(net(x), dim=1)
                parts.append(out.numpy())
        return np.concatenate(parts).astype("float64")

    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Rows summing to 1 in float64 (float32's softmax is off by ~1e-7, which metrics that
        check for probabilities warn about)."""
        scores = self._run(batch, embed=False)
        return scores / scores.sum(axis=1, keepdims=True)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, embed=True)


def check_architecture(version: object, what: str) -> None:
    """Refuse a network whose layout version this code cannot rebuild, in one line."""
    if version not in KNOWN_ARCHITECTURES:
        raise IncompatibleModel(
            f"{what}: architecture version {version!r} is unknown to this Flywheel, which "
            f"loads version(s) {', '.join(map(str, KNOWN_ARCHITECTURES))}; load it with the "
            "Flywheel that trained it, or retrain"
        )


def augmentation(
    shape: torch.Size, params: CNNParams, generator: torch.Generator
) -> torch.Tensor:
    """Per image of a batch of `shape`, the affine map (n x 2 x 3, float32, on the CPU, where
    the seeded generator draws) that rotates it by up to `rotation` degrees and shifts it by up
    to `shift` pixels. Drawn apart from `warp` so a captured CUDA graph takes it as input."""
    n, _, height, width = shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(params.rotation)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * params.shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([
        torch.stack([cos, -sin, 2 * shift[:, 0] / width], dim=1),
        torch.stack([sin, cos, 2 * shift[:, 1] / height], dim=1),
    ], dim=1)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The images moved by their affine maps; what falls outside is zero."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def fit_cnn(
    params: CNNParams, seed: int, train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray], classes: int, group: Group | None = None,
    checkpoint_dir: Path | None = None,
) -> tuple[CNNClassifier, dict[str, Any]]:
    """Train on `train` (images, class codes), stop when the valid loss stops improving, and
    return the best epoch's network with what happened (epochs, device, images per second).

    One process alone (`group` None), or one rank of DDP (cnn_distributed.py): each rank steps
    on its shard of every batch, DDP averages the gradients, and the valid loss is averaged
    over ranks so all of them stop at the same epoch. The best weights go to
    `checkpoint_dir`/cnn.pt, from rank 0 only.
    """
    group = group or SINGLE
    torch.manual_seed(seed)  # the same initial weights on every rank
    choice = choose_device(params.device)
    device = group.device(choice.device)
    config: dict[str, Any] = {"channels": int(train[0].shape[1]), "blocks": list(params.channels),
              "hidden": params.hidden, "dropout": params.dropout, "classes": classes,
              "pool": params.pool, "standardize": params.standardize}
    net = SmallCNN(**config).to(device)
    data = (*_tensors(train, device), *_tensors(valid, device))
    started = time.perf_counter()
    graph = params.cuda_graph and cuda_graph.usable(choice, group.world_size)
    run = _epochs(net, data, params, seed, choice, group, graph)
    seconds = time.perf_counter() - started
    if not run.best_state:  # every epoch's valid loss was NaN: the fit diverged
        raise ConfigError(f"train.cnn: valid loss was never finite in {run.epochs} epochs; "
                          f"lower lr (now {params.lr})")
    network = CNNClassifier(config, {k: v.float().numpy() for k, v in run.best_state.items()})
    if checkpoint_dir is not None and group.is_main:
        save_checkpoint(checkpoint_dir / CHECKPOINT_NAME, network, run.best_epoch, seed)
    details = {"epochs": run.epochs, "best_epoch": run.best_epoch,
               "best_valid_loss": run.best_loss, "device": choice.device, "amp": choice.amp,
               "nproc": group.world_size, "architecture": ARCHITECTURE,
               "cuda_graph": run.graphed,
               "train_images_per_s": round(run.epochs * len(train[0]) / max(seconds, 1e-9), 1)}
    return network, details


@dataclass
class _Run:
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    epochs: int = 0
    graphed: bool = False  # full batches replayed a captured CUDA graph (cuda_graph.py)


def _epochs(net: SmallCNN, data: tuple[torch.Tensor, ...], params: CNNParams, seed: int,
            choice: DeviceChoice, group: Group, graph: bool = False) -> _Run:
    """The epoch loop: augment and step on this rank's rows, score on valid, keep the best.

    Alone the order is a permutation of every row; under DDP each rank takes its
    DistributedSampler shard and steps on batch_size / world_size of them, which with the
    averaged gradients is the single process's step on batch_size images.
    """
    x_train, y_train, x_valid, y_valid = data
    # Augmentation differs per rank (rank 0 alone draws what one process would).
    generator = torch.Generator().manual_seed(seed + group.rank)
    step_net = group.wrap(net)
    local_batch, run = group.local_batch(params.batch_size), _Run()
    run.graphed = graph and x_train.is_cuda and len(x_train) >= local_batch
    # A captured step reads the learning rate the schedule changes from a device tensor.
    lr = torch.tensor(params.lr, device=x_train.device) if run.graphed else params.lr
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, capturable=run.graphed)
    epochs, patience = epoch_plan(params, len(x_train))
    # The step size decays to zero over the epochs: few epochs still end on fine steps.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    step = _stepper(step_net, optimizer, choice, (x_train, y_train),
                    local_batch if run.graphed else 0)
    for epoch in range(1, epochs + 1):
        step_net.train()
        order = group.epoch_order(len(x_train), generator, seed, epoch).to(x_train.device)
        for start in range(0, len(order), local_batch):
            x = x_train[order[start:start + local_batch]]
            theta = augmentation(x.shape, params, generator).to(x.device, x.dtype)
            step(x, y_train[order[start:start + local_batch]], theta)
        schedule.step()
        run.epochs = epoch
        loss_now = group.mean(_valid_loss(net, x_valid, y_valid, choice))
        if loss_now < run.best_loss:
            run.best_loss, run.best_epoch = loss_now, epoch
            run.best_state = {k: v.detach().to("cpu", copy=True)
                              for k, v in net.state_dict().items()}
        elif epoch - run.best_epoch >= patience:
            break
    return run


def _stepper(
    net: nn.Module, optimizer: torch.optim.Optimizer, choice: DeviceChoice,
    train: tuple[torch.Tensor, torch.Tensor], graph_batch: int,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]:
    """The step on (images, classes, affine maps): eager, or (`graph_batch` > 0) a captured CUDA
    graph (cuda_graph.py) for batches of that size and the eager step for a shorter last one."""
    scaler = torch.amp.GradScaler(enabled=choice.grad_scaler)

    def eager(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> None:
        with _autocast(choice):
            loss = F.cross_entropy(net(warp(x, theta)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    if not graph_batch:
        return eager
    identity = torch.eye(2, 3).to(train[0].device, train[0].dtype).repeat(graph_batch, 1, 1)
    return cuda_graph.replaying(
        eager, (train[0][:graph_batch], train[1][:graph_batch], identity), net, optimizer,
        "train.cnn.cuda_graph",
    )


def epoch_plan(params: CNNParams, rows: int) -> tuple[int, int]:
    """The epochs to train and the patience, for `rows` training images.

    `max_epochs`, or more for a small training split: enough epochs for `min_steps` steps of
    `batch_size` images (a few hundred images make a few steps an epoch, too few to learn from
    in `max_epochs`). The patience stretches with them, the same share of the schedule: three
    epochs of five steps would stop a fit before it had begun. Counted on the global batch,
    so every DDP rank agrees."""
    steps_per_epoch = math.ceil(rows / params.batch_size)
    epochs = max(params.max_epochs, math.ceil(params.min_steps / max(steps_per_epoch, 1)))
    return epochs, math.ceil(params.patience * epochs / params.max_epochs)


def save_checkpoint(path: Path, network: CNNClassifier, epoch: int, seed: int) -> None:
    """The best epoch's network as plain tensors (loads with `weights_only`), config included."""
    checkpoint = {"architecture": ARCHITECTURE, "config": network.config, "epoch": epoch,
                  "seed": seed,
                  "state_dict": {k: torch.from_numpy(v) for k, v in network.weights.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: Path) -> CNNClassifier:
    """The network `save_checkpoint` wrote; an architecture this code does not know is refused."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    check_architecture(checkpoint.get("architecture"), str(path))
    return CNNClassifier(checkpoint["config"],
                         {k: v.numpy() for k, v in checkpoint["state_dict"].items()})


def _tensors(split: tuple[np.ndarray, np.ndarray], device: torch.device
             ) -> tuple[torch.Tensor, ...]:
    return torch.from_numpy(split[0]).to(device), torch.from_numpy(
        split[1].astype("int64")).to(device)


def _autocast(choice: DeviceChoice) -> Any:
    """Autocast without its weight-cast cache: a graph capture must not keep casts made outside
    it, and one forward per step has nothing to reuse."""
    dtype = getattr(torch, choice.amp_dtype) if choice.amp_dtype else None
    return torch.autocast(
        device_type=choice.device, dtype=dtype, enabled=choice.amp, cache_enabled=False
    )


def _valid_loss(net: SmallCNN, x: torch.Tensor, y: torch.Tensor, choice: DeviceChoice) -> float:
    net.eval()
    total = 0.0
    with torch.inference_mode(), _autocast(choice):
        for start in range(0, len(x), SCORE_BATCH):
            logits = net(x[start:start + SCORE_BATCH]).float()
            total += float(F.cross_entropy(logits, y[start:start + SCORE_BATCH], reduction="sum"))
    return total / len(x)
