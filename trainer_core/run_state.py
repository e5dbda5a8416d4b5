"""What a run carries from one epoch to the next, and the checkpoints that hold it.

:class:`RunState` is the one place that names a checkpoint's keys: it writes ``last.pt``
(everything a resume needs) and ``best.pt`` (weights, epoch, config) and reads them back.
Readers elsewhere rely on ``epoch``, ``history`` (records as dicts), ``config`` (the
TrainConfig as JSON) and ``model`` (the state dict); keep those names when adding keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_core.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from trainer_core.errors import ConfigError
from trainer_core.metrics import DetectionMetrics

__all__ = ["EpochRecord", "RunState", "resume_problem"]


def resume_problem(state: dict[str, Any]) -> str | None:
    """Why checkpoint ``state`` cannot be continued by :meth:`RunState.load`, or None.

    ``last.pt`` is written whole (atomically), so its optimizer state stands for the rest.
    """
    if "optimizer" in state:
        return None
    return (
        "it holds weights only (no optimizer state): a best.pt or an exported "
        "model, not a run to resume; start from it with model.init_checkpoint instead"
    )


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of history; the val fields are None on epochs that were not evaluated.

    Its time is split three ways, on a monotonic clock: ``seconds`` training,
    ``eval_seconds`` validating, ``overhead_seconds`` the rest of the epoch's wall time (the
    previous epoch's checkpoint writes and callback, loader start-up). An epoch runs from
    the end of the previous one's validation to the end of its own, so the epochs' times
    add up to the loop's. Checkpoints written before these were measured read back None.
    """

    epoch: int
    train_loss: float
    lr: float
    seconds: float
    images_per_s: float
    precision: float | None = None
    recall: float | None = None
    hmean: float | None = None
    eval_seconds: float | None = None
    overhead_seconds: float | None = None

    @property
    def wall_seconds(self) -> float | None:
        """Training + evaluation + overhead, or None for an epoch that was not timed."""
        if self.eval_seconds is None or self.overhead_seconds is None:
            return None
        return self.seconds + self.eval_seconds + self.overhead_seconds


@dataclass
class RunState:
    """A run's progress: the epochs done, the best so far, and the objects that train.

    Shuffling and augmentation are seeded by epoch, so the epoch reached and the global RNG
    states (saved with ``last.pt``) are all a resume needs to see the same batches.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    config_json: str
    """The run's TrainConfig as JSON: a checkpoint can start another run or be checked
    against the config that wants to resume it."""
    epoch: int = 0
    """Epochs trained so far."""
    history: list[EpochRecord] = field(default_factory=list)
    best_hmean: float = -1.0
    best_epoch: int | None = None
    best: DetectionMetrics | None = None
    since_best: int = 0
    """Evaluations in a row without a gain (early stopping counts them)."""
    nonfinite_streak: int = 0
    """Optimizer steps in a row skipped for a non-finite loss, carried across epochs."""

    def end_epoch(
        self, record: EpochRecord, metrics: DetectionMetrics | None, min_delta: float
    ) -> bool:
        """Add the epoch to the history; True when its val H-mean is the new best.

        An epoch that was not evaluated (``metrics`` None) neither counts as a gain nor
        against one.
        """
        self.epoch = record.epoch
        self.history.append(record)
        if metrics is None:
            return False
        if metrics.hmean > self.best_hmean + min_delta:
            self.best_hmean, self.best_epoch, self.best = metrics.hmean, record.epoch, metrics
            self.since_best = 0
            return True
        self.since_best += 1
        return False

    def _weights(self) -> dict[str, Any]:
        """What both checkpoints hold: enough to start another run (model.init_checkpoint)."""
        return {"model": self.model.state_dict(), "epoch": self.epoch, "config": self.config_json}

    def save_best(self, path: Path) -> None:
        """Write ``best.pt``: the weights of this epoch, its number and the config."""
        save_checkpoint(path, self._weights())

    def save(self, path: Path) -> None:
        """Write ``last.pt``: everything :meth:`load` needs to continue after this epoch."""
        run = {
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "history": [vars(r) for r in self.history],
            "best_hmean": self.best_hmean,
            "best_epoch": self.best_epoch,
            "best": vars(self.best) if self.best else None,
            "since_best": self.since_best,
            "nonfinite_streak": self.nonfinite_streak,
        }
        save_checkpoint(path, self._weights() | run)

    def load(self, path: Path) -> None:
        """Continue from a ``last.pt`` written by :meth:`save`; the RNGs are restored too.

        The config is not read back: the caller's config is the one the run goes on with.

        Raises:
            ConfigError: ``path`` holds weights only (a ``best.pt``), not a run.
        """
        state = load_checkpoint(path)
        if (why := resume_problem(state)) is not None:
            raise ConfigError(f"cannot resume from {path}: {why}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"])
        self.epoch = state["epoch"]
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.best_hmean, self.best_epoch = state["best_hmean"], state["best_epoch"]
        self.best = DetectionMetrics(**state["best"]) if state["best"] else None
        self.since_best, self.nonfinite_streak = state["since_best"], state["nonfinite_streak"]

    def load_weights(self, path: Path) -> None:
        """Put the weights of a checkpoint (``best.pt`` or ``last.pt``) into the model."""
        self.model.load_state_dict(load_checkpoint(path)["model"])
