"""Pictures a person looks at in the dashboard: detections drawn on images, learning curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from trainer_core.data import Sample, load_image
from trainer_core.fit import EpochRecord

matplotlib.use("Agg")  # no display on GPU nodes
import matplotlib.pyplot as plt

GT_COLOR = (40, 200, 40)  # green, RGB
PRED_COLOR = (230, 40, 40)  # red, RGB
_TILE_HEIGHT = 480


def _tile(sample: Sample, predictions: Sequence[np.ndarray]) -> np.ndarray:
    """One image with ground truth (don't-care dashed thin) and predictions drawn."""
    image = load_image(sample.image).copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for polygon, ignore in zip(sample.polygons, sample.ignore, strict=True):
        pts = np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], True, GT_COLOR, 1 if ignore else thickness + 1)
    for polygon in predictions:
        pts = np.round(polygon).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], True, PRED_COLOR, thickness)
    scale = _TILE_HEIGHT / image.shape[0]
    return cv2.resize(image, (max(1, round(image.shape[1] * scale)), _TILE_HEIGHT))


def detections_png(
    samples: Sequence[Sample],
    predictions: Sequence[Sequence[np.ndarray]],
    path: Path,
    max_images: int = 4,
) -> Path:
    """Write the first ``max_images`` images side by side: ground truth green, predictions red."""
    tiles = [_tile(s, p) for s, p in zip(samples[:max_images], predictions, strict=False)]
    gap = np.full((_TILE_HEIGHT, 8, 3), 255, np.uint8)
    row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
    return path


def learning_curve_png(history: Sequence[EpochRecord], path: Path, title: str = "") -> Path:
    """Val precision, recall and H-mean per epoch, with the lr on a second axis."""
    evaluated = [r for r in history if r.hmean is not None]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for key, style in (("precision", ":"), ("recall", "--"), ("hmean", "-")):
        ax.plot(
            [r.epoch for r in evaluated], [getattr(r, key) for r in evaluated], style, label=key
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    lr_ax = ax.twinx()
    lr_ax.plot([r.epoch for r in history], [r.lr for r in history], color="gray", alpha=0.6)
    lr_ax.set_ylabel("lr", color="gray")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
