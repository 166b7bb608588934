"""A small convolutional network for an image dataset, trained with early stopping.

Read it top to bottom: build the network, seed, loop over epochs (augment, step, score on
valid, keep the best weights in memory), restore the best, wrap them for inference. Conv
blocks (conv 3x3, batch norm, ReLU, 2x2 max-pool) then an adaptive pool to 7x7 make any image
size fit one head; the head's hidden layer is the embedding monitoring compares. The wrapper
(`CNNClassifier`) holds plain numpy weights and rebuilds the module on the CPU when first used,
so what is pickled into the ImageModel loads and serves without a GPU.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from flywheel.config import CNNParams
from flywheel.training.device import DeviceChoice, choose_device

POOLED = 7  # the adaptive pool's side: the head sees channels x 7 x 7 numbers (28 / 2 / 2)
SCORE_BATCH = 512  # images per forward pass when scoring


class SmallCNN(nn.Module):
    def __init__(self, channels: int, blocks: list[int], hidden: int, dropout: float,
                 classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = channels
        for out in blocks:
            layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        layers.append(nn.AdaptiveAvgPool2d(POOLED))
        self.features = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(width * POOLED * POOLED, hidden),
                                       nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@dataclass
class CNNClassifier:
    """The trained network as served: `predict_proba` and `embed` on `decode.to_batch` input."""

    config: dict[str, Any]  # SmallCNN's arguments
    weights: dict[str, np.ndarray]
    _module: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "weights": self.weights, "_module": None}

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
        return self._run(batch, embed=False)

    def embed(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch, embed=True)


def augment(x: torch.Tensor, params: CNNParams, generator: torch.Generator) -> torch.Tensor:
    """Each image rotated by up to `rotation` degrees and shifted by up to `shift` pixels."""
    n, _, height, width = x.shape
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(params.rotation)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * params.shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos, -sin, 2 * shift[:, 0] / width], dim=1),
        torch.stack([sin, cos, 2 * shift[:, 1] / height], dim=1),
    ], dim=1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def fit_cnn(
    params: CNNParams, seed: int, train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray], classes: int,
) -> tuple[CNNClassifier, dict[str, Any]]:
    """Train on `train` (images, class codes), stop when the valid loss stops improving, and
    return the best epoch's network with what happened (epochs, device, images per second)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    choice = choose_device(params.device)
    config: dict[str, Any] = {"channels": int(train[0].shape[1]), "blocks": list(params.channels),
              "hidden": params.hidden, "dropout": params.dropout, "classes": classes}
    net = SmallCNN(**config).to(choice.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=params.lr)
    scaler = torch.amp.GradScaler(enabled=choice.grad_scaler)
    # The step size decays to zero over max_epochs: few epochs still end on fine steps.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.max_epochs)
    x_train, y_train = _tensors(train, choice.device)
    x_valid, y_valid = _tensors(valid, choice.device)
    best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
    started = time.perf_counter()
    for epoch in range(1, params.max_epochs + 1):
        net.train()
        order = torch.randperm(len(x_train), generator=generator).to(choice.device)
        for start in range(0, len(order), params.batch_size):
            rows = order[start:start + params.batch_size]
            with _autocast(choice):
                logits = net(augment(x_train[rows], params, generator))
                loss = F.cross_entropy(logits.float(), y_train[rows])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        schedule.step()
        loss_now = _valid_loss(net, x_valid, y_valid, choice)
        if loss_now < best_loss:
            best_loss, best_epoch, best_state = loss_now, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= params.patience:
            break
    seconds = time.perf_counter() - started
    assert best_state is not None  # the first epoch always improves on infinity
    weights = {k: v.detach().float().cpu().numpy() for k, v in best_state.items()}
    details = {"epochs": epoch, "best_epoch": best_epoch, "best_valid_loss": best_loss,
               "device": choice.device, "amp": choice.amp,
               "train_images_per_s": round(epoch * len(x_train) / max(seconds, 1e-9), 1)}
    return CNNClassifier(config, weights), details


def _tensors(split: tuple[np.ndarray, np.ndarray], device: str) -> tuple[torch.Tensor, ...]:
    return torch.from_numpy(split[0]).to(device), torch.from_numpy(
        split[1].astype("int64")).to(device)


def _autocast(choice: DeviceChoice) -> Any:
    dtype = getattr(torch, choice.amp_dtype) if choice.amp_dtype else None
    return torch.autocast(device_type=choice.device, dtype=dtype, enabled=choice.amp)


def _valid_loss(net: SmallCNN, x: torch.Tensor, y: torch.Tensor, choice: DeviceChoice) -> float:
    net.eval()
    total = 0.0
    with torch.inference_mode(), _autocast(choice):
        for start in range(0, len(x), SCORE_BATCH):
            logits = net(x[start:start + SCORE_BATCH]).float()
            total += float(F.cross_entropy(logits, y[start:start + SCORE_BATCH], reduction="sum"))
    return total / len(x)
