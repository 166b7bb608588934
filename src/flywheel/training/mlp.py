"""A small PyTorch MLP for tabular rows, trained with early stopping on its valid loss.

Read it top to bottom: build the network, seed everything, loop over epochs (shuffle, step,
score on valid, checkpoint the best), restore the best weights, wrap them for inference.
The wrapper, not the trainer, is what gets pickled into the TabularModel and served.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flywheel.atomic import write_atomically
from flywheel.config import MLPParams
from flywheel.data.task import Task
from flywheel.errors import ConfigError
from flywheel.training import cuda_graph
from flywheel.training.device import DeviceChoice, choose_device
from flywheel.training.heads import Head, head_for
from flywheel.training.heads import TorchMLPClassifier as TorchMLPClassifier  # earlier pickles
from flywheel.training.ranks import SINGLE, Group

CHECKPOINT_NAME = "mlp_best.pt"
PROGRESS_EVERY = 5  # epochs between progress messages


def build_mlp(
    input_dim: int, hidden_sizes: list[int], dropout: float, outputs: int = 1
) -> nn.Sequential:
    """Linear -> ReLU -> Dropout per hidden layer, then `outputs` logits or values (the losses
    in heads.py want raw logits)."""
    layers: list[nn.Module] = []
    width = input_dim
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


@dataclass
class MLPFit:
    estimator: Any  # a heads.py wrapper: predict_proba (classification) or predict (regression)
    details: dict[str, Any]


def fit_mlp(
    params: MLPParams,
    seed: int,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
    choice: DeviceChoice | None = None,
    group: Group | None = None,
    task: Task | None = None,
    network: nn.Module | None = None,
) -> MLPFit:
    """Train with AdamW, stop when the valid loss has not improved for `patience` epochs.

    `choice` defaults to `choose_device(params.device)`; tests pass one in. One process trains
    alone (`group` None); each rank of a fit on several (`distributed.fit_distributed`) comes
    here with its `group`; what returns has the same shape either way. `task` (binary when
    None) picks the head: its width, loss and wrapper (heads.py). `network` replaces the
    built MLP (bring your own model, training/custom.py); it must output the head's width.
    """
    group = group or SINGLE
    say = progress if progress and group.is_main else (lambda _msg: None)
    choice = choice or choose_device(params.device)
    device = group.device(choice.device)

    # Seed the global RNG (weight init, dropout masks) and give shuffling its own generator,
    # so the batch order does not depend on how many random numbers dropout drew.
    torch.manual_seed(seed)
    shuffle_gen = torch.Generator().manual_seed(seed)

    # The whole table goes to the device once: tabular data is small next to GPU memory,
    # and per-batch host->device copies would dominate a network this size. A pool worker gets
    # its arrays as read-only memory maps, which torch will not wrap: those are copied.
    head = head_for(task, y_train)
    data = [
        _to_device(torch.from_numpy(np.require(a, np.float32, ["W"])), device)
        for a in (X_train, head.scaled(y_train), X_valid, head.scaled(y_valid))
    ]
    input_dim = data[0].shape[1]
    own = network  # a bring-your-own module is trained and kept as it is
    if network is None:
        network = build_mlp(input_dim, params.hidden_sizes, params.dropout, head.outputs)
    model = _to_device(network, device)

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    threads = _threads_for(params, input_dim, device)
    with _cpu_threads(threads):
        run = _train_epochs(model, data, params, seed, shuffle_gen, choice, group,
                            checkpoint_dir / CHECKPOINT_NAME, say, head,
                            graphed=_graphable(params, choice, group, own))

    details = _details(choice, run, len(X_train), threads, group.world_size)
    kept = model if own is not None else None
    return MLPFit(_best_model(run, params, input_dim, head, kept), details)


def _graphable(
    params: MLPParams, choice: DeviceChoice, group: Group, own: nn.Module | None
) -> bool:
    """Whether the step may be a CUDA graph: where cuda_graph.py allows, for the built MLP (a
    bring-your-own network may do anything a capture forbids)."""
    return params.cuda_graph and own is None and cuda_graph.usable(choice, group.world_size)


def _best_model(
    run: _Run, params: MLPParams, input_dim: int, head: Head, own: nn.Module | None
) -> Any:
    """The best epoch's weights on CPU: the last `patience` epochs were past the optimum."""
    if run.best_state is None:  # every epoch's valid loss was NaN or inf: the fit diverged
        raise ConfigError(
            f"train.mlp: valid loss was never finite in {run.epochs_run} epochs; "
            f"lower lr (now {params.lr}) or check the features for huge values"
        )
    cpu_model = (
        own.to("cpu")
        if own is not None
        else build_mlp(input_dim, params.hidden_sizes, params.dropout, head.outputs)
    )
    cpu_model.load_state_dict(run.best_state)
    cpu_model.eval()
    return head.wrap(cpu_model, input_dim)


@dataclass
class _Run:
    best_loss: float = float("inf")
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    train_seconds: float = 0.0
    epochs_run: int = 0
    graphed: bool = False  # full batches replayed a captured CUDA graph (cuda_graph.py)


def _train_epochs(
    model: nn.Module,
    data: list[torch.Tensor],
    params: MLPParams,
    seed: int,
    shuffle_gen: torch.Generator,
    choice: DeviceChoice,
    group: Group,
    checkpoint_path: Path,
    say: Callable[[str], None],
    head: Head,
    graphed: bool = False,
) -> _Run:
    """The epoch loop: one pass over this rank's rows, score on valid, keep the best.

    Under DDP every rank steps on `batch_size / world_size` rows and the gradients are
    averaged, which is the single-process step on `batch_size` rows; the valid loss is
    averaged over ranks so all of them take the same early-stopping decision.
    """
    Xt, yt, Xv, yv = data
    amp_dtype = getattr(torch, choice.amp_dtype) if choice.amp_dtype else None
    local_batch = group.local_batch(params.batch_size)
    run = _Run(graphed=graphed and Xt.is_cuda and len(Xt) >= local_batch)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay,
        capturable=run.graphed,
    )
    loss_fn = head.loss()
    step_model = group.wrap(model)
    step = _stepper(step_model, optimizer, loss_fn, (Xt, yt), choice, amp_dtype,
                    local_batch if run.graphed else 0)
    for epoch in range(1, params.max_epochs + 1):
        step_model.train()
        order = _to_device(group.epoch_order(len(Xt), shuffle_gen, seed, epoch), Xt.device)
        run.train_seconds += _one_pass(step, order, local_batch)
        run.epochs_run = epoch

        # --- score on valid
        valid_loss = group.mean(_valid_loss(model, Xv, yv, loss_fn, choice, amp_dtype))
        if valid_loss < run.best_loss:
            run.best_loss, run.best_epoch = valid_loss, epoch
            run.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            if group.is_main:
                _save_checkpoint(
                    checkpoint_path, run.best_state, params, (Xt.shape[1], head),
                    (epoch, valid_loss, seed),
                )
        if epoch % PROGRESS_EVERY == 0:
            say(
                f"mlp epoch {epoch}: valid loss {valid_loss:.4f} "
                f"(best {run.best_loss:.4f} at epoch {run.best_epoch})"
            )
        if epoch - run.best_epoch >= params.patience:
            say(f"mlp early stop at epoch {epoch}: no improvement for {params.patience} epochs")
            break
    return run


def _one_pass(step: Callable[[torch.Tensor], None], order: torch.Tensor, batch: int) -> float:
    """Step through `order` in batches; the seconds it took. On a GPU the steps are queued, not
    done, when the loop ends: it waits for them, so the timing is honest."""
    started = time.perf_counter()
    for start in range(0, len(order), batch):
        step(order[start : start + batch])
    if order.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - started


def _stepper(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    choice: DeviceChoice,
    amp_dtype: torch.dtype | None,
    graph_batch: int,
) -> Callable[[torch.Tensor], None]:
    """The step on a batch of row indices: eager, or (`graph_batch` > 0) a captured CUDA graph
    for batches of that size with the eager step for the shorter last one."""
    scaler = torch.amp.GradScaler(choice.device, enabled=choice.grad_scaler)

    def eager(X: torch.Tensor, y: torch.Tensor) -> None:
        _step(model, optimizer, scaler, loss_fn, X, y, choice, amp_dtype)

    on = eager if not graph_batch else cuda_graph.replaying(
        eager, (train[0][:graph_batch], train[1][:graph_batch]), model, optimizer,
        "train.mlp.cuda_graph",
    )
    return lambda idx: on(train[0][idx], train[1][idx])


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    choice: DeviceChoice,
    amp_dtype: torch.dtype | None,
) -> None:
    """One optimisation step on one batch (under DDP, backward also averages the gradients).

    Autocast's weight-cast cache is off: a graph capture must not keep casts made outside it,
    and one forward per step has nothing to reuse anyway."""
    with torch.autocast(
        device_type=choice.device, dtype=amp_dtype, enabled=choice.amp, cache_enabled=False
    ):
        logits = model(X).squeeze(1)
    # The loss in float32: log of a probability near 0 or 1 is where half precision loses most.
    loss = loss_fn(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _details(
    choice: DeviceChoice, run: _Run, n_train: int, threads: int, nproc: int
) -> dict[str, Any]:
    return {
        "device": choice.device,
        "amp": choice.amp,
        "amp_dtype": choice.amp_dtype,
        "best_epoch": run.best_epoch,
        "epochs_run": run.epochs_run,
        "best_valid_loss": run.best_loss,
        "train_seconds": run.train_seconds,  # the optimisation steps only, without validation
        "samples_per_s": (
            n_train * run.epochs_run / run.train_seconds if run.train_seconds > 0 else 0.0
        ),
        "torch_threads": threads,
        "nproc": nproc,
        "cuda_graph": run.graphed,
        "checkpoint": CHECKPOINT_NAME,  # relative: the folder is renamed into place
    }


def load_checkpoint(path: Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the best-epoch network from its checkpoint alone (it carries its own config and
    head; one written before heads existed is binary)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    params = checkpoint["params"]
    head = Head(**checkpoint.get("head", {"kind": "binary"}))
    module = build_mlp(
        checkpoint["input_dim"], params["hidden_sizes"], params["dropout"], head.outputs
    )
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    return head.wrap(module, checkpoint["input_dim"]), checkpoint


def _valid_loss(
    model: nn.Module,
    Xv: torch.Tensor,
    yv: torch.Tensor,
    loss_fn: nn.Module,
    choice: DeviceChoice,
    amp_dtype: torch.dtype | None,
) -> float:
    model.eval()
    with (
        torch.no_grad(),
        torch.autocast(device_type=choice.device, dtype=amp_dtype, enabled=choice.amp),
    ):
        logits = model(Xv).squeeze(1)
    return float(loss_fn(logits.float(), yv).item())


def _save_checkpoint(
    path: Path,
    state: dict[str, torch.Tensor],
    params: MLPParams,
    network: tuple[int, Head],
    progress: tuple[int, float, int],
) -> None:
    """`network`: input width and head; `progress`: epoch, its valid loss and the seed."""
    (input_dim, head), (epoch, valid_loss, seed) = network, progress
    checkpoint = {
        "state_dict": state,
        "params": params.model_dump(),
        "input_dim": input_dim,
        "head": head.to_dict(),
        "epoch": epoch,
        "valid_loss": valid_loss,
        "seed": seed,
    }
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def _to_device(obj: Any, device: torch.device) -> Any:
    """The one place tensors and modules move; tests replace it to run a CUDA plan on CPU."""
    return obj.to(device)


def _threads_for(params: MLPParams, input_dim: int, device: torch.device) -> int:
    """Intra-op threads for this network's training step; a GPU run keeps torch's setting."""
    if device.type != "cpu":
        return torch.get_num_threads()
    widths = [input_dim, *params.hidden_sizes, 1]
    return _thread_count(params.batch_size * sum(a * b for a, b in pairwise(widths)))


def _thread_count(macs_per_batch: int) -> int:
    """Intra-op threads for a training step of this size.

    A small network gains nothing from threads: on the 2-core dev box the default 64-32 MLP
    (about 1.4M multiply-adds per batch) ran at ~190k samples/s on one thread and no faster
    on two, and on a busy machine two spinning threads fell to a third of that. Larger
    networks get up to one thread per core (at most 4: beyond that, sync costs win).
    """
    if macs_per_batch < 16_000_000:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, torch.get_num_threads(), 4))


@contextmanager
def _cpu_threads(count: int) -> Iterator[None]:
    """Set torch's intra-op threads while training, then give the caller its setting back."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
