"""Probability maps like a half-trained DBNet's, made from ground truth without a network.

For tests and benchmarks of post-processing searches: the text kernels of the DB targets,
blurred and dimmed by a random amount per region, a few regions missed, false blobs and
smooth low-level noise added. The maps are at the evaluation input size, as the network's.
"""

from __future__ import annotations

import cv2
import numpy as np

from trainer_core.data.annotations import Sample
from trainer_core.data.dataset import load_image
from trainer_core.data.targets import db_targets
from trainer_core.data.transforms import eval_transform

__all__ = ["synthetic_prob_maps"]


def synthetic_prob_maps(
    samples: list[Sample], input_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) float16 maps and the (N,) scales back to the samples' coordinates.

    Example:
        >>> maps, scales = synthetic_prob_maps(make_splits(cfg.data).val, 640)  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    transform = eval_transform(input_size)
    maps = np.zeros((len(samples), input_size, input_size), np.float16)
    scales = np.zeros(len(samples), np.float64)
    for i, sample in enumerate(samples):
        out = transform(load_image(sample.image))
        scale = float(out.scale)
        prob = np.zeros((input_size, input_size), np.float32)
        for polygon, ignored in zip(sample.polygons, sample.ignore, strict=True):
            if rng.random() < 0.05:  # a miss
                continue
            kernel = db_targets(
                (input_size, input_size), [polygon * scale], [False], min_text_size=0
            )[0]
            strength = rng.uniform(0.35, 0.95) if not ignored else rng.uniform(0.1, 0.5)
            prob = np.maximum(prob, kernel * strength)
        for _ in range(rng.integers(0, 6)):  # false alarms
            x, y = rng.integers(0, input_size, 2)
            w, h = rng.integers(3, max(4, input_size // 8), 2)
            cv2.rectangle(
                prob, (int(x), int(y)), (int(x + w), int(y + h)), rng.uniform(0.2, 0.7), -1
            )
        prob += rng.normal(0.0, 0.04, prob.shape).astype(np.float32)  # smooth, as a network's
        prob = cv2.GaussianBlur(prob, (0, 0), sigmaX=max(0.8, input_size / 400))
        maps[i] = np.clip(prob, 0.0, 1.0)
        scales[i] = scale
    return maps, scales
