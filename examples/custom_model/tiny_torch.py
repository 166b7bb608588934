"""A bring-your-own torch module: trained by Flywheel's MLP loop (train.mlp's device, AMP,
batch size and early stopping), so the factory only builds the network.

    train:
      candidates: [hgb, tiny_torch:make_module]
      custom:
        "tiny_torch:make_module": {width: 32}

The module's class is pickled with the model: serving must import this file too (PYTHONPATH).
"""

from __future__ import annotations

from typing import Any

from torch import nn


class Residual(nn.Module):
    """x + f(x): one skip connection around a small block."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(width, width), nn.ReLU())

    def forward(self, x: Any) -> Any:
        return x + self.block(x)


def make_module(task: Any, params: dict[str, Any], seed: int, input_dim: int) -> nn.Module:
    """Outputs: one logit per class for multiclass, else one (binary logit, or the value)."""
    width = int(params.get("width", 32))
    outputs = len(task.classes) if task.kind == "multiclass" else 1
    return nn.Sequential(nn.Linear(input_dim, width), nn.ReLU(), Residual(width),
                         nn.Linear(width, outputs))
