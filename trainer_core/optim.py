"""AdamW with parameter groups, and the cosine schedule the sweeps tune."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainer_core.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "cosine_lr"]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; the backbone's lr is scaled by ``backbone_lr_mult``; no decay on norms/biases.

    One-dimensional parameters (norm scales and shifts, biases) are not decayed: decaying
    them only shrinks activations' scale and is a common source of over-regularization.
    """
    opt = cfg.optimizer
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (name.startswith("backbone."), param.ndim > 1)
            groups.setdefault(key, []).append(param)
    param_groups = [
        {
            "params": params,
            "lr": opt.lr * (opt.backbone_lr_mult if in_backbone else 1.0),
            "weight_decay": opt.weight_decay if decayed else 0.0,
        }
        for (in_backbone, decayed), params in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=opt.lr, betas=opt.betas)


def cosine_lr(t: float, lr: float, eta_min: float, t_max: float, warmup: float = 0.0) -> float:
    """The lr at time ``t`` (epochs or steps): linear warmup, then torch's cosine closed form.

    Past ``t_max`` the cosine keeps going, as ``torch.optim.lr_scheduler.CosineAnnealingLR``
    does, so configs tuned with that scheduler train the same here.
    """
    value = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
    if warmup > 0 and t < warmup:
        value *= (t + 1) / (warmup + 1)
    return value


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine from ``optimizer.lr`` to ``scheduler.eta_min`` over ``T_max`` epochs.

    Stepped once per epoch, or once per optimizer step when ``step_per: step`` (then
    ``T_max`` and the warmup are still given in epochs and converted to steps). Each
    parameter group keeps its own lr multiplier, eta_min included.
    """
    sch = cfg.scheduler
    unit = steps_per_epoch if sch.step_per == "step" else 1
    ratio = sch.eta_min / cfg.optimizer.lr  # relative: each group's own lr scales it

    def factor(t: int) -> float:
        return cosine_lr(t, 1.0, ratio, cfg.t_max * unit, sch.warmup_epochs * unit)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
