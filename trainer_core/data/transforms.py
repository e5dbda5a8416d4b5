"""Image + polygon pipelines (albumentations 2, polygons carried as keypoints).

Training: longest side to the input size, random scale and rotation (the canvas grows so no
corner is cut), then with probability ``crop_p`` an input-size crop around a legible text box
(``AtLeastOneBBoxRandomCrop`` on the polygons' boxes), colour jitter, and finally longest side
to the input size and zero padding on the right and bottom. Evaluation: longest side to the
input size and the same padding, nothing random; ``original = mapped / scale`` takes
predictions back.

Polygons leave albumentations as keypoints, are regrouped, and are clipped to the image (a
polygon partly outside keeps its inside part; one entirely outside is dropped with its ignore
flag).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import shapely

from trainer_core.config import TrainConfig

__all__ = ["EvalTransform", "TrainTransform", "Transformed", "eval_transform", "train_transform"]

# A clipped polygon smaller than this (px²) is dropped: nothing left to learn from.
_MIN_AREA = 1.0


@dataclass(frozen=True)
class Transformed:
    """An image at the network's input size and its polygons in that image's pixels."""

    image: np.ndarray  # (S, S, 3) uint8
    polygons: tuple[np.ndarray, ...]  # (N, 2) float32 each
    ignore: tuple[bool, ...]
    scale: float = 1.0  # evaluation: original coordinates = these / scale


class TrainTransform:
    """Random training augmentation; see the module docstring for the steps."""

    def __init__(self, cfg: TrainConfig) -> None:
        size, aug = cfg.input_size, cfg.augment
        steps: list[A.BasicTransform] = [A.LongestMaxSize(max_size=size)]
        if aug.enabled:
            steps.append(
                A.Affine(
                    scale=aug.scale,
                    rotate=(-aug.rotate, aug.rotate),
                    keep_ratio=True,
                    fit_output=True,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    p=1.0,
                )
            )
            if aug.crop_p > 0:
                steps += [
                    _pad(size),
                    A.AtLeastOneBBoxRandomCrop(height=size, width=size, p=aug.crop_p),
                ]
            if aug.color_jitter > 0:
                j = aug.color_jitter
                steps.append(
                    A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=j / 4, p=0.8)
                )
        steps += [A.LongestMaxSize(max_size=size), _pad(size)]
        self.size = size
        self.compose = A.Compose(
            steps,
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
            # Boxes only steer the crop towards legible text; polygons travel as keypoints.
            bbox_params=A.BboxParams(format="pascal_voc", clip=True, filter_invalid_bboxes=True),
            seed=cfg.seed,
        )

    def set_seed(self, seed: int) -> None:
        """Restart the random stream (data-loader workers each take their own)."""
        self.compose.set_random_seed(seed)

    def __call__(
        self, image: np.ndarray, polygons: Sequence[np.ndarray], ignore: Sequence[bool]
    ) -> Transformed:
        """Augment an RGB uint8 image and its polygons."""
        points, lengths = _flatten(polygons)
        legible = [p for p, skip in zip(polygons, ignore, strict=True) if not skip]
        boxes = np.array([[*p.min(axis=0), *p.max(axis=0)] for p in legible], np.float32).reshape(
            -1, 4
        )
        height, width = image.shape[:2]
        boxes = np.clip(boxes, 0, [width, height, width, height])
        out = self.compose(image=image, keypoints=points, bboxes=boxes)
        kept, flags = _clip(_regroup(out["keypoints"], lengths), ignore, self.size)
        return Transformed(out["image"], kept, flags)


class EvalTransform:
    """Longest side to ``input_size``, pad right and bottom; invertible by ``/ scale``."""

    def __init__(self, input_size: int) -> None:
        self.size = input_size
        self.compose = A.Compose(
            [A.LongestMaxSize(max_size=input_size), _pad(input_size)],
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        )

    def __call__(
        self,
        image: np.ndarray,
        polygons: Sequence[np.ndarray] = (),
        ignore: Sequence[bool] = (),
    ) -> Transformed:
        """Resize and pad an RGB uint8 image; polygons (optional) are mapped along."""
        points, lengths = _flatten(polygons)
        out = self.compose(image=image, keypoints=points)
        scale = self.size / max(image.shape[:2])
        mapped = _regroup(out["keypoints"], lengths)
        return Transformed(out["image"], mapped, tuple(bool(f) for f in ignore), scale)


def train_transform(cfg: TrainConfig) -> TrainTransform:
    """The training augmentation for ``cfg`` (seeded with ``cfg.seed``).

    Example:
        >>> t = train_transform(TrainConfig(input_size=64))
        >>> box = np.array([[5, 5], [60, 5], [60, 20], [5, 20]], np.float32)
        >>> t(np.zeros((100, 80, 3), np.uint8), [box], [False]).image.shape
        (64, 64, 3)
    """
    return TrainTransform(cfg)


def eval_transform(input_size: int) -> EvalTransform:
    """The evaluation transform: resize and pad to ``input_size``; ``original = pred / scale``.

    Example:
        >>> out = eval_transform(64)(np.zeros((100, 80, 3), np.uint8))
        >>> out.image.shape, out.scale
        ((64, 64, 3), 0.64)
    """
    return EvalTransform(input_size)


def _pad(size: int) -> A.PadIfNeeded:
    return A.PadIfNeeded(
        min_height=size,
        min_width=size,
        position="top_left",
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
    )


def _flatten(polygons: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    lengths = [len(p) for p in polygons]
    if not polygons:
        return np.zeros((0, 2), np.float32), lengths
    return np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in polygons]), lengths


def _regroup(points: np.ndarray, lengths: list[int]) -> tuple[np.ndarray, ...]:
    points = np.asarray(points, np.float32).reshape(-1, 2)
    ends = np.cumsum(lengths).tolist()
    return tuple(points[end - n : end] for n, end in zip(lengths, ends, strict=True))


def _clip(
    polygons: Sequence[np.ndarray], ignore: Sequence[bool], size: int
) -> tuple[tuple[np.ndarray, ...], tuple[bool, ...]]:
    """Polygons cut to the ``size`` x ``size`` image; those with nothing left are dropped."""
    kept, flags = [], []
    limit = size - 1
    for polygon, flag in zip(polygons, ignore, strict=True):
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        if (hi < 0).any() or (lo > limit).any():
            continue
        if (lo >= 0).all() and (hi <= limit).all():
            kept.append(polygon)
            flags.append(bool(flag))
            continue
        part = shapely.clip_by_rect(shapely.Polygon(polygon).buffer(0), 0, 0, limit, limit)
        pieces = getattr(part, "geoms", [part])
        areas = [g.area if isinstance(g, shapely.Polygon) else 0.0 for g in pieces]
        if not areas or max(areas) < _MIN_AREA:
            continue
        best = pieces[int(np.argmax(areas))]
        kept.append(np.asarray(best.exterior.coords, np.float32)[:-1])
        flags.append(bool(flag))
    return tuple(kept), tuple(flags)
