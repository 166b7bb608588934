"""Whether an external launcher started this process as one rank of a multi-node training.

On a cluster, `torchrun --nnodes N --rdzv-backend c10d --rdzv-endpoint host:port` on every node
starts `flywheel step train` once per GPU and tells each process its place through the
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Such a process trains as
that rank instead of launching a torchrun of its own, and only global rank 0 takes the project
lock and writes the step's outputs: the other ranks compute the same model and throw their copy
away, so the outputs are written once even when several ranks share a checkout. Kept free of
torch so the CLI can ask without importing it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from flywheel.atomic import replacing_dir
from flywheel.settings import Settings

# What torch.distributed's env:// initialisation reads; torchrun sets all of them.
LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class LaunchedRank:
    rank: int
    world_size: int
    local_rank: int


def launched_rank() -> LaunchedRank | None:
    """This process's rank when a launcher started it among several, else None."""
    if not all(os.environ.get(name) for name in LAUNCHER_ENV):
        return None
    world_size = int(os.environ["WORLD_SIZE"])
    if world_size <= 1:
        return None
    return LaunchedRank(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ["LOCAL_RANK"]),
    )


def is_secondary_rank() -> bool:
    """A launched rank other than 0: it trains, but writes nothing of the project's."""
    launched = launched_rank()
    return launched is not None and launched.rank != 0


def step_lock(settings: Settings, what: str) -> AbstractContextManager[None]:
    """The project lock for a step; secondary ranks skip it (they share rank 0's checkout)."""
    from flywheel.project_lock import project_lock

    return nullcontext() if is_secondary_rank() else project_lock(settings, what)


@contextmanager
def rank_outputs(target: Path) -> Iterator[Path]:
    """Where a step stages its outputs: `target` on rank 0, a throwaway folder elsewhere."""
    if not is_secondary_rank():
        with replacing_dir(target) as staging:
            yield staging
        return
    with tempfile.TemporaryDirectory(prefix=f"flywheel-{target.name}-rank-") as scratch:
        yield Path(scratch)
