"""``sweeper demo``: a real warm-started sweep on generated data, SQLite and this machine.

It first makes the starting point every trial fine-tunes (``model.init_checkpoint`` of the
demo spec): a DBNet trained once on a separate synthetic set, the stand-in for ImageNet
pretraining, kept as ``pretrained/best.pt`` and reused by the next run. Then it sweeps.
Everything stays under ``<cwd>/sweeper-demo``: both datasets, the starting point, the
SQLite database, checkpoints, pictures and worker logs.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from storage import open_storage
from sweeper.define import StudySpec, create_study, load_spec, load_study
from sweeper.rank import rank_study
from sweeper.run import WorkerOptions, plan_slots, run_workers
from sweeper.view import print_ranking
from trainer_core.data.synthetic import generate

if TYPE_CHECKING:
    from trainer_core.fit import EpochRecord

__all__ = [
    "DEMO_DATA",
    "PRETRAIN",
    "PRETRAIN_DATA",
    "bundled_spec",
    "pretrained_checkpoint",
    "run_demo",
]

DEMO_DATA = {"n_images": 48, "size": (128, 128), "text_height": (10, 24), "regions": (2, 6)}
"""What ``generate`` makes for the demo's sweep (seed 0)."""

PRETRAIN_DATA = {**DEMO_DATA, "n_images": 96, "seed": 1000}
"""The separate synthetic set the starting point is trained on (other images, same kind)."""

PRETRAIN = {
    "epochs": 12,
    "eval_every": 3,
    "batch_size": 8,
    "optimizer.lr": 4e-3,
    "scheduler.eta_min": 1e-5,
    "data.val_fraction": 0.15,
    "data.holdout_fraction": 0.0,
}
"""How the starting point is trained: from scratch, long enough to converge (val H ~0.9)."""


def bundled_spec(name: str) -> Path:
    """A spec shipped with sweeper: ``sweeper/studies`` in a wheel, ``studies/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "studies", here.parent / "studies"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name}: not found in the installed sweeper (studies/)")


def run_demo(
    workdir: Path, procs: int = 2, gpus: str = "auto", console: Console | None = None
) -> int:
    """Generate data, make (or reuse) the starting point, create the demo study, sweep it,
    print the ranking.

    Returns the workers' exit code (0 when every worker finished cleanly).
    """
    console = console or Console()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec: StudySpec = load_spec(bundled_spec("demo.yaml"))
    # The spec's data paths are relative to the data root, here the demo directory.
    annotations = workdir / (spec.base.data.annotations or "annotations.json")
    if not annotations.exists():
        console.print(f"generating {DEMO_DATA['n_images']} images in {annotations.parent}")
        generate(annotations.parent, seed=0, **DEMO_DATA)
    pretrained_checkpoint(workdir, spec, console)
    url = f"sqlite:///{workdir / 'demo.db'}"
    spec = spec.renamed(f"demo-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    storage = open_storage(url)
    create_study(spec, storage)
    console.print(f"study {spec.name} in {url}: {spec.budget.n_trials} trials")
    artifacts = workdir / "artifacts"
    slots = plan_slots(gpus, procs=procs)
    options = WorkerOptions(spec.name, artifacts, data_root=workdir)
    code = run_workers(options, url, slots, console=console)
    study, spec = load_study(spec.name, storage)
    print_ranking(rank_study(study, spec), console, top=10)
    console.print(
        f"\nbrowse it: sweeper dashboard --storage {url} --artifacts {artifacts}"
        f"\nexport the winner: sweeper export-best {spec.name} --storage {url} -o best.yaml"
    )
    return code


def pretrained_checkpoint(workdir: Path, spec: StudySpec, console: Console) -> Path:
    """The demo's starting point: trained here once, then reused from ``workdir``.

    Trained in ``workdir/pretraining`` and copied to the spec's ``model.init_checkpoint``
    only when finished, so an interrupted run leaves nothing half-trained to reuse.

    Raises:
        RuntimeError: the pretraining run failed.
    """
    init = spec.base.model.init_checkpoint
    if init is None:
        raise ValueError("the demo spec names no model.init_checkpoint to start from")
    target = workdir / init
    if target.is_file():
        console.print(f"starting point: {target} (reused; delete it to train a new one)")
        return target
    from trainer_core.config import apply_overrides
    from trainer_core.fit import fit

    data = workdir / "pretrain-data"
    if not (data / "annotations.json").exists():
        generate(data, **PRETRAIN_DATA)
    cfg = apply_overrides(
        spec.base,
        {
            **PRETRAIN,
            "model.init_checkpoint": None,
            "data.image_root": str(data / "images"),
            "data.annotations": str(data / "annotations.json"),
            "output_dir": str(workdir / "pretraining"),
        },
    )
    console.print(
        f"making the starting point: {cfg.model.backbone} DBNet from scratch on "
        f"{PRETRAIN_DATA['n_images']} other synthetic images, {cfg.epochs} epochs"
    )
    start = time.perf_counter()

    def progress(epoch: int, record: EpochRecord) -> bool:
        console.print(f"  pretraining epoch {epoch}/{cfg.epochs}: val H-mean {record.hmean:.3f}")
        return False

    result = fit(cfg, on_epoch_end=progress)
    if result.failed or result.best is None:
        raise RuntimeError(f"pretraining the demo's starting point failed: {result.reason}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(result.best_checkpoint, tmp)
    os.replace(tmp, target)
    console.print(
        f"starting point: {target}, val H-mean {result.best.hmean:.3f} at epoch "
        f"{result.best_epoch} ({time.perf_counter() - start:.0f} s)"
    )
    return target
