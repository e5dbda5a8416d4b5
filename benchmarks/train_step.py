"""Training-step and data-loading throughput: does loading starve training?

``Trainer``, ``train_step_rate`` and ``loader_rate`` are also what ``gpu_check.py``
measures with.

1. Training step (forward, loss, backward, AdamW step) of DBNet-resnet18 at 640x640, for
   fp32 and each AMP mode the device has (fp16 with GradScaler and bf16 on CUDA; bf16 on
   the CPU), in images per second.
2. The training data loader alone (decode, augmentation, DB targets, collate) with 1, 2
   and 4 workers, in images per second, on synthetic 640 px images.

Usage: uv run python benchmarks/train_step.py [--batch 8] [--size 640] [--steps 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from machine import describe
from torch.utils.data import DataLoader

from trainer_core.config import TrainConfig
from trainer_core.data import DetectionDataset, Sample, make_splits, seed_worker
from trainer_core.data.synthetic import generate
from trainer_core.engine import EpochStats, autocast_context, train_one_epoch
from trainer_core.loss import DBLoss
from trainer_core.model import build_model
from trainer_core.optim import build_optimizer
from trainer_core.precision import resolve_precision


def _batch(cfg: TrainConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch with realistic targets: random text-like blocks."""
    n, s = cfg.batch_size, cfg.input_size
    gen = torch.Generator().manual_seed(0)
    prob = (torch.rand(n, s // 16, s // 16, generator=gen) > 0.85).float()
    prob = torch.nn.functional.interpolate(prob[:, None], size=(s, s))[:, 0]
    return {
        "image": torch.randn(n, 3, s, s, generator=gen).to(device),
        "prob": prob.to(device),
        "prob_mask": torch.ones(n, s, s, device=device),
        "thresh": (0.3 + 0.4 * torch.rand(n, s, s, generator=gen)).to(device),
        "thresh_mask": (prob > 0).float().to(device),
    }


@dataclass(frozen=True)
class StepRate:
    """Throughput of full optimizer steps, and the memory the model, optimizer and steps took."""

    images_per_s: float
    peak_memory_mb: float | None
    """CUDA max allocated from the model's build on; None on the CPU (no per-run figure)."""


class Trainer:
    """A DBNet with its loss, AdamW and GradScaler, set up as ``fit`` sets them up.

    ``channels_last`` None lays the model out as ``fit`` does: channels-last on CUDA only.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        device: torch.device,
        precision: str,
        channels_last: bool | None = None,
    ) -> None:
        self.cfg, self.device = cfg, device
        self.precision = resolve_precision(precision, device)
        self.model = build_model(cfg.model).to(device).train()
        if device.type == "cuda" if channels_last is None else channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss = DBLoss(cfg.loss)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.use_scaler)

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        """One full optimizer step on ``batch``."""
        with autocast_context(self.device, self.precision):
            out = self.model(batch["image"])
        loss, _ = self.loss(out, batch)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def loader(self, samples: list[Sample], workers: int) -> DataLoader:
        """Shuffled, augmented training batches with their DB targets, as ``fit`` loads
        them (workers started each epoch, pinned memory on CUDA)."""
        return DataLoader(
            DetectionDataset(samples, self.cfg, train=True),
            batch_size=self.cfg.batch_size,
            shuffle=True,
            num_workers=workers,
            worker_init_fn=seed_worker,
            pin_memory=self.device.type == "cuda",
        )

    def epoch(self, loader: Iterable[dict[str, torch.Tensor]]) -> EpochStats:
        """One epoch of ``fit``'s training loop over ``loader`` (anything with a length)."""
        return train_one_epoch(
            self.model,
            self.loss,
            loader,  # type: ignore[arg-type]
            self.optimizer,
            self.scaler,
            self.precision,
            self.device,
        )


def train_step_rate(
    cfg: TrainConfig,
    device: torch.device,
    precision: str,
    steps: int,
    channels_last: bool | None = None,
    warm_up: int = 2,
) -> StepRate:
    """Images per second of ``steps`` full optimizer steps after ``warm_up`` untimed ones,
    and the peak memory.

    ``channels_last`` None trains as ``fit`` does: channels-last on CUDA, not on the CPU.
    """
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(cfg, device, precision, channels_last)
    batch = _batch(cfg, device)
    for _ in range(warm_up):
        trainer.step(batch)
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(batch)
    if cuda:
        torch.cuda.synchronize(device)
    rate = steps * cfg.batch_size / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return StepRate(rate, peak)


def loader_rate(cfg: TrainConfig, workers: int, batches: int) -> float:
    """Images per second out of the training DataLoader (augmentation and targets on)."""
    samples = make_splits(cfg.data).train
    loader = DataLoader(
        DetectionDataset(samples, cfg, train=True),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=seed_worker,
        persistent_workers=True,
    )
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += next(it)["image"].shape[0]
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    print("machine: " + describe(gpu, f"torch {torch.__version__}"))
    with tempfile.TemporaryDirectory() as tmp:
        ann = generate(Path(tmp), n_images=48, size=(args.size, args.size), seed=0)
        cfg = TrainConfig.model_validate(
            {
                "model": {"backbone": args.backbone},
                "data": {"image_root": str(ann.parent / "images"), "annotations": str(ann)},
                "input_size": args.size,
                "batch_size": args.batch,
                "device": str(device),
            }
        )
        modes = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            modes.remove("bf16")
        print(f"train step, DBNet-{args.backbone}, {args.size}px, batch {args.batch}:")
        rates = {}
        for mode in modes:
            rates[mode] = train_step_rate(cfg, device, mode, args.steps).images_per_s
            ratio = rates[mode] / rates["fp32"]
            print(f"  {mode:<5} {rates[mode]:8.1f} images/s  ({ratio:.2f}x fp32)")
        print(f"train data loader, {args.size}px, batch {args.batch}, targets included:")
        for workers in args.workers:
            rate = loader_rate(cfg, workers, batches=12)
            print(f"  {workers} worker(s) {rate:8.1f} images/s")


if __name__ == "__main__":
    main()
