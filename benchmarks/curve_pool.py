"""One pool of complete learning curves, shared by the selection and pruning benchmarks.

Shaped like the production sweep (``studies/receipts_dbnet.yaml``) scaled down to a CPU:

1. Data like the team's: synthetic receipts (trainer_core.data.synthetic, style "receipt"):
   a pretraining set, a training set, and an evaluation set that is never trained on.
2. A starting point, made once: a DBNet trained on the pretraining set (the stand-in for
   ImageNet weights; every pool config fine-tunes it through ``model.init_checkpoint``, as
   the demo does).
3. P configs drawn from the receipts space scaled to E epochs (lr and eta_min over the same
   log ranges shifted to this model, weight decay as in the spec, ``T_max`` from 0.8 E to
   1.1 E as 18..24 is to 22), each trained to its last epoch with the real ``fit``, never
   stopped. After every epoch its weights are scored on every evaluation image (per-image
   counts of cared GT, cared predictions and matches, so val / holdout / test can be drawn
   per simulated sweep) and on a fixed subset of its training images (the train-gap rule).

Each config is kept as its own file the moment it finishes (``trials/NNN.npz``), so a crash
or the end of a session loses at most one config and a re-run resumes; :func:`load_pool`
reads whatever has finished. Build the full pool in the background with

    nohup uv run python benchmarks/curve_pool.py --cache /work/cache/curve_pool > build.log &
    uv run python benchmarks/curve_pool.py --quick      # a tiny pool in seconds (tests)
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from sweeper.rank import hmean_from_counts
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
class PoolSetup:
    """Sizes of one pool: what it trains and what it scores on."""

    configs: int
    epochs: int
    pretrain_images: int
    pretrain_epochs: int
    train_images: int
    eval_images: int
    train_subset: int
    seed: int = 0


FULL = PoolSetup(
    configs=48,
    epochs=12,
    pretrain_images=96,
    pretrain_epochs=30,
    train_images=36,
    eval_images=120,
    train_subset=8,
)
QUICK = PoolSetup(
    configs=4,
    epochs=3,
    pretrain_images=16,
    pretrain_epochs=2,
    train_images=12,
    eval_images=18,
    train_subset=4,
)
PAGE = (192, 96)  # tall receipt pages, (height, width)
TEXT_HEIGHT = (12.0, 18.0)  # pixels: 8-12 px at the 128 px input


@dataclass(frozen=True)
class CurvePool:
    """Complete learning curves: every config scored on every evaluation image every epoch."""

    counts: np.ndarray
    """``(configs, epochs, images, 3)`` cared GT, cared predictions, matches."""
    train_hmean: np.ndarray
    """``(configs, epochs)`` H-mean on a fixed subset of each config's training images."""
    configs: list[dict[str, float]]
    """The sampled parameters (lr, weight_decay, T_max, eta_min) of each config."""
    epochs: int

    def hmean(self, images: np.ndarray) -> np.ndarray:
        """``(configs, epochs)`` dataset H-mean on the evaluation images ``images``."""
        return hmean_from_counts(self.counts[:, :, images].sum(axis=2))


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


def _data(cache: Path, setup: PoolSetup) -> dict[str, Path]:
    """The three receipt sets, generated once per size."""
    sets = {
        "pretrain": (setup.pretrain_images, 100),
        "train": (setup.train_images, 200),
        "eval": (setup.eval_images, 300),
    }
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


def _pretrained(cache: Path, data: dict[str, Path], setup: PoolSetup) -> Path:
    """The starting point every config fine-tunes, trained once and kept."""
    out = cache / f"pretrained-{setup.pretrain_images}-{setup.pretrain_epochs}"
    if not (out / "best.pt").exists():
        cfg = _base(data["pretrain"], out, setup.pretrain_epochs)
        cfg |= {"optimizer": {"lr": 4e-3}, "scheduler": {"eta_min": 1e-5}, "eval_every": 5}
        result = fit(TrainConfig.model_validate(cfg))
        print(f"pretrained: val H-mean {result.best.hmean:.3f} after {result.epochs_run} epochs")
    return out / "best.pt"


def draw_configs(n: int, epochs: int, seed: int = 0) -> list[dict[str, float]]:
    """``n`` configs from the receipts space scaled to ``epochs`` (log-uniform where log).

    The receipts spec searches lr 1e-4..1e-3 and eta_min 1e-6..5e-5 for an EfficientNet-B4
    at batch 8; this resnet10t (its starting point trained at lr 4e-3) fine-tunes at about
    three times higher lrs, so both ranges move up by 3x and keep their widths: the top
    first knocks the starting point down and climbs back, the bottom barely moves it.
    Weight decay is the spec's range. ``T_max`` spans 0.8..1.1 of the epochs, as 18..24
    does of 22: some cosines finish early and climb again, some are still above
    ``eta_min`` at the last epoch.
    """
    rng = np.random.default_rng(seed)

    def log_uniform(low: float, high: float) -> float:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))

    low, high = round(0.8 * epochs), round(1.1 * epochs)
    return [
        {
            "lr": log_uniform(3e-4, 3e-3),
            "weight_decay": log_uniform(1e-5, 3e-4),
            "T_max": int(rng.integers(low, high + 1)),
            "eta_min": log_uniform(3e-6, 1.5e-4),
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


def _train_config(
    params: dict[str, float],
    start: Path,
    data: dict[str, Path],
    evaluation: list[Sample],
    train_subset: list[Sample],
    out: Path,
    epochs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune one config to its last epoch; (epochs, images, 3) counts, (epochs,) train H."""
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

    result = fit(cfg, on_epoch_end=on_epoch_end)
    if len(per_epoch) != epochs:
        raise RuntimeError(f"config {params} stopped after {len(per_epoch)} epochs: {result}")
    return np.stack(per_epoch), np.array(train_h)


def _check_setup(folder: Path, setup: PoolSetup) -> None:
    """A pool folder holds one setup: refuse to mix another into it."""
    path = folder / "setup.json"
    if path.exists():
        kept = json.loads(path.read_text())
        if kept != asdict(setup):
            raise SystemExit(f"{path}: built with {kept}, not {asdict(setup)}; use another --cache")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(setup), indent=1))


def build_pool(folder: Path, setup: PoolSetup, limit: int | None = None) -> CurvePool:
    """Train every config not yet in ``folder`` (at most ``limit`` of them) and load the pool."""
    _check_setup(folder, setup)
    torch.set_num_threads(1)
    data = _data(folder, setup)
    start = _pretrained(folder, data, setup)
    evaluation = read_ufo(data["eval"], data["eval"].parent / "images")
    train = read_ufo(data["train"], data["train"].parent / "images")
    order = np.random.default_rng(setup.seed).permutation(len(train))
    subset = [train[i] for i in order[: setup.train_subset]]
    configs = draw_configs(setup.configs, setup.epochs, setup.seed)
    trained, started = 0, time.perf_counter()
    for i, params in enumerate(configs):
        done = folder / "trials" / f"{i:03d}.npz"
        if done.exists():
            continue
        if limit is not None and trained >= limit:
            break
        out = folder / "trials" / f"{i:03d}"
        counts, train_h = _train_config(params, start, data, evaluation, subset, out, setup.epochs)
        partial = done.with_suffix(".part.npz")
        np.savez_compressed(partial, counts=counts, train_hmean=train_h, params=json.dumps(params))
        partial.rename(done)  # a config is in the pool whole or not at all
        shutil.rmtree(out, ignore_errors=True)
        trained += 1
        curve = " ".join(f"{hmean_from_counts(e.sum(axis=0)):.3f}" for e in counts)
        print(
            f"config {i + 1}/{len(configs)}: lr {params['lr']:.2e} "
            f"wd {params['weight_decay']:.1e} T_max {params['T_max']} "
            f"eta_min {params['eta_min']:.1e}: H by epoch {curve} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return load_pool(folder)


def load_pool(folder: Path) -> CurvePool:
    """The configs that finished in ``folder``, in their drawing order.

    Raises:
        FileNotFoundError: no finished config there.
    """
    files = sorted((folder / "trials").glob("[0-9][0-9][0-9].npz"))
    if not files:
        raise FileNotFoundError(f"{folder}: no finished config; build: benchmarks/curve_pool.py")
    setup = json.loads((folder / "setup.json").read_text())
    counts, train_h, configs = [], [], []
    for f in files:
        with np.load(f) as saved:
            counts.append(saved["counts"])
            train_h.append(saved["train_hmean"])
            configs.append(json.loads(str(saved["params"])))
    return CurvePool(np.stack(counts), np.stack(train_h), configs, setup["epochs"])


def pool_folder(cache: Path, quick: bool) -> Path:
    """Where the quick or the full pool lives under ``cache``."""
    return cache / ("quick" if quick else "full")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny pool: a check, in seconds")
    parser.add_argument("--cache", type=Path, default=Path("runs/curve_pool"))
    parser.add_argument("--limit", type=int, help="train at most this many configs (timing)")
    args = parser.parse_args()
    setup = QUICK if args.quick else FULL
    torch.manual_seed(0)
    started = time.perf_counter()
    pool = build_pool(pool_folder(args.cache, args.quick), setup, args.limit)
    print(
        f"pool: {len(pool.configs)} of {setup.configs} configs x {pool.epochs} epochs, "
        f"{pool.counts.shape[2]} evaluation images ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
