"""What ``gpu_check.py`` runs at: the sizes for a lent H100 and those of the CPU rehearsal,
and the scratch folder its synthetic data sets are made in (once each).

The GPU sizes are chosen so the whole check fits 8 minutes on an H100 (the sections'
shares of ``budget_s`` in ``gpu_check.py``); the rehearsal's are the smallest that still
run every line the GPU run will run, on any CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer_core.config import TrainConfig
from trainer_core.data.synthetic import generate

__all__ = ["GPU", "REHEARSAL", "DataSet", "Plan", "Workspace", "train_config"]


@dataclass(frozen=True)
class DataSet:
    """A synthetic data set: ``n_images`` square images of ``px`` pixels."""

    n_images: int
    px: int
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    """More keyword arguments of ``trainer_core.data.synthetic.generate``."""


@dataclass(frozen=True)
class Run:
    """One measured setting: input size, batch, and the data set it reads."""

    px: int
    batch: int
    data: str = "main"


# The demo's kind of images (sweeper demo): small text a small DBNet learns in a few epochs.
_DEMO_IMAGES = {"text_height": (10, 24), "regions": (2, 6)}


@dataclass(frozen=True)
class Plan:
    """Every size one check runs at."""

    name: str
    device: str
    """``cuda`` or ``cpu``: where the in-process sections run."""
    budget_s: float
    """Default of ``--budget-s``: the whole run's time, split between the sections."""
    data: dict[str, DataSet]
    # Training step: every backbone at every size, precision and memory layout.
    backbones: tuple[str, ...]
    required_backbones: tuple[str, ...]
    """Those the check fails without; the others are measured only if they build offline."""
    full_matrix: tuple[str, ...]
    """Backbones measured in every precision and layout; the rest in fp32 without
    channels-last only (the rehearsal: they build and train, that is all it asks)."""
    step_runs: tuple[Run, ...]
    steps: int
    warm_up: int
    """Untimed training steps before the timed ones; one untimed epoch (or validation
    pass) before a timed one when above 0: CUDA's first calls load and pick kernels."""
    # The data loader beside the step.
    loader_runs: tuple[Run, ...]
    loader_workers: tuple[int, ...]
    # Validation against a training epoch.
    val_run: Run
    val_workers: int
    # The out-of-memory retry: a batch that must not fit, then half of it (on the CPU, the
    # same study without the out-of-memory).
    oom_run: Run
    oom_backbone: str
    # The worker sweep: a starting point, then fine-tuning trials of the demo study.
    sweep_backbone: str
    sweep_neck: int
    sweep_px: int
    pretrain_epochs: int
    sweep_epochs: int
    sweep_trials: int
    procs_per_gpu: int
    sweep_workers: int
    """Data-loader workers of each training process in the sweep sections."""


GPU = Plan(
    name="gpu",
    device="cuda",
    budget_s=420.0,
    data={
        "main": DataSet(96, 640, seed=1),
        "large": DataSet(24, 1280, seed=2),
        "pretrain": DataSet(96, 128, seed=1000, options=_DEMO_IMAGES),
        "sweep": DataSet(48, 128, seed=0, options=_DEMO_IMAGES),
    },
    backbones=("resnet18", "efficientnet_b4", "hrnet_w44"),
    required_backbones=("resnet18", "efficientnet_b4"),
    full_matrix=("resnet18", "efficientnet_b4", "hrnet_w44"),
    # The same pixels per batch at both sizes: batch 16 at 640 px (BENCHMARKS.md's goal).
    step_runs=(Run(640, 16), Run(1280, 4)),
    steps=6,
    warm_up=2,
    loader_runs=(Run(640, 16, "main"), Run(1280, 4, "large")),
    loader_workers=(1, 2, 4, 8, 16),
    val_run=Run(640, 16, "main"),
    val_workers=8,
    oom_run=Run(1280, 8, "large"),
    oom_backbone="resnet18",
    sweep_backbone="resnet10t",
    sweep_neck=64,
    sweep_px=128,
    pretrain_epochs=12,
    sweep_epochs=6,
    sweep_trials=12,
    procs_per_gpu=2,
    sweep_workers=4,
)

REHEARSAL = Plan(
    name="cpu-rehearsal",
    device="cpu",
    budget_s=900.0,
    data={
        "main": DataSet(12, 96, seed=1),
        "pretrain": DataSet(8, 96, seed=1000, options=_DEMO_IMAGES),
        "sweep": DataSet(10, 96, seed=0, options=_DEMO_IMAGES),
    },
    backbones=GPU.backbones,
    required_backbones=GPU.required_backbones,
    full_matrix=("resnet18",),
    step_runs=(Run(64, 2),),
    steps=1,
    warm_up=0,
    loader_runs=(Run(64, 4, "main"),),
    loader_workers=(1, 2),
    val_run=Run(64, 4, "main"),
    val_workers=1,
    oom_run=Run(64, 4, "main"),
    oom_backbone="mobilenetv3_small_050",
    sweep_backbone="mobilenetv3_small_050",
    sweep_neck=32,
    sweep_px=64,
    pretrain_epochs=1,
    sweep_epochs=2,
    sweep_trials=2,
    procs_per_gpu=1,
    sweep_workers=0,
)


def train_config(plan: Plan, run: Run, data: Path | None = None, **update: Any) -> TrainConfig:
    """DBNet-resnet18 at ``run``'s size on ``plan``'s device, precision ``auto`` (as the
    team trains), reading ``data`` (an ``annotations.json``; None: the step's synthetic
    batches need none). ``update``: more top-level fields (``num_workers``, ``model``)."""
    tree: dict[str, Any] = {
        "input_size": run.px,
        "batch_size": run.batch,
        "device": plan.device,
        "precision": "auto",
        "data": {"val_fraction": 0.25},
        **update,
    }
    if data is not None:
        tree["data"] |= {"image_root": str(data.parent / "images"), "annotations": str(data)}
    return TrainConfig.model_validate(tree)


class Workspace:
    """The scratch folder of one check: its data sets (each made once), studies, artifacts."""

    def __init__(self, root: Path, plan: Plan) -> None:
        self.root = root
        self.plan = plan
        self.made: dict[str, float] = {}
        """Seconds each data set took to make in this run (0 when an earlier run's was reused)."""

    def dataset(self, name: str) -> Path:
        """The ``annotations.json`` of the plan's data set ``name``, made on first use."""
        spec = self.plan.data[name]
        folder = self.root / "data" / f"{name}-{spec.n_images}x{spec.px}-{spec.seed}"
        annotations = folder / "annotations.json"
        if not annotations.exists():
            start = time.perf_counter()
            generate(folder, spec.n_images, (spec.px, spec.px), spec.seed, **spec.options)
            self.made[name] = time.perf_counter() - start
        self.made.setdefault(name, 0.0)
        return annotations

    def folder(self, name: str) -> Path:
        """A fresh-named folder for one section's files."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
