"""One training epoch and one evaluation pass: the two loops a reader needs to follow.

AMP lives in one forward path under ``torch.autocast(enabled=...)``; the GradScaler is
created once per run by the caller and is a no-op unless the precision is fp16.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainer_core.config import PostprocessConfig
from trainer_core.loss import DBLoss
from trainer_core.metrics import DetectionMetrics, detection_metrics
from trainer_core.postprocess import polygons_from_prob, postprocess_config_kwargs
from trainer_core.precision import Precision

__all__ = [
    "EpochStats",
    "NonFiniteLoss",
    "StepFn",
    "autocast_context",
    "evaluate",
    "predict",
    "prob_maps",
    "train_one_epoch",
]

StepFn = Callable[[int, int, float], None]
"""Called after each batch with (batch index, batches in the epoch, running mean loss)."""


class NonFiniteLoss(RuntimeError):
    """The loss stayed NaN/inf for too many consecutive optimizer steps."""


@dataclass(frozen=True)
class EpochStats:
    loss: float
    parts: dict[str, float]
    images: int
    seconds: float
    nonfinite_streak: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def autocast_context(device: torch.device, precision: Precision) -> torch.autocast:
    """The one autocast every forward pass runs under (disabled for fp32)."""
    return torch.autocast(
        device.type, dtype=precision.dtype or torch.float32, enabled=precision.dtype is not None
    )


def train_one_epoch(
    model: nn.Module,
    loss_fn: DBLoss,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    device: torch.device,
    *,
    grad_accum_steps: int = 1,
    grad_clip: float | None = None,
    step_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    nonfinite_patience: int = 8,
    nonfinite_streak: int = 0,
    on_step: StepFn | None = None,
) -> EpochStats:
    """Train for one pass over ``loader``.

    Gradients accumulate over ``grad_accum_steps`` batches, each loss divided by the size of
    its group, so a last partial group still steps with a correctly scaled gradient. A group
    with a non-finite loss is skipped; ``nonfinite_patience`` such groups in a row (counted
    across epochs through ``nonfinite_streak``) raise :class:`NonFiniteLoss`.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    n_batches = len(loader)
    total, images, group_finite = 0.0, 0, True
    parts_sum: dict[str, torch.Tensor] = {}  # summed on the device: no sync per part
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        group_start = i - i % grad_accum_steps
        group_size = min(grad_accum_steps, n_batches - group_start)
        with autocast_context(device, precision):
            out = model(batch["image"])
        loss, parts = loss_fn(out, batch)  # float32: the model returns float32 maps
        loss_value = loss.item()
        if np.isfinite(loss_value):
            scaler.scale(loss / group_size).backward()
            total += loss_value
            for key, value in parts.items():
                parts_sum[key] = parts_sum[key] + value if key in parts_sum else value
        else:
            group_finite = False
        images += batch["image"].shape[0]

        if i - group_start + 1 == group_size:  # end of an accumulation group
            if group_finite:
                if grad_clip is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                nonfinite_streak = 0
            else:
                nonfinite_streak += 1
                if nonfinite_streak >= nonfinite_patience:
                    raise NonFiniteLoss(
                        f"non-finite loss for {nonfinite_streak} consecutive optimizer steps"
                    )
            optimizer.zero_grad(set_to_none=True)
            if step_scheduler is not None:
                step_scheduler.step()
            group_finite = True
        if on_step is not None:
            on_step(i, n_batches, total / max(1, i + 1))
    n = max(1, n_batches)
    return EpochStats(
        loss=total / n,
        parts={k: v.item() / n for k, v in parts_sum.items()},
        images=images,
        seconds=time.perf_counter() - start,
        nonfinite_streak=nonfinite_streak,
    )


@torch.inference_mode()
def predict(
    model: nn.Module,
    loader: DataLoader,
    n_images: int,
    precision: Precision,
    device: torch.device,
    post: PostprocessConfig,
) -> list[list[np.ndarray]]:
    """Polygons per image, in original image coordinates, ordered by dataset index."""
    preds: list[list[np.ndarray]] = [[] for _ in range(n_images)]
    for index, scale, prob in prob_maps(model, loader, precision, device):
        polygons, _ = polygons_from_prob(prob, **postprocess_config_kwargs(post))
        preds[index] = [p / scale for p in polygons]
    return preds


@torch.inference_mode()
def prob_maps(
    model: nn.Module, loader: DataLoader, precision: Precision, device: torch.device
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(dataset index, scale, probability map)`` per image: the network's part of
    :func:`predict`, float32 (S, S) maps at the input size (``original = map / scale``)."""
    model.eval()
    for batch in loader:
        with autocast_context(device, precision):
            probs = model(batch["image"].to(device, non_blocking=True))["prob"]
        probs = probs.float().cpu().numpy()
        for prob, scale, index in zip(probs, batch["scale"], batch["index"], strict=True):
            yield int(index), float(scale), prob


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    samples: Sequence,
    precision: Precision,
    device: torch.device,
    post: PostprocessConfig,
    average: str = "dataset",
) -> tuple[DetectionMetrics, list[list[np.ndarray]]]:
    """Detection metrics of ``model`` on ``samples`` (the dataset behind ``loader``)."""
    preds = predict(model, loader, len(samples), precision, device, post)
    metrics = detection_metrics(
        [list(s.polygons) for s in samples],
        [list(s.ignore) for s in samples],
        preds,
        average=average,
    )
    return metrics, preds
