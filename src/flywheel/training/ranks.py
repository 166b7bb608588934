"""This process's place among the training ranks: one process alone, or one rank of DDP.

The MLP's loop asks its `Group` for the device, the batch share, the epoch's rows and the
averaged loss, so the same loop trains alone or as one of several ranks (`distributed.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks; one process alone is `SINGLE`."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, kind: str) -> torch.device:
        """One GPU per rank, picked by the local rank; the CPU is shared."""
        if kind == "cuda" and self.world_size > 1:
            return torch.device("cuda", self.local_rank)
        return torch.device(kind)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training step calls: DDP averages gradients across ranks."""
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if self.backend == "nccl" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def local_batch(self, batch_size: int) -> int:
        """Rows per rank per step, so one step still sees `batch_size` rows in all."""
        return batch_size // self.world_size

    def epoch_order(
        self, n: int, generator: torch.Generator, seed: int, epoch: int
    ) -> torch.Tensor:
        """This rank's rows for the epoch, shuffled; every rank gets as many (padded)."""
        if self.world_size == 1:
            return torch.randperm(n, generator=generator)
        from torch.utils.data import DistributedSampler

        rows: Any = range(n)  # the sampler needs only len(); indices are what it yields
        sampler: DistributedSampler[int] = DistributedSampler(
            rows, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler))

    def mean(self, value: float) -> float:
        """The value averaged over ranks, so every rank takes the same decision on it."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        on = torch.device("cuda", self.local_rank) if self.backend == "nccl" else None
        tensor = torch.tensor([value], dtype=torch.float64, device=on)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size


SINGLE = Group()
