"""The MLP's last layer per task: how wide it is, what loss trains it, what the wrapper answers.

binary: one logit, BCEWithLogits, `predict_proba` (n, 2) from the logit (as every earlier round).
multiclass: one logit per class, cross-entropy on the class codes, `predict_proba` the softmax.
regression: one output, MSE on the target standardised with the train split's mean and standard
deviation (a price in the hundred thousands would otherwise swamp the first epochs' gradients and
AdamW's step size); `predict` maps back to the target's own scale.
The wrappers, not the trainer, are what gets pickled into the TabularModel and served.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from flywheel.data.task import Task

PREDICT_BATCH = 8192  # rows per forward pass at inference: bounded memory for any table size


def forward_rows(module: nn.Module, X: np.ndarray, input_dim: int) -> np.ndarray:
    """The network's outputs (n, width) in float64, PREDICT_BATCH rows at a time, dropout off."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != input_dim:
        raise ValueError(f"expected rows of {input_dim} features, got shape {X.shape}")
    module.eval()  # dropout off, whatever state the caller left it in
    parts = []
    with torch.no_grad():
        for start in range(0, len(X), PREDICT_BATCH):
            batch = torch.from_numpy(X[start : start + PREDICT_BATCH])
            parts.append(module(batch).numpy().astype(np.float64))
    width = parts[0].shape[1] if parts else 1
    return np.concatenate(parts) if parts else np.empty((0, width))


@dataclass
class TorchMLPClassifier:
    """Binary: the trained network on CPU in eval mode, with the sklearn-style `predict_proba`.

    Pickles as a plain nn.Module, so any process with torch and flywheel can load it,
    including an MLflow pyfunc on a machine without a GPU.
    """

    module: nn.Module
    input_dim: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        # Both columns straight from the logit: 1 - p in float would round a confident
        # positive's negative-class probability to a few representable values.
        z = torch.from_numpy(forward_rows(self.module, X, self.input_dim)[:, 0])
        return torch.stack([torch.sigmoid(-z), torch.sigmoid(z)], dim=1).numpy()


@dataclass
class TorchMLPSoftmax:
    """Multiclass: class probabilities (n, classes) in class-code order."""

    module: nn.Module
    input_dim: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(forward_rows(self.module, X, self.input_dim))
        return torch.softmax(logits, dim=1).numpy()


@dataclass
class TorchMLPRegressor:
    """Regression: values (n,) on the target's scale."""

    module: nn.Module
    input_dim: int
    target_mean: float
    target_std: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = forward_rows(self.module, X, self.input_dim)[:, 0]
        return out * self.target_std + self.target_mean


class CodesCrossEntropy(nn.Module):
    """Cross-entropy on class codes carried as float32 (every target travels as float32)."""

    def forward(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, codes.long())


@dataclass(frozen=True)
class Head:
    """One task's last layer; it goes into the checkpoint, which rebuilds the wrapper alone."""

    kind: str
    classes: int = 2
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def outputs(self) -> int:
        return self.classes if self.kind == "multiclass" else 1

    def loss(self) -> nn.Module:
        if self.kind == "multiclass":
            return CodesCrossEntropy()
        return nn.MSELoss() if self.kind == "regression" else nn.BCEWithLogitsLoss()

    def scaled(self, y: np.ndarray) -> np.ndarray:
        """The target the network trains on: standardised for regression, codes otherwise."""
        return (np.asarray(y, dtype=np.float64) - self.target_mean) / self.target_std

    def wrap(self, module: nn.Module, input_dim: int) -> Any:
        if self.kind == "multiclass":
            return TorchMLPSoftmax(module, input_dim)
        if self.kind == "regression":
            return TorchMLPRegressor(module, input_dim, self.target_mean, self.target_std)
        return TorchMLPClassifier(module, input_dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_for(task: Task | None, y_train: np.ndarray) -> Head:
    """The head for `task` (binary when None); a regression's scale comes from the train rows."""
    if task is None or task.kind == "binary":
        return Head("binary")
    if task.kind == "multiclass":
        return Head("multiclass", classes=len(task.classes))
    y = np.asarray(y_train, dtype=np.float64)
    std = float(y.std())
    return Head("regression", target_mean=float(y.mean()), target_std=std if std > 0 else 1.0)
