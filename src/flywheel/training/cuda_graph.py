"""One training step captured as a CUDA graph and replayed, for the torch trainers on a GPU.

Why: on an H200 the default MLP ([64, 32] hidden, batch 256) trained at 120k rows/s on CUDA
against 195k on the same machine's 16 CPU cores, and the CNN (batch 32) at 7.4k images/s,
barely past the CPU's 4.8k (`benchmarks/gpu_fits.py`). Each step launches tens to hundreds of
tiny kernels (forward, backward, the optimizer) and the launch cost, not the arithmetic, set
the pace. A captured step is one launch: the batch is copied into the graph's fixed input
tensors and the graph replayed. The MLP went to 1.8M rows/s, the CNN to 56-60k images/s.

What a graph needs and how it is met: fixed shapes (only full batches replay; a shorter last
batch takes the eager step), fixed addresses (inputs are copied into the tensors the graph
reads; the optimizer keeps its state on the device, `capturable=True`, and a learning rate a
schedule changes is a device tensor), no host sync inside the step (bf16 autocast needs no
loss scaler, so float16 runs stay eager; random draws made on the host are inputs) and
warm-up steps before capture. The warm-up steps train on the first batch, so the weights,
buffers (batch-norm statistics) and the optimizer's moments are put back afterwards:
training starts from the state the eager loop would start from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from flywheel.errors import ConfigError
from flywheel.training.device import DeviceChoice

WARMUP_STEPS = 3  # PyTorch's guidance: a few eager steps on a side stream before capture


@dataclass(frozen=True)
class GraphedStep:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]  # the graph reads its batch from these tensors


def usable(choice: DeviceChoice, world_size: int) -> bool:
    """One GPU in bf16: a float16 loss scaler syncs with the host each step, and DDP's gradient
    hooks are not captured here."""
    return choice.device == "cuda" and not choice.grad_scaler and world_size == 1


def replaying(
    step: Callable[..., None],
    first: Sequence[torch.Tensor],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    setting: str,
) -> Callable[..., None]:
    """`step` captured on the batch `first`; what returns replays the graph for a batch of that
    size and calls `step` itself for any other (a shorter last batch)."""
    graphed = capture_step(step, first, model, optimizer, setting)
    size = len(first[0])

    def run(*inputs: torch.Tensor) -> None:
        if len(inputs[0]) == size:
            replay(graphed, inputs)
        else:
            step(*inputs)

    return run


def capture_step(
    step: Callable[..., None],
    inputs: Sequence[torch.Tensor],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    setting: str,
) -> GraphedStep:
    """Warm `step(*inputs)` up (the model in training mode, as the step runs), capture it, then
    put model and optimizer back as they were.

    A capture the driver or an operation refuses stops the fit with one line naming `setting`
    (the params.yaml switch that trains without a graph), not a CUDA traceback."""
    model.train()
    static = tuple(t.clone() for t in inputs)
    saved = [t.clone() for t in model.state_dict().values()]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(WARMUP_STEPS):
            step(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, stream=stream):
            step(*static)
    except RuntimeError as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"{setting}: the training step could not be captured as a CUDA graph ({reason}); "
            f"set {setting} to false to train without one"
        ) from error
    _restore(model, optimizer, saved)
    return GraphedStep(graph, static)


def replay(step: GraphedStep, inputs: Sequence[torch.Tensor]) -> None:
    """One optimisation step on `inputs` (shaped as at capture): copied in, graph replayed."""
    for static, new in zip(step.inputs, inputs, strict=True):
        static.copy_(new, non_blocking=True)
    step.graph.replay()


def _restore(
    model: nn.Module, optimizer: torch.optim.Optimizer, saved: list[torch.Tensor]
) -> None:
    """Undo the warm-up: weights and buffers copied back in place (the graph holds their
    addresses) and the optimizer's step count and moments zeroed, the state a fresh Adam or
    AdamW starts from."""
    with torch.no_grad():
        for tensor, before in zip(model.state_dict().values(), saved, strict=True):
            tensor.copy_(before)
        for state in optimizer.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.zero_()
