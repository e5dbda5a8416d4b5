"""AdamW with parameter groups, and the cosine schedule the sweeps tune."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainer_core.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "cosine_lr", "optimizer_steps_per_epoch"]


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


def optimizer_steps_per_epoch(n_batches: int, grad_accum_steps: int) -> int:
    """Optimizer steps in an epoch of ``n_batches``: a last partial accumulation group steps too."""
    return math.ceil(n_batches / grad_accum_steps)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    steps_per_epoch: int,
    epochs_done: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine from ``optimizer.lr`` to ``scheduler.eta_min`` over ``T_max`` epochs.

    Stepped once per epoch, or once per optimizer step when ``step_per: step`` (then
    ``T_max`` and the warmup are still given in epochs and converted to steps). Each
    parameter group keeps its own lr multiplier, eta_min included.

    Args:
        optimizer: the run's optimizer (its groups' ``lr`` are the peak lrs).
        cfg: the run's config.
        steps_per_epoch: optimizer steps per epoch (:func:`optimizer_steps_per_epoch`), not
            batches: with gradient accumulation the scheduler steps once per group.
        epochs_done: epochs a resumed run has already trained. The schedule is placed by
            epochs, not by a saved step count, so it still ends at ``eta_min`` at ``T_max``
            when a retry resumes with another batch size and accumulation.
    """
    sch = cfg.scheduler
    unit = steps_per_epoch if sch.step_per == "step" else 1
    ratio = sch.eta_min / cfg.optimizer.lr  # relative: each group's own lr scales it

    def factor(t: int) -> float:
        return cosine_lr(t, 1.0, ratio, cfg.t_max * unit, sch.warmup_epochs * unit)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if epochs_done:
        scheduler.last_epoch = epochs_done * unit
        for group, base_lr in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * factor(scheduler.last_epoch)
    return scheduler
