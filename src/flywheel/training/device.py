"""Where the torch trainer runs and whether it uses mixed precision: one decision, one place.

Kept free of a top-level torch import so tests and the CLI can reason about the choice cheaply,
and so a test can inject `cuda_available=True` on a machine without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flywheel.errors import ConfigError

AmpDtype = Literal["bfloat16", "float16"]


@dataclass(frozen=True)
class DeviceChoice:
    device: Literal["cpu", "cuda"]
    amp: bool  # mixed precision: worth it on a GPU, slower (and lossy) on CPU, so off there
    amp_dtype: AmpDtype | None  # a torch dtype name; None when amp is off

    @property
    def grad_scaler(self) -> bool:
        """float16 has a narrow exponent, so small gradients underflow unless the loss is scaled;
        bfloat16 has float32's range and needs no scaler."""
        return self.amp and self.amp_dtype == "float16"


def choose_device(
    requested: str,
    cuda_available: bool | None = None,
    bf16_supported: bool | None = None,
) -> DeviceChoice:
    """Resolve the `device` param ("auto", "cpu", "cuda") against what the machine has.

    `cuda_available` and `bf16_supported` default to asking torch; tests pass them in.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.mlp.device: expected auto, cpu or cuda, got {requested!r}")
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if requested == "cuda" and not cuda_available:
        raise ConfigError(
            "train.mlp.device is 'cuda' but no CUDA device is available to torch "
            "(check the driver and that torch was built with CUDA); "
            "set it to 'auto' to fall back to the CPU"
        )
    if requested == "cpu" or not cuda_available:
        return DeviceChoice(device="cpu", amp=False, amp_dtype=None)
    if bf16_supported is None:
        import torch

        # Only a real GPU can answer; an injected cuda_available=True on a CPU box gets fp16.
        bf16_supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    dtype: AmpDtype = "bfloat16" if bf16_supported else "float16"
    return DeviceChoice(device="cuda", amp=True, amp_dtype=dtype)
