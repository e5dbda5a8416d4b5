"""Which ranking rule's pick holds up on data no rule saw? Measured on a pool of real trials.

1. Data like the team's: synthetic receipts (trainer_core.data.synthetic, style "receipt"):
   a pretraining set, a training set, and a large evaluation set that is never trained on.
2. A starting point, made once: a DBNet trained on the pretraining set (the stand-in for
   ImageNet weights; every pool trial fine-tunes it through ``model.init_checkpoint``).
3. A pool: P configs from the receipts search space scaled down (lr from timid to
   destructive, weight decay, T_max up to twice the epochs, eta_min), each trained once with
   the real ``fit``. After every epoch the trial's weights are evaluated on every evaluation
   image (per-image counts of cared GT, cared predictions, matches) and on a fixed subset of
   its training images (for the train-gap rule).
4. Sweeps simulated from the pool at no further training cost (sweeper.selection.simulate):
   each draw splits the evaluation images into val / holdout / test at random and takes K
   trials; the best epoch is chosen on val, the holdout only ranks, the test only judges.

Prints the machine, the pool, and per rule: mean test H-mean of its pick, regret against
the best test H-mean among the K, how often it beats or ties the val pick, Kendall tau with
the test order. ``--quick`` runs the whole pipeline small (a check, not a measurement).

    uv run python benchmarks/selection.py            # the measurement (tens of minutes)
    uv run python benchmarks/selection.py --quick    # the pipeline end to end, small
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from machine import describe
from torch.utils.data import DataLoader

from sweeper.rank import RuleSpec, hmean_from_counts, simulate
from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import TrainConfig
from trainer_core.data import DetectionDataset, Sample, read_ufo
from trainer_core.data.synthetic import generate
from trainer_core.engine import predict
from trainer_core.fit import EpochRecord, fit
from trainer_core.metrics import detection_metrics
from trainer_core.model import build_model
from trainer_core.precision import resolve_precision


@dataclass(frozen=True)
class Setup:
    """Sizes of one run of the benchmark."""

    pool: int
    epochs: int
    pretrain_images: int
    pretrain_epochs: int
    train_images: int
    eval_images: int
    sizes: tuple[int, int, int]
    k: int
    draws: int
    train_subset: int = 24


FULL = Setup(
    pool=32,
    epochs=5,
    pretrain_images=96,
    pretrain_epochs=30,
    train_images=48,
    eval_images=240,
    sizes=(80, 80, 80),
    k=12,
    draws=400,
    train_subset=16,
)
QUICK = Setup(
    pool=6,
    epochs=2,
    pretrain_images=24,
    pretrain_epochs=3,
    train_images=16,
    eval_images=36,
    sizes=(12, 12, 12),
    k=4,
    draws=50,
    train_subset=8,
)
PAGE = (192, 96)  # tall receipt pages, (height, width)
TEXT_HEIGHT = (12.0, 18.0)  # pixels: 8-12 px at the 128 px input
RULES = [
    RuleSpec("val"),
    RuleSpec("holdout"),
    RuleSpec("mean"),
    *(
        RuleSpec("score", penalty, tolerance)
        for penalty in (0.5, 1.0, 2.0, 4.0)
        for tolerance in (0.0, 0.005, 0.01, 0.02)
    ),
    *(
        RuleSpec("score", penalty, tolerance, gap_split="train")
        for penalty in (0.5, 1.0)
        for tolerance in (0.02, 0.05)
    ),
]


def _base(annotations: Path, out: Path, epochs: int, **model: object) -> dict:
    return {
        "model": {"backbone": "resnet10t", "neck_channels": 64, **model},
        "data": {
            "format": "ufo",
            "image_root": str(annotations.parent / "images"),
            "annotations": str(annotations),
            "val_fraction": 0.1,
        },
        "augment": {"scale": [0.9, 1.1], "rotate": 2.0},
        "input_size": 128,
        "batch_size": 8,
        "epochs": epochs,
        "precision": "fp32",
        "device": "cpu",
        "output_dir": str(out),
    }


def _data(cache: Path, setup: Setup) -> dict[str, Path]:
    """The three receipt sets, generated once per size."""
    sets = {"pretrain": (setup.pretrain_images, 100), "train": (setup.train_images, 200)}
    sets["eval"] = (setup.eval_images, 300)
    paths = {}
    for name, (n, seed) in sets.items():
        folder = cache / f"{name}-{n}"
        ann = folder / "annotations.json"
        if not ann.exists():
            generate(
                folder, n_images=n, size=PAGE, seed=seed, style="receipt", text_height=TEXT_HEIGHT
            )
        paths[name] = ann
    return paths


def _pretrained(cache: Path, data: dict[str, Path], setup: Setup) -> Path:
    """The starting point every pool trial fine-tunes, trained once and kept."""
    out = cache / f"pretrained-{setup.pretrain_images}-{setup.pretrain_epochs}"
    if not (out / "best.pt").exists():
        cfg = _base(data["pretrain"], out, setup.pretrain_epochs)
        cfg |= {"optimizer": {"lr": 4e-3}, "scheduler": {"eta_min": 1e-5}, "eval_every": 5}
        result = fit(TrainConfig.model_validate(cfg))
        print(f"pretrained: val H-mean {result.best.hmean:.3f} after {result.epochs_run} epochs")
    return out / "best.pt"


def _configs(n: int, epochs: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` configs spread over the scaled-down receipts space (log-uniform where log)."""
    rng = np.random.default_rng(seed)

    def log_uniform(low: float, high: float) -> float:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    return [
        {
            "lr": log_uniform(3e-4, 3e-2),
            "weight_decay": log_uniform(1e-6, 1e-1),
            "T_max": int(rng.integers(max(1, epochs // 2), 2 * epochs + 1)),
            "eta_min": log_uniform(1e-6, 1e-4),
        }
        for _ in range(n)
    ]


def _per_image_counts(
    model: torch.nn.Module, samples: list[Sample], cfg: TrainConfig
) -> np.ndarray:
    """(images, 3) cared GT, cared predictions and matches of ``model`` on ``samples``."""
    loader = DataLoader(DetectionDataset(samples, cfg, train=False), batch_size=16)
    precision = resolve_precision("fp32", torch.device("cpu"))
    preds = predict(model, loader, len(samples), precision, torch.device("cpu"), cfg.postprocess)
    counts = []
    for sample, pred in zip(samples, preds, strict=True):
        m = detection_metrics([list(sample.polygons)], [list(sample.ignore)], [pred])
        counts.append((m.n_gt, m.n_pred, m.n_match))
    return np.array(counts, np.int64)


def _train_trial(
    params: dict[str, float],
    start: Path,
    data: dict[str, Path],
    evaluation: list[Sample],
    train_subset: list[Sample],
    out: Path,
    epochs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune one config; (epochs, eval images, 3) counts and (epochs,) train-subset H."""
    cfg = TrainConfig.model_validate(
        {
            **_base(data["train"], out, epochs, init_checkpoint=str(start)),
            "optimizer": {"lr": params["lr"], "weight_decay": params["weight_decay"]},
            "scheduler": {"T_max": params["T_max"], "eta_min": params["eta_min"]},
        }
    )
    model = build_model(cfg.model.model_copy(update={"init_checkpoint": None}))
    per_epoch, train_h = [], []

    def on_epoch_end(epoch: int, record: EpochRecord) -> bool:
        model.load_state_dict(load_checkpoint(out / "last.pt")["model"])  # this epoch's weights
        per_epoch.append(_per_image_counts(model, evaluation, cfg))
        train_h.append(float(hmean_from_counts(_per_image_counts(model, train_subset, cfg).sum(0))))
        return False

    fit(cfg, on_epoch_end=on_epoch_end)
    return np.stack(per_epoch), np.array(train_h)


def _pool(cache: Path, setup: Setup) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The pool's counts, trained once and kept in ``cache`` (a rerun only simulates)."""
    path = cache / f"pool-{setup.pool}-{setup.epochs}-{setup.train_images}-{setup.eval_images}.npz"
    if path.exists():
        saved = np.load(path)
        return saved["counts"], saved["train_hmean"], json.loads(str(saved["configs"]))
    data = _data(cache, setup)
    start = _pretrained(cache, data, setup)
    evaluation = read_ufo(data["eval"], data["eval"].parent / "images")
    train = read_ufo(data["train"], data["train"].parent / "images")
    subset = [
        train[i] for i in np.random.default_rng(0).permutation(len(train))[: setup.train_subset]
    ]
    configs = _configs(setup.pool, setup.epochs)
    counts, train_h = [], []
    started = time.perf_counter()
    for i, params in enumerate(configs):
        done = cache / "trials" / f"{i}.npz"  # one file a trial: an interrupted build resumes
        if done.exists():
            saved = np.load(done)
            c, h = saved["counts"], saved["train_hmean"]
        else:
            c, h = _train_trial(
                params, start, data, evaluation, subset, cache / "trials" / f"{i}", setup.epochs
            )
            np.savez_compressed(done, counts=c, train_hmean=h)
        counts.append(c)
        train_h.append(h)
        print(
            f"trial {i + 1}/{len(configs)}: lr {params['lr']:.2e} wd {params['weight_decay']:.1e} "
            f"T_max {params['T_max']}: eval-set H by epoch "
            + " ".join(f"{hmean_from_counts(e.sum(axis=0)):.3f}" for e in c)
            + f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    np.savez_compressed(
        path, counts=np.stack(counts), train_hmean=np.stack(train_h), configs=json.dumps(configs)
    )
    return np.stack(counts), np.stack(train_h), configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small pool: a check of the pipeline")
    parser.add_argument(
        "--cache", type=Path, default=Path("runs/selection"), help="data, starting point, pool"
    )
    args = parser.parse_args()
    setup = QUICK if args.quick else FULL
    torch.manual_seed(0)
    print(f"machine: {describe(f'torch {torch.__version__}')}")
    started = time.perf_counter()
    counts, train_hmean, _ = _pool(args.cache / ("quick" if args.quick else "full"), setup)
    built = time.perf_counter() - started
    n_val, n_hold, n_test = setup.sizes
    print(
        f"pool: {counts.shape[0]} trials x {counts.shape[1]} epochs, {counts.shape[2]} evaluation "
        f"images ({built:.0f} s to build or load); draws: {setup.draws}, K = {setup.k} trials, "
        f"val / holdout / test = {n_val} / {n_hold} / {n_test} images"
    )
    summaries = simulate(
        counts,
        RULES,
        sizes=setup.sizes,
        k=setup.k,
        draws=setup.draws,
        seed=1,
        train_hmean=train_hmean,
    )
    print(
        "\n| rule | mean test H | regret | regret - val's (95%) | beats or ties val | Kendall tau |"
    )
    print("|---|---|---|---|---|---|")
    for s in sorted(summaries, key=lambda s: -s.mean_test):
        low, high = (100 * x for x in s.regret_vs_val)
        print(
            f"| {s.label} | {100 * s.mean_test:.2f} | {100 * s.mean_regret:.2f} | "
            f"{low:+.2f} .. {high:+.2f} | {100 * s.beats_or_ties_val:.0f}% | "
            f"{s.kendall_tau:.3f} |"
        )


if __name__ == "__main__":
    main()
