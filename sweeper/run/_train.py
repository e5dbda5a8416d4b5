"""``sweeper train``: one full run without a study, with a progress bar and a summary."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sweeper.define import TrackingSpec, missing_tracker_extra
from sweeper.errors import SpecError
from sweeper.run._tracking import RunInfo, TrackedRun, flatten, open_trackers
from sweeper.text import time_split
from trainer_core.config import TrainConfig, load_train_config
from trainer_core.fit import EpochRecord, FitResult, fit


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_table(result: FitResult) -> Table:
    """Best epoch, val P/R/H, gap-split H, stop reason and checkpoint paths."""
    table = Table(title="training summary", show_header=False)
    best = result.best
    rows = [
        ("status", f"{result.status}: {result.reason}"),
        ("best epoch", str(result.best_epoch or "-")),
        ("val precision", _fmt(best and best.precision)),
        ("val recall", _fmt(best and best.recall)),
        ("val H-mean", _fmt(best and best.hmean)),
        (f"{result.gap_split} H-mean", _fmt(result.gap_metrics and result.gap_metrics.hmean)),
        ("gap", _fmt(result.gap)),
        ("device / precision", f"{result.device} / {result.precision}"),
        ("images/s", f"{result.images_per_s:.1f}"),
        ("peak memory", f"{result.peak_memory_mb:.0f} MiB"),
        ("time", _time_split(result)),
        ("best checkpoint", str(result.best_checkpoint)),
        ("last checkpoint", str(result.last_checkpoint)),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _time_split(result: FitResult) -> str:
    """``12.3 min: training 81%, evaluation 14%, overhead 5% · util 87%``."""
    timing, usage = result.timing, result.usage
    if timing is None or timing.wall_s <= 0:
        return "-"
    parts = time_split(timing.training_s, timing.evaluation_s, timing.overhead_s)
    util = usage.utilization_pct if usage is not None else None
    return f"{timing.wall_s / 60:.3g} min: {parts}" + (f" · util {util:.0f}%" if util else "")


TRACKING_FILE = "tracking.json"
"""Beside the checkpoints: the run ids a ``--resume`` continues in the trackers."""


def _open_tracking(
    cfg: TrainConfig, config_path: Path, tracking: TrackingSpec | None, resume: bool
) -> TrackedRun | None:
    """The training's run in the ``--track`` trackers; ``--resume`` continues the last one."""
    backends = open_trackers(tracking, Path.cwd())
    if tracking is None or not backends:
        return None
    out = Path(cfg.output_dir)
    info = RunInfo(
        name=f"train/{out.resolve().name}",
        group="train",
        params=flatten(cfg.model_dump(mode="json")),
        link={"config": str(config_path), "output_dir": str(out)},
    )
    ids_file = out / TRACKING_FILE
    resume_ids = json.loads(ids_file.read_text()) if resume and ids_file.exists() else {}
    run = TrackedRun(backends, info, tracking.timeout_s)
    run.start(resume_ids)
    return run


def _keep_run_ids(run: TrackedRun, out: Path) -> None:
    """Write the trackers' run ids beside the checkpoints once they are known."""
    if ids := run.run_ids():
        out.mkdir(parents=True, exist_ok=True)
        (out / TRACKING_FILE).write_text(json.dumps(ids))


def _summary(result: FitResult) -> dict[str, Any]:
    """What the trackers keep as the run's summary."""
    best, timing = result.best, result.timing
    return {
        "status": result.status,
        "best_epoch": result.best_epoch,
        "val_precision": best and best.precision,
        "val_recall": best and best.recall,
        "val_hmean": best and best.hmean,
        "gap": result.gap,
        "device": result.device,
        "device_hours": None if timing is None else round(timing.wall_s / 3600, 6),
    }


class _ConsoleHandler(logging.Handler):
    """Log records printed on the run's console, so they interleave with its progress bar."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(record.getMessage(), markup=False, soft_wrap=True)


@contextlib.contextmanager
def _trainer_log_on(console: Console) -> Iterator[None]:
    """What trainer_core logs at INFO (the weights it loaded, a resume) shown to the user."""
    logger = logging.getLogger("trainer_core")
    handler, level = _ConsoleHandler(console), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_training(
    config_path: Path,
    overrides: list[str] | None = None,
    *,
    resume: bool = False,
    out: Path | None = None,
    console: Console | None = None,
    tracking: TrackingSpec | None = None,
) -> FitResult:
    """Load the config (with ``key=value`` overrides), train with a live progress bar.

    ``tracking`` (``--track``) reports the run to W&B, MLflow or TensorBoard; their run
    ids are kept in ``OUT/tracking.json`` so that ``--resume`` continues the same runs.

    Raises:
        SpecError: ``tracking`` names a tracker whose extra is not installed.

    Example:
        >>> result = run_training(Path("best.yaml"), ["epochs=1"])  # doctest: +SKIP
    """
    cfg: TrainConfig = load_train_config(config_path, overrides)
    if out is not None:
        cfg = cfg.model_copy(update={"output_dir": out})
    if tracking is not None and (missing := missing_tracker_extra(tracking)):
        raise SpecError(missing)
    console = console or Console()
    run = _open_tracking(cfg, config_path, tracking, resume)
    columns = (
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
        TextColumn("{task.fields[speed]}  H {task.fields[hmean]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            "train",
            total=None,
            epoch=1,
            epochs=cfg.epochs,
            loss=0.0,
            lr=cfg.optimizer.lr,
            speed="",
            hmean="-",
        )

        def on_step(index: int, total: int, loss: float) -> None:
            progress.update(task, completed=index + 1, total=total, loss=loss)

        def on_epoch_end(epoch: int, record: EpochRecord) -> bool:
            progress.update(
                task,
                epoch=min(epoch + 1, cfg.epochs),
                lr=record.lr,
                speed=f"{record.images_per_s:.1f} img/s",
                hmean=_fmt(record.hmean),
            )
            progress.console.log(
                f"epoch {epoch}: loss {record.train_loss:.4f}  P {_fmt(record.precision)}  "
                f"R {_fmt(record.recall)}  H {_fmt(record.hmean)}"
            )
            if run is not None:
                run.log_epoch(record)
                _keep_run_ids(run, Path(cfg.output_dir))
            return False

        with _trainer_log_on(progress.console):
            result = fit(cfg, on_epoch_end=on_epoch_end, on_step=on_step, resume=resume)
    if run is not None:
        run.finish(_summary(result), [], "FAIL" if result.failed else "COMPLETE")
        _keep_run_ids(run, Path(cfg.output_dir))
    console.print(summary_table(result))
    return result
