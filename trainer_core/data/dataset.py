"""The torch dataset: image -> augmentation -> normalized tensor and DB target maps."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from trainer_core.config import TrainConfig
from trainer_core.data.annotations import Sample
from trainer_core.data.targets import db_targets
from trainer_core.data.transforms import (
    EvalTransform,
    TrainTransform,
    eval_transform,
    train_transform,
)
from trainer_core.errors import DataError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DetectionDataset",
    "load_image",
    "seed_worker",
    "to_tensor",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
# (pixel - 255 mean) / (255 std) in one multiply-add per channel.
_SCALE = 1.0 / (255.0 * IMAGENET_STD)
_SHIFT = -IMAGENET_MEAN / IMAGENET_STD


def load_image(path: Path) -> np.ndarray:
    """An image as RGB uint8 (H, W, 3), pixels as stored (EXIF orientation ignored, as the
    annotation readers measure it).

    Raises:
        DataError: the file is missing or not a readable image.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DataError(f"{path}: cannot read the image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: seed numpy and ``random`` from the worker's torch seed.

    torch gives each worker ``base_seed + worker_id``; without this, forked workers would all
    continue the parent's numpy and ``random`` streams. (Augmentation does not use them:
    :class:`DetectionDataset` seeds it per item.)
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class DetectionDataset(Dataset):
    """Samples as network inputs at ``cfg.input_size`` x ``cfg.input_size``.

    Training items: ``image`` (3, S, S) float32 normalized with the ImageNet mean and std, and
    ``prob``, ``prob_mask``, ``thresh``, ``thresh_mask`` (S, S) float32 (see
    :func:`~trainer_core.data.targets.db_targets`). Evaluation items: ``image``, ``scale``
    (float; ``original = prediction / scale``) and ``index`` (int); the ground truth stays in
    ``dataset.samples[index]`` in original image coordinates. The default collate batches
    both.

    A training item's augmentation is drawn from ``(cfg.seed, epoch, index)`` alone (see
    :meth:`set_epoch`): the same whatever the number of workers or the order items are read
    in, so a resumed run sees exactly the batches the uninterrupted one would have.

    Example:
        >>> ds = DetectionDataset(make_splits(cfg.data).train, cfg, train=True)  # doctest: +SKIP
        >>> ds[0]["prob"].shape  # doctest: +SKIP
        torch.Size([640, 640])
    """

    def __init__(self, samples: list[Sample], cfg: TrainConfig, train: bool) -> None:
        self.samples = list(samples)
        self.cfg = cfg
        self.train = train
        self.transform: TrainTransform | EvalTransform = (
            train_transform(cfg) if train else eval_transform(cfg.input_size)
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's augmentations (call before iterating; workers copy it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | float | int]:
        sample = self.samples[index]
        image = load_image(sample.image)
        if not isinstance(self.transform, TrainTransform):
            out = self.transform(image)
            return {"image": to_tensor(out.image), "scale": out.scale, "index": index}
        seed = np.random.SeedSequence([self.cfg.seed, self.epoch, index]).generate_state(1)[0]
        self.transform.set_seed(int(seed))
        out = self.transform(image, sample.polygons, sample.ignore)
        t = self.cfg.targets
        maps = db_targets(
            out.image.shape[:2],
            out.polygons,
            out.ignore,
            shrink_ratio=t.shrink_ratio,
            thresh_min=t.thresh_min,
            thresh_max=t.thresh_max,
            min_text_size=t.min_text_size,
        )
        names = ("prob", "prob_mask", "thresh", "thresh_mask")
        item: dict[str, torch.Tensor | float | int] = {"image": to_tensor(out.image)}
        item.update({name: torch.from_numpy(m) for name, m in zip(names, maps, strict=True)})
        return item


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> normalized float32 (3, H, W)."""
    normalized = image.astype(np.float32) * _SCALE + _SHIFT
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))
