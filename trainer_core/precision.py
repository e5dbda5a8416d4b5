"""Device and numeric precision: what ``device: auto`` and ``precision: auto`` resolve to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from trainer_core.errors import ConfigError

__all__ = ["Precision", "resolve_device", "resolve_precision"]


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs: ``autocast`` dtype (None = fp32) and whether to scale."""

    name: Literal["fp16", "bf16", "fp32"]
    dtype: torch.dtype | None
    use_scaler: bool


_PRECISIONS = {
    "fp16": Precision("fp16", torch.float16, True),
    "bf16": Precision("bf16", torch.bfloat16, False),
    "fp32": Precision("fp32", None, False),
}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device: {name!r} is not a device (use auto, cpu, cuda, cuda:N)") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but this machine has no CUDA device")
    return device


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``auto``: bf16 on CUDA that has it (no loss scaling needed), fp16 on older CUDA,
    fp32 on the CPU. CPU bf16 is faster only on CPUs with bf16 instructions (1.5x on the
    2-core EPYC in BENCHMARKS.md, slower elsewhere) and keeps fewer mantissa bits, so on the
    CPU it is opt-in (``precision: bf16``) rather than a guess."""
    if name == "auto":
        if device.type != "cuda":
            return _PRECISIONS["fp32"]
        return _PRECISIONS["bf16" if torch.cuda.is_bf16_supported() else "fp16"]
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("precision: fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("precision: this GPU has no bf16; use fp16 or auto")
    return _PRECISIONS[name]
