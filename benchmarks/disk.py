"""What a trial costs on disk, before and after the checkpoint retention.

``uv run python benchmarks/disk.py [--backbone resnet18]``

One real one-epoch ``fit`` (64 px synthetic images, CPU) writes ``last.pt`` and ``best.pt``
exactly as a trial does; printed are their sizes against the model's fp32 weights
(parameters and buffers) and, for a sweep like the demo's, the total before (every trial
keeps both files) and after (a completed trial keeps best.pt; ``keep_pruned`` pruned trials
keep both, the other pruned nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe

from sweeper.define import RetentionSpec
from trainer_core.config import TrainConfig
from trainer_core.data.synthetic import generate
from trainer_core.fit import fit
from trainer_core.model import build_model


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--completed", type=int, default=6, help="completed trials in the sweep")
    parser.add_argument("--pruned", type=int, default=8, help="pruned trials in the sweep")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("machine:", describe(f"torch {torch.__version__}"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        annotations = generate(root / "data", n_images=6, size=(64, 64), seed=0)
        cfg = TrainConfig.model_validate(
            {
                "model": {"backbone": args.backbone},
                "data": {
                    "image_root": str(annotations.parent / "images"),
                    "annotations": str(annotations),
                },
                "augment": {"enabled": False},
                "input_size": 64,
                "batch_size": 4,
                "epochs": 1,
                "precision": "fp32",
                "device": "cpu",
                "output_dir": str(root / "run"),
            }
        )
        result = fit(cfg)
        last, best = result.last_checkpoint.stat().st_size, result.best_checkpoint.stat().st_size
    state = build_model(cfg.model).state_dict()
    weights = sum(t.numel() * 4 for t in state.values() if t.is_floating_point())
    params = sum(t.numel() for t in build_model(cfg.model).parameters())
    print(
        f"{args.backbone} DBNet, {params / 1e6:.1f}M parameters: fp32 weights {_mb(weights)}; "
        f"last.pt {_mb(last)} ({last / weights:.2f}x), best.pt {_mb(best)} ({best / weights:.3f}x)"
    )
    keep = RetentionSpec().keep_pruned
    n = args.completed + args.pruned
    before = n * (last + best)
    after = args.completed * best + min(keep, args.pruned) * (last + best)
    print(
        f"a sweep of {args.completed} completed + {args.pruned} pruned trials: "
        f"{_mb(before)} before, {_mb(after)} after (keep_pruned {keep}); a finished trial "
        f"{(last + best) / weights:.2f}x -> {best / weights:.3f}x its fp32 weights"
    )


if __name__ == "__main__":
    main()
