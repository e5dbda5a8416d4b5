"""The GPU path, run once for real (issue 23): one script, its tables and logs in one folder.

Sections, each under its share of ``--budget-s`` (one that fails or overruns is recorded
with its traceback, and the next one runs):

1. data: the synthetic data sets the others read, made once.
2. machine: CPU, GPU, torch, CUDA, TF32 settings; which backbones build offline.
3. train_step: images/s and peak memory of DBNet-resnet18, -efficientnet_b4 and -hrnet_w44
   (if it builds offline) at 640 and 1280 px, fp32 / bf16 / fp16 with a GradScaler,
   channels-last off and on; bf16 and fp16 against the goal of 2x fp32.
4. loader: the training data loader alone (decode, augmentation, DB targets) at the worker
   counts the machine has, beside a training epoch fed by it: the share of the epoch spent
   waiting for data.
5. validation: a validation pass (inference, post-processing, H-mean) against a training
   epoch.
6. oom_retry: a real CUDA out-of-memory at 1280 px in a sweeper worker, retried with half
   the batch and twice the accumulation, the trial completed with the same effective batch.
7. worker_sweep: ``sweeper worker --gpus auto --procs-per-gpu 2`` on a short SQLite sweep:
   it completes and prunes, each child used its GPU alone, trials record device and memory.

Out: ``DIR/report.md`` (every table; rewritten after each section), ``DIR/summary.json``,
``DIR/run.log`` (everything logged, the sweeper commands' output, tracebacks). Scratch files
(data, study, checkpoints) go to ``--work`` (default: a temporary folder, removed).
Exit 0 when no section failed (skipped ones do not count), 1 otherwise, 2 on bad input.

Usage:
    uv run python benchmarks/gpu_check.py --out DIR             # on a GPU node: ~7-8 min
    uv run python benchmarks/gpu_check.py --cpu-rehearsal --out DIR    # tiny, any machine
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

# Never download: the backbones are built without weights, and timm must not ask its hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The sibling scripts, and the repository itself for a plain python that has the
# dependencies but not the project installed (a lent GPU machine's image).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
import optuna
import timm
import torch
from gpu_plan import GPU, REHEARSAL, Plan, Run, Workspace, train_config
from gpu_sweeps import oom_retry, worker_sweep
from machine import describe
from sections import LOG, Section, SectionReport, exit_code, run_sections
from torch.utils.data import DataLoader
from train_step import Trainer, loader_rate, train_step_rate

from trainer_core.config import ModelConfig
from trainer_core.data import Sample, make_splits
from trainer_core.data.synthetic_maps import synthetic_prob_maps
from trainer_core.engine import evaluate, prob_maps
from trainer_core.errors import ConfigError
from trainer_core.fit import eval_loader
from trainer_core.metrics import detection_metrics
from trainer_core.model import build_model
from trainer_core.postprocess import polygons_from_prob, postprocess_config_kwargs

log = logging.getLogger("gpu_check")

T = TypeVar("T")

GOAL = 2.0
"""bf16 and fp16 training steps against fp32: at least this many times the images/s."""

SHARES = {
    "data": 0.06,
    "machine": 0.04,
    "train_step": 0.32,
    "loader": 0.13,
    "validation": 0.06,
    "oom_retry": 0.13,
    "worker_sweep": 0.26,
}
"""Each section's weight in the budget, sized on what the GPU plan does on an H100."""


# ---- 1. data --------------------------------------------------------------------------


def data_sets(plan: Plan, ws: Workspace, report: SectionReport) -> None:
    """Make every data set of the plan now, so the later sections' times are their own."""
    table = report.table(["set", "images", "px", "seconds to make"])
    pixels, seconds = 0, 0.0
    for name, spec in plan.data.items():
        size = spec.n_images * spec.px**2
        if pixels and report.time_left() < 1.5 * seconds / pixels * size:
            table.add(name, spec.n_images, spec.px, "left to the first section that reads it")
            continue
        ws.dataset(name)
        pixels, seconds = pixels + size, seconds + ws.made[name]
        table.add(name, spec.n_images, spec.px, f"{ws.made[name]:.1f}")


# ---- 2. machine -----------------------------------------------------------------------


def machine(plan: Plan, report: SectionReport) -> None:
    """What the figures were measured on, and which backbones build with no download."""
    facts = report.table(["what", "value"])
    facts.add("CPU", describe())
    facts.add(
        "python, torch, timm, optuna",
        f"{platform.python_version()}, {torch.__version__}, "
        f"{timm.__version__}, {optuna.__version__}",
    )
    if plan.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.add("GPU", f"{props.name} x {torch.cuda.device_count()}")
        facts.add("GPU memory", f"{props.total_memory / 2**30:.1f} GiB")
        facts.add("compute capability", f"{props.major}.{props.minor}")
        facts.add("CUDA, cuDNN", f"{torch.version.cuda}, {torch.backends.cudnn.version()}")
        facts.add("bf16 supported", torch.cuda.is_bf16_supported())
    else:
        facts.add("GPU", "skipped: --cpu-rehearsal runs on the CPU")
    facts.add(
        "fp32 as trained (torch defaults, trainer_core changes none)",
        f"TF32 convolutions {torch.backends.cudnn.allow_tf32}, "
        f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
        f"cudnn.benchmark {torch.backends.cudnn.benchmark}",
    )
    builds = report.table(["backbone", "builds offline", "DBNet parameters (M)", "build s"])
    for name in plan.backbones:
        start = time.perf_counter()
        try:
            model = build_model(ModelConfig(backbone=name))
        except ConfigError as e:
            builds.add(name, f"no: {e}", "-", "-")
            if name in plan.required_backbones:
                report.check(f"{name} builds offline", False, str(e))
            continue
        params = sum(p.numel() for p in model.parameters()) / 1e6
        builds.add(name, "yes", f"{params:.1f}", f"{time.perf_counter() - start:.1f}")


# ---- 3. training step -----------------------------------------------------------------


def _step_rows(plan: Plan) -> Iterator[tuple[str, Run, str, bool]]:
    """(backbone, run, precision, channels_last) in the order they are measured."""
    for backbone in plan.backbones:
        full = backbone in plan.full_matrix
        for run in plan.step_runs:
            for precision in ("fp32", "bf16", "fp16") if full else ("fp32",):
                for channels_last in (False, True) if full else (False,):
                    yield backbone, run, precision, channels_last


def _one_line(e: BaseException, limit: int = 200) -> str:
    return " ".join(str(e).split())[:limit]


def _why_not(plan: Plan, precision: str) -> str | None:
    """Why a precision cannot run on this plan's device (None: it can)."""
    if precision == "fp16" and plan.device != "cuda":
        return "fp16 with a GradScaler needs CUDA (trainer_core refuses it on the CPU)"
    if precision == "bf16" and plan.device == "cuda" and not torch.cuda.is_bf16_supported():
        return "this GPU has no bf16"
    return None


def train_step(plan: Plan, report: SectionReport) -> None:
    """The step matrix; each bf16/fp16 row against fp32 of its backbone, size and layout."""
    device = torch.device(plan.device)
    table = report.table(
        [
            "backbone",
            "px",
            "batch",
            "precision",
            "channels_last",
            "images/s",
            "x fp32",
            f"goal >= {GOAL:g}x",
            "peak MB",
        ]
    )
    fp32: dict[tuple[str, int, bool], float] = {}
    unbuildable: dict[str, str] = {}
    met, judged, slowest = 0, 0, 0.0
    cut: list[str] = []  # rows the time limit left unmeasured
    for backbone, run, precision, layout in _step_rows(plan):
        head = (backbone, run.px, run.batch, precision, "on" if layout else "off")
        why = _why_not(plan, precision) or unbuildable.get(backbone)
        if why is None and (cut or report.time_left() < 1.5 * slowest):
            why = "not measured: the section's time limit"
            cut.append(backbone)
        if why is not None:
            table.add(*head, why if why.startswith("not") else f"skipped: {why}", "", "", "")
            continue
        cfg = train_config(plan, run, model={"backbone": backbone})
        start = time.perf_counter()
        try:
            rate = train_step_rate(cfg, device, precision, plan.steps, layout, plan.warm_up)
        except torch.OutOfMemoryError:
            table.add(*head, f"out of memory at batch {run.batch}", "", "", "")
            continue
        except ConfigError as e:
            if backbone in plan.required_backbones:
                raise
            unbuildable[backbone] = f"does not build offline ({e})"
            table.add(*head, f"skipped: {unbuildable[backbone]}", "", "", "")
            continue
        except Exception as e:  # one broken row (a kernel missing for a layout) is a finding
            log.exception("train step %s failed", head)
            table.add(*head, f"FAILED: {type(e).__name__}: {_one_line(e)}", "", "", "")
            report.check(f"{' '.join(map(str, head))} trains", False, "traceback in run.log")
            continue
        finally:
            slowest = max(slowest, time.perf_counter() - start)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        key = (backbone, run.px, layout)
        ratio, verdict = "", ""
        if precision == "fp32":
            fp32[key] = rate.images_per_s
        elif key in fp32:
            x = rate.images_per_s / fp32[key]
            ratio, verdict = f"{x:.2f}", "met" if x >= GOAL else "not met"
            met, judged = met + (x >= GOAL), judged + 1
        peak = "-" if rate.peak_memory_mb is None else f"{rate.peak_memory_mb:,.0f}"
        table.add(*head, f"{rate.images_per_s:.1f}", ratio, verdict, peak)
    if cut:  # the optional backbones come last: losing their rows fails nothing
        required = [b for b in cut if b in plan.required_backbones]
        report.check(
            "every row of the required backbones measured in time",
            not required,
            f"{len(cut)} rows left, {len(required)} of required backbones",
        )
    report.note(
        f"Goal bf16 and fp16 >= {GOAL:g}x fp32: met in {met} of {judged} rows measured. "
        f"{plan.steps} timed step(s) after {plan.warm_up} untimed, synthetic batches "
        "(benchmarks/train_step.py); peak MB: CUDA max allocated from the model's build on."
        + ("" if plan.device == "cuda" else " Peak memory: no per-row figure on the CPU.")
    )


# ---- 4. data loader beside the step ---------------------------------------------------


class WaitedLoader:
    """A data loader as ``train_one_epoch`` iterates it, timing how long each batch was
    waited for; the first batch's wait (the workers' start, as every epoch of ``fit`` pays
    it) is also kept apart."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.wait_s = 0.0
        self.first_s = 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        start = time.perf_counter()
        batches = iter(self.loader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            finally:
                self.wait_s += time.perf_counter() - start
                self.first_s = self.first_s or self.wait_s
            yield batch
            start = time.perf_counter()


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole > 0 else "-"


def loader(plan: Plan, ws: Workspace, report: SectionReport) -> None:
    """The loader alone at each worker count, and a training epoch fed by it."""
    cores = os.cpu_count() or 1
    workers = [w for w in plan.loader_workers if w <= cores] or [cores]
    table = report.table(
        [
            "px",
            "batch",
            "workers",
            "loader alone, img/s",
            "epoch fed by it, img/s",
            "epoch waiting for data",
            "after its first batch",
            "step alone, img/s",
        ]
    )
    epochs: list[str] = []
    for run in plan.loader_runs:
        if report.time_left() < 10:
            report.check("every setting measured in time", False, f"not {run.px} px")
            continue
        cfg = train_config(plan, run, ws.dataset(run.data))
        samples = make_splits(cfg.data).train
        epochs.append(f"{len(samples)} images at {run.px} px")
        step = train_step_rate(
            cfg, torch.device(plan.device), cfg.precision, plan.steps, warm_up=plan.warm_up
        )
        trainer = Trainer(cfg, torch.device(plan.device), cfg.precision)
        if plan.warm_up:
            trainer.epoch(trainer.loader(samples, max(workers)))
        for w in workers:
            if report.time_left() < 10:
                report.check("every setting measured in time", False, f"not {run.px} px x {w}")
                break
            # Two batches a worker at least (epochs over again), so many workers are not
            # timed on batches they had all prepared at once.
            alone = loader_rate(cfg, w, batches=max(len(samples) // run.batch, 2 * w))
            waited = WaitedLoader(trainer.loader(samples, w))
            stats = trainer.epoch(waited)
            steady = stats.seconds - waited.first_s
            table.add(
                run.px,
                run.batch,
                w,
                f"{alone:.1f}",
                f"{stats.images_per_s:.1f}",
                _percent(waited.wait_s, stats.seconds),
                _percent(waited.wait_s - waited.first_s, steady),
                f"{step.images_per_s:.1f}",
            )
    report.note(
        f"{cores} cores. Loader alone: persistent workers, the first batch (start-up) not "
        "counted. Epoch: `train_one_epoch` over a loader built as `fit` builds it (workers "
        f"started each epoch, pinned memory on CUDA) over the training split "
        f"({', '.join(epochs)}), "
        "precision auto. Waiting: time blocked on the next batch, the workers' start "
        "included; after its first batch: the rest of the epoch. Step alone: synthetic batches."
    )


# ---- 5. validation against a training epoch ------------------------------------------


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def validation(plan: Plan, ws: Workspace, report: SectionReport) -> None:
    """What one validation pass costs beside one training epoch, and where it goes."""
    run = plan.val_run
    cfg = train_config(plan, run, ws.dataset(run.data), num_workers=plan.val_workers)
    splits = make_splits(cfg.data)
    trainer = Trainer(cfg, torch.device(plan.device), cfg.precision)
    train = trainer.loader(splits.train, plan.val_workers)
    val = eval_loader(splits.val, cfg)
    post = postprocess_config_kwargs(cfg.postprocess)
    if plan.warm_up:
        trainer.epoch(train)
    stats = trainer.epoch(train)
    args = (trainer.model, val, splits.val, trainer.precision, trainer.device, cfg.postprocess)
    if plan.warm_up:
        evaluate(*args)
    _, eval_s = _timed(partial(evaluate, *args, cfg.metric_average))
    maps, infer_s = _timed(
        lambda: list(prob_maps(trainer.model, val, trainer.precision, trainer.device))
    )
    # An untrained model's maps say nothing of post-processing's real cost: time it on
    # maps like a half-trained DBNet's (trainer_core.data.synthetic_maps).
    fake, scales = synthetic_prob_maps(splits.val, cfg.input_size)
    polygons, post_s = _timed(partial(_postprocess, fake, scales, post))
    _, hmean_s = _timed(partial(_hmean, splits.val, polygons))
    n_train, n_val = len(splits.train), len(splits.val)
    table = report.table(["part", "images", "seconds", "ms per image"])
    for part, n, seconds in (
        (
            f"training epoch (`train_one_epoch`, {plan.val_workers} loader workers)",
            n_train,
            stats.seconds,
        ),
        (
            "validation as `fit` runs it (`evaluate`: all three, untrained model's maps)",
            n_val,
            eval_s,
        ),
        ("inference (`prob_maps`)", n_val, infer_s),
        ("post-processing of half-trained-like maps (`polygons_from_prob`)", n_val, post_s),
        ("H-mean of those polygons (`detection_metrics`)", n_val, hmean_s),
    ):
        table.add(part, n, f"{seconds:.2f}", f"{1e3 * seconds / max(1, n):.1f}")
    realistic = infer_s + post_s + hmean_s
    report.note(
        f"{run.px} px, batch {run.batch}, {len(maps)} val maps. One validation pass over the "
        f"val split ({n_val} images, {cfg.data.val_fraction:.0%} of the data) costs "
        f"{eval_s:.2f} s as `fit` ran it, {_percent(eval_s, stats.seconds)} of a training "
        f"epoch over the train split ({n_train} images, {stats.seconds:.2f} s); with "
        f"half-trained-like maps {realistic:.2f} s, {_percent(realistic, stats.seconds)}."
    )


def _postprocess(
    maps: np.ndarray, scales: np.ndarray, post: dict[str, object]
) -> list[list[np.ndarray]]:
    """Polygons of each map in its image's coordinates, as ``predict`` returns them."""
    out = []
    for prob, scale in zip(maps, scales, strict=True):
        polygons, _ = polygons_from_prob(prob.astype(np.float32), **post)  # type: ignore[arg-type]
        out.append([p / scale for p in polygons])
    return out


def _hmean(samples: Sequence[Sample], polygons: list[list[np.ndarray]]) -> object:
    return detection_metrics(
        [list(s.polygons) for s in samples], [list(s.ignore) for s in samples], polygons
    )


# ---- the run ----------------------------------------------------------------------------


def sections(plan: Plan, ws: Workspace) -> list[Section]:
    """Every section of the check, in the order they run."""
    runs = {
        "data": partial(data_sets, plan, ws),
        "machine": partial(machine, plan),
        "train_step": partial(train_step, plan),
        "loader": partial(loader, plan, ws),
        "validation": partial(validation, plan, ws),
        "oom_retry": partial(oom_retry, plan, ws),
        "worker_sweep": partial(worker_sweep, plan, ws),
    }
    titles = {
        "data": "Synthetic data sets",
        "machine": "Machine, and which backbones build offline",
        "train_step": "Training step: images/s and peak memory by precision and layout",
        "loader": "Data loader alone, and the share of a training epoch spent waiting for it",
        "validation": "Validation cost against a training epoch",
        "oom_retry": "CUDA out-of-memory at 1280 px: retried with half the batch",
        "worker_sweep": "sweeper worker: one process per GPU, a short SQLite sweep",
    }
    return [Section(name, titles[name], run, SHARES[name]) for name, run in runs.items()]


def _cleanup(plan: Plan) -> None:
    if plan.device == "cuda":
        torch.cuda.empty_cache()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the report and log")
    parser.add_argument(
        "--cpu-rehearsal",
        action="store_true",
        help="tiny sizes on the CPU; the CUDA-only parts are reported as skipped",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        help=f"the whole run's seconds (default {GPU.budget_s:g} on a GPU, "
        f"{REHEARSAL.budget_s:g} rehearsing), split between the sections",
    )
    parser.add_argument("--only", nargs="+", metavar="SECTION", help="run these sections only")
    parser.add_argument("--work", type=Path, help="scratch folder, kept (default: a temporary one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    plan = REHEARSAL if args.cpu_rehearsal else GPU
    if plan.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device here; --cpu-rehearsal rehearses on the CPU", file=sys.stderr
        )
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    ws = Workspace(work, plan)
    chosen = sections(plan, ws)
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in chosen})
        if unknown:
            names = ", ".join(s.name for s in chosen)
            print(
                f"gpu_check: --only {' '.join(unknown)}: no such section ({names})", file=sys.stderr
            )
            return 2
        chosen = [s for s in chosen if s.name in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / LOG, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    budget = args.budget_s or plan.budget_s
    gpu = torch.cuda.get_device_name(0) if plan.device == "cuda" else "no GPU used"
    header = (
        f"# GPU check: plan `{plan.name}`\n\n"
        f"`{' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}`, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}, budget {budget:.0f} s.\n\n"
        f"Machine: {describe(gpu, f'torch {torch.__version__}')}."
    )
    start = time.perf_counter()
    try:
        results = run_sections(chosen, args.out, header, budget, cleanup=partial(_cleanup, plan))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print(f"{r.name:<13} {r.status:<8} {r.seconds:6.1f} s  {r.reason}")
    print(f"{time.perf_counter() - start:.0f} s in all; report: {args.out / 'report.md'}")
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
