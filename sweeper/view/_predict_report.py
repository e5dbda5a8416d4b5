"""What ``predict``, ``evaluate`` and ``record-test`` print: a progress bar over the images,
then one line each for the model, its post-processing, the speed, the skipped files and the
result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sweeper.after import Evaluation, Models, Prediction, Recorded
from sweeper.text import percent

__all__ = ["image_progress", "print_evaluation", "print_prediction", "print_recorded"]

ImageFn = Callable[[Path, bool], None]


@contextmanager
def image_progress(console: Console) -> Iterator[tuple[Callable[[int], None], ImageFn]]:
    """A progress bar over images: yields ``(on_start(total), on_image(path, read))``."""
    progress = Progress(
        TextColumn("images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("images", total=None)
    with progress:
        yield (
            lambda total: progress.update(task, total=total),
            lambda _path, _read: progress.advance(task),
        )


def _print(console: Console, text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


def _models(models: Models, console: Console) -> None:
    _print(console, f"model: {models.what}")
    post = ", ".join(f"{k}={v}" for k, v in models.post.model_dump().items())
    _print(console, f"post-processing: {models.post_from} ({post})")
    if len(models.checkpoints) > 1:
        _print(
            console,
            "note: averaged maps are flatter where the members disagree, so a box_thresh "
            "tuned for one model can drop true regions of the ensemble (BENCHMARKS.md); "
            "check on a labelled split with sweeper evaluate and --set postprocess.box_thresh=V",
        )


def _skipped(skipped: list[tuple[Path, str]], console: Console) -> None:
    for _path, why in skipped:
        _print(console, f"skipped: {why}")


def print_prediction(done: Prediction, console: Console) -> None:
    """The model, its post-processing, speed, skipped images, and where the output went."""
    _models(done.models, console)
    run = done.run
    _skipped(run.skipped, console)
    boxes = sum(len(p) for p in run.polygons if p is not None)
    _print(
        console,
        f"{run.n_done} images in {run.seconds:.1f} s ({run.images_per_s:.2f} images/s on "
        f"{done.device}), {len(run.skipped)} skipped; {boxes} text regions -> {done.output} "
        f"({done.fmt})",
    )


def print_evaluation(done: Evaluation, console: Console) -> None:
    """The model, its post-processing, speed, skipped images, and P, R, H with counts."""
    _models(done.models, console)
    run, m = done.run, done.metrics
    _skipped(run.skipped, console)
    _print(
        console,
        f"{run.n_done} of {done.images} annotated images in {run.seconds:.1f} s "
        f"({run.images_per_s:.2f} images/s), {len(run.skipped)} skipped (scored as no "
        f"detections); averaged per {done.models.metric_average}",
    )
    _print(
        console,
        f"H-mean {percent(m.hmean)}  precision {percent(m.precision)}  recall "
        f"{percent(m.recall)}  ({m.n_match} matches, {m.n_gt} ground truths, "
        f"{m.n_pred} predictions)",
    )


def print_recorded(done: Recorded, study: str, console: Console) -> None:
    """What was stored, in 0..1, and how much val overstated it."""
    s = done.score
    scale = "read as percent, stored as 0..1" if done.percent else "read as fractions (0..1)"
    figures = f"H {s.hmean:.4f}" + "".join(
        f"  {name} {v:.4f}" for name, v in (("P", s.precision), ("R", s.recall)) if v is not None
    )
    _print(console, f"trial {done.trial} of {study}, {s.label}: {figures} ({scale})")
    expected = done.hmean_of_p_and_r
    if expected is not None and abs(expected - s.hmean) > 0.005:
        _print(
            console,
            f"  warning: 2PR/(P+R) is {expected:.4f}, not the H-mean {s.hmean:.4f}; "
            "check the figures (stored as given)",
        )
    if done.replaced is not None:
        _print(console, f"  replaced {s.label} H {done.replaced.hmean:.4f}")
    if done.val_hmean is not None:
        drop = percent(done.val_hmean - s.hmean, signed=True)
        _print(console, f"  val H {percent(done.val_hmean)}; val − {s.label}: {drop} points")
