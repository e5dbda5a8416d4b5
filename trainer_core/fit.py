"""``fit(config) -> FitResult``: one training run, top to bottom.

The only entry point the sweep uses. It knows nothing of Optuna: a sweep passes
``on_epoch_end`` and stops the run by returning True from it (that is how pruning enters).
Non-finite losses and CUDA out-of-memory end the run as a failed result, never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from trainer_core.config import TrainConfig
from trainer_core.data import DetectionDataset, Sample, make_splits, seed_worker
from trainer_core.engine import EpochStats, NonFiniteLoss, StepFn, evaluate, train_one_epoch
from trainer_core.loss import DBLoss
from trainer_core.metrics import DetectionMetrics
from trainer_core.model import build_model
from trainer_core.optim import (
    build_optimizer,
    build_scheduler,
    cosine_lr,
    optimizer_steps_per_epoch,
)
from trainer_core.precision import Precision, resolve_device, resolve_precision
from trainer_core.run_state import EpochRecord, RunState
from trainer_core.usage import DeviceUsage, describe_device, measure_usage

__all__ = [
    "EpochCallback",
    "EpochRecord",
    "FitResult",
    "RunTiming",
    "eval_loader",
    "fit",
    "gap_samples",
    "seed_everything",
]

log = logging.getLogger(__name__)

Status = Literal["completed", "early_stopped", "stopped", "failed"]

EpochCallback = Callable[[int, EpochRecord], bool]
"""Called after every evaluated epoch (1-based); returning True stops the run."""

Phase = Literal["training", "evaluation", "overhead"]


@dataclass
class RunTiming:
    """Where one ``fit`` call's wall time went, in seconds of a monotonic clock.

    ``training`` is the passes over the training data, ``evaluation`` validation and the
    gap split, ``overhead`` everything else (data and model set-up, checkpoint loads and
    writes, callbacks). The three add up to the call's wall time. Filled in as the run goes,
    so a caller whose callback interrupts the run still knows what it spent.
    """

    training_s: float = 0.0
    evaluation_s: float = 0.0
    overhead_s: float = 0.0
    _mark: float = field(default_factory=time.perf_counter, repr=False, compare=False)

    @property
    def wall_s(self) -> float:
        return self.training_s + self.evaluation_s + self.overhead_s

    def totals(self) -> tuple[float, float, float]:
        """(training, evaluation, overhead) so far."""
        return self.training_s, self.evaluation_s, self.overhead_s

    def since(self, before: tuple[float, float, float]) -> tuple[float, float, float]:
        """(training, evaluation, overhead) booked since :meth:`totals` returned ``before``."""
        t, e, o = before
        return self.training_s - t, self.evaluation_s - e, self.overhead_s - o

    def restart(self) -> None:
        """Count from now (the totals stay)."""
        self._mark = time.perf_counter()

    def book(self, phase: Phase) -> float:
        """Book the time since the last booking to ``phase``; return it."""
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        if phase == "training":
            self.training_s += seconds
        elif phase == "evaluation":
            self.evaluation_s += seconds
        else:
            self.overhead_s += seconds
        return seconds

    @contextlib.contextmanager
    def booking(self, phase: Phase) -> Iterator[None]:
        """The time before the block is overhead; the block's is ``phase``'s, even when
        it raises."""
        self.book("overhead")
        try:
            yield
        finally:
            self.book(phase)


@dataclass
class FitResult:
    """What a run produced. ``status`` is completed, early_stopped, stopped or failed."""

    status: Status
    reason: str
    history: list[EpochRecord]
    best_epoch: int | None
    best: DetectionMetrics | None
    gap_split: Literal["holdout", "train"]
    gap_metrics: DetectionMetrics | None
    peak_memory_mb: float
    device: str
    precision: str
    checkpoint_dir: Path
    batch_size: int
    val_predictions: list[list[np.ndarray]] | None = None
    """Polygons per validation image at the best epoch, original coordinates (resumed
    runs whose best epoch came before the resume have None)."""
    timing: RunTiming | None = None
    """This call's time split (a resumed run's earlier calls are in its history only)."""
    usage: DeviceUsage | None = None
    """The device's name, mean utilisation and peak memory, as measured."""

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def images_per_s(self) -> float:
        """Mean training throughput over the epochs run."""
        rates = [r.images_per_s for r in self.history]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def gap(self) -> float | None:
        """How much val H-mean overstates unseen data (DESIGN.md, "The score")."""
        if self.best is None or self.gap_metrics is None:
            return None
        if self.gap_split == "holdout":
            return self.best.hmean - self.gap_metrics.hmean
        return self.gap_metrics.hmean - self.best.hmean

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoint_dir / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.pt"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; data-loader workers derive theirs (``seed_worker``)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA max allocated, or this process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _warn_if_cosine_unfinished(cfg: TrainConfig) -> None:
    """T_max != epochs: the cosine does not end at eta_min; say where it ends instead."""
    if cfg.t_max == cfg.epochs:
        return
    end = cosine_lr(cfg.epochs, cfg.optimizer.lr, cfg.scheduler.eta_min, cfg.t_max)
    log.warning(
        "scheduler.T_max=%d but %d epochs are trained: the lr ends at %.3g, not eta_min=%.3g",
        cfg.t_max,
        cfg.epochs,
        end,
        cfg.scheduler.eta_min,
    )


def gap_samples(cfg: TrainConfig, train: list[Sample], holdout: list[Sample]) -> list[Sample]:
    """The holdout split, else a fixed seeded subset of the training images."""
    if holdout:
        return holdout
    k = min(cfg.data.gap_subset, len(train))
    return random.Random(cfg.data.split_seed).sample(train, k)


def eval_loader(samples: list[Sample], cfg: TrainConfig) -> DataLoader:
    """Evaluation batches of ``samples``, in order (no augmentation)."""
    return DataLoader(
        DetectionDataset(samples, cfg, train=False),
        batch_size=cfg.batch_size,
        shuffle=False,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
    )


def _train_loader(
    dataset: DetectionDataset, cfg: TrainConfig, shuffle: torch.Generator, device: torch.device
) -> DataLoader:
    """Shuffled training batches; ``shuffle`` is reseeded every epoch by the loop."""
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=shuffle,
        pin_memory=device.type == "cuda",
    )


def _build_model(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The DBNet on ``device``; on CUDA channels-last, and peak memory counted from here."""
    model = build_model(cfg.model).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    return model


def _train_epoch(
    run: RunState,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: DBLoss,
    loader: DataLoader,
    cfg: TrainConfig,
    precision: Precision,
    device: torch.device,
    on_step: StepFn | None,
) -> EpochStats:
    """One pass over the training data; the lr steps per optimizer step or per epoch, and
    ``run`` carries the non-finite streak on to the next epoch."""
    per_step = cfg.scheduler.step_per == "step"
    stats = train_one_epoch(
        run.model,
        loss_fn,
        loader,
        run.optimizer,
        run.scaler,
        precision,
        device,
        grad_accum_steps=cfg.grad_accum_steps,
        grad_clip=cfg.grad_clip,
        step_scheduler=scheduler if per_step else None,
        nonfinite_patience=cfg.nonfinite_patience,
        nonfinite_streak=run.nonfinite_streak,
        on_step=on_step,
    )
    if not per_step:
        scheduler.step()
    run.nonfinite_streak = stats.nonfinite_streak
    return stats


def _evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    samples: list[Sample],
    cfg: TrainConfig,
    precision: Precision,
    device: torch.device,
) -> tuple[DetectionMetrics, list[list[np.ndarray]]]:
    """Metrics and polygons of ``samples`` under the config's post-processing."""
    return evaluate(model, loader, samples, precision, device, cfg.postprocess, cfg.metric_average)


def _epoch_record(
    epoch: int,
    lr: float,
    stats: EpochStats,
    metrics: DetectionMetrics | None,
    seconds: tuple[float, float, float],
) -> EpochRecord:
    """The history entry of an epoch, with its val metrics where it was evaluated and its
    (training, evaluation, overhead) ``seconds``."""
    val = (metrics.precision, metrics.recall, metrics.hmean) if metrics else (None, None, None)
    train_s, eval_s, overhead_s = seconds
    return EpochRecord(epoch, stats.loss, lr, train_s, stats.images_per_s, *val, eval_s, overhead_s)


def _stop_reason(
    run: RunState, record: EpochRecord, cfg: TrainConfig, on_epoch_end: EpochCallback | None
) -> tuple[Status, str] | None:
    """After an evaluated epoch: why the run stops here (callback, early stopping), or None."""
    epoch = record.epoch
    if on_epoch_end is not None and on_epoch_end(epoch, record):
        return "stopped", f"stopped by callback after epoch {epoch}"
    patience = cfg.early_stopping.patience
    if patience is not None and run.since_best >= patience and epoch < cfg.epochs:
        return (
            "early_stopped",
            f"no val H-mean gain for {run.since_best} evaluations (epoch {epoch})",
        )
    return None


def fit(
    config: TrainConfig,
    *,
    on_epoch_end: EpochCallback | None = None,
    on_step: StepFn | None = None,
    resume: bool = False,
    timing: RunTiming | None = None,
) -> FitResult:
    """Train a DBNet as ``config`` says; evaluate; keep the best epoch; score the gap split.

    Args:
        config: the validated run configuration.
        on_epoch_end: called after each evaluated epoch; True stops the run ("stopped").
        on_step: called after each training batch (progress bars).
        resume: continue from ``output_dir/last.pt`` if it exists. Everything the run
            depends on is restored (weights, optimizer, scaler, RNGs, history; shuffling and
            augmentation are seeded by epoch), so a resumed run repeats the uninterrupted one
            bitwise when it runs deterministically (one intra-op thread on the CPU), and
            within float tolerance otherwise: multi-threaded kernels do not fix the order in
            which they sum, so even two uninterrupted runs differ in the last bits. Batch size
            and accumulation may change on resume (the out-of-memory retry does); the cosine
            is placed by epochs trained and still ends at ``eta_min`` at ``T_max``.
        timing: where to add up this call's time split (a new one if None); the result
            carries it too, but a caller stopped by an exception from its own callback
            finds it only here.

    Returns:
        A :class:`FitResult`; failures (non-finite loss, out of memory) are results too.

    Raises:
        ConfigError: a setting that cannot run here (unknown backbone, no CUDA).
        DataError: a split with no usable image.

    Example:
        >>> result = fit(load_train_config(Path("best.yaml")))  # doctest: +SKIP
        >>> result.best.hmean, result.gap  # doctest: +SKIP
    """
    timing = RunTiming() if timing is None else timing
    timing.restart()
    device = resolve_device(config.device)
    with measure_usage(device) as sampler:
        result = _fit(config, device, on_epoch_end, on_step, resume, timing)
        usage = sampler.stop()
    timing.book("overhead")
    return replace(result, timing=timing, usage=usage)


def _fit(
    cfg: TrainConfig,
    device: torch.device,
    on_epoch_end: EpochCallback | None,
    on_step: StepFn | None,
    resume: bool,
    timing: RunTiming,
) -> FitResult:
    """The body of :func:`fit`, on a resolved device, booking its time on ``timing``."""
    seed_everything(cfg.seed)
    precision = resolve_precision(cfg.precision, device)
    out_dir = Path(cfg.output_dir)
    splits = make_splits(cfg.data)
    train_ds = DetectionDataset(splits.train, cfg, train=True)
    shuffle = torch.Generator()
    train_loader = _train_loader(train_ds, cfg, shuffle, device)
    val_loader = eval_loader(splits.val, cfg)
    model = _build_model(cfg, device)
    loss_fn = DBLoss(cfg.loss)
    optimizer = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_scaler)
    run = RunState(model, optimizer, scaler, cfg.model_dump_json())
    _warn_if_cosine_unfinished(cfg)

    out_dir.mkdir(parents=True, exist_ok=True)  # once: checkpoints never make it again
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if resume and last_path.exists():
        run.load(last_path)
        log.info("resumed from %s at epoch %d", last_path, run.epoch + 1)
    steps_per_epoch = optimizer_steps_per_epoch(len(train_loader), cfg.grad_accum_steps)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch, epochs_done=run.epoch)
    timing.book("overhead")  # set-up: data, model, resume; the epochs' own time starts here

    status: Status = "completed"
    reason = f"trained {cfg.epochs} epochs"
    best_preds = None  # not checkpointed: a run resumed past its best epoch has none
    for epoch in range(run.epoch + 1, cfg.epochs + 1):
        # Shuffle order and augmentation depend on (seed, epoch) alone, so a resumed run
        # sees exactly the batches the uninterrupted one would have.
        shuffle.manual_seed(cfg.seed * 100_003 + epoch)
        train_ds.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]  # the head's: backbone_lr_mult does not apply
        evaluated = epoch % cfg.eval_every == 0 or epoch == cfg.epochs
        metrics = preds = None
        before = timing.totals()
        try:
            with timing.booking("training"):
                stats = _train_epoch(
                    run, scheduler, loss_fn, train_loader, cfg, precision, device, on_step
                )
            if evaluated:
                with timing.booking("evaluation"):
                    metrics, preds = _evaluate(
                        model, val_loader, splits.val, cfg, precision, device
                    )
        except NonFiniteLoss as e:
            status, reason = "failed", f"non-finite loss ({e})"
            break
        except torch.OutOfMemoryError:
            status, reason = "failed", f"out of memory at batch size {cfg.batch_size}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
            break
        record = _epoch_record(epoch, lr, stats, metrics, timing.since(before))
        if run.end_epoch(record, metrics, cfg.early_stopping.min_delta):
            best_preds = preds
            run.save_best(best_path)
        run.save(last_path)
        stop = _stop_reason(run, record, cfg, on_epoch_end) if evaluated else None
        if stop is not None:
            status, reason = stop
            break

    gap_metrics = None
    if status != "failed" and run.best_epoch is not None:
        run.load_weights(best_path)
        gap_set = gap_samples(cfg, splits.train, splits.holdout)
        gap_loader = eval_loader(gap_set, cfg)
        with timing.booking("evaluation"):
            gap_metrics, _ = _evaluate(model, gap_loader, gap_set, cfg, precision, device)
    return FitResult(
        status=status,
        reason=reason,
        history=run.history,
        best_epoch=run.best_epoch,
        best=run.best,
        gap_split="holdout" if splits.holdout else "train",
        gap_metrics=gap_metrics,
        peak_memory_mb=_peak_memory_mb(device),
        device=describe_device(device),
        precision=precision.name,
        checkpoint_dir=out_dir,
        batch_size=cfg.batch_size,
        val_predictions=best_preds,
    )
