"""Detections on a folder of images, in the original images' pixels, by one model or several.

An :class:`Ensemble` averages its members' probability maps per image before the
post-processing runs once (the DBNet way to ensemble: one set of boxes, no box voting); an
ensemble of one is that model. Each member sees the image as the sweep's evaluation showed
it (:func:`~trainer_core.data.transforms.eval_transform` at its own input size, under the
autocast its config trains with); the part of each map that covers the image is brought to
the largest member's resolution, averaged, post-processed, and the polygons are taken back
through :class:`~trainer_core.data.letterbox.Letterbox` to the upright image
(:func:`~trainer_core.data.image_files.read_upright`) or, for scoring against annotations,
to the stored pixel grid the annotation readers use.

An image that cannot be read is named in one warning and skipped; the run goes on.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import ModelConfig, PostprocessConfig, TrainConfig
from trainer_core.data import Sample, eval_transform
from trainer_core.data.dataset import to_tensor
from trainer_core.data.image_files import UnreadableImage, UprightImage, read_upright
from trainer_core.data.letterbox import Letterbox
from trainer_core.engine import autocast_context
from trainer_core.errors import ConfigError, DataError
from trainer_core.metrics import DetectionMetrics, detection_metrics
from trainer_core.model import build_model
from trainer_core.postprocess import polygons_from_prob, postprocess_config_kwargs
from trainer_core.precision import Precision, resolve_precision

__all__ = [
    "Ensemble",
    "Member",
    "Predictions",
    "bare_model",
    "evaluate_samples",
    "load_member",
    "predict_images",
]

log = logging.getLogger(__name__)

Frame = Literal["upright", "stored"]
ImageFn = Callable[[Path, bool], None]
"""Called once per image with its path and whether it was read (progress bars)."""


def bare_model(cfg: ModelConfig, weights: dict[str, Any]) -> nn.Module:
    """The DBNet ``cfg`` describes with ``weights`` put in (no starting-point files read)."""
    bare = cfg.model_copy(update={"pretrained": False, "weights": None, "init_checkpoint": None})
    model = build_model(bare)
    model.load_state_dict(weights)
    return model


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: a module whose eval ``forward`` returns ``{"prob": (B, S,
    S)}``, the square input size it was trained at, and the precision it trained with."""

    model: nn.Module
    input_size: int
    precision: str = "auto"
    source: str = ""


def load_member(checkpoint: Path) -> tuple[Member, TrainConfig]:
    """A ``best.pt``/``last.pt`` of a trial or ``sweeper train`` as an ensemble member, with
    the config it was trained with (stored in the checkpoint).

    Raises:
        DataError: the file is missing, not a checkpoint, or holds no usable config.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"{checkpoint}: no such checkpoint file")
    try:
        state = load_checkpoint(checkpoint)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise DataError(f"{checkpoint}: not a readable checkpoint ({e})") from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise DataError(
            f"{checkpoint}: holds no 'model' and 'config'; expected a best.pt or last.pt "
            "written by sweeper train or a trial"
        )
    try:
        cfg = TrainConfig.model_validate_json(state["config"])
    except ValidationError as e:
        raise DataError(f"{checkpoint}: its stored config does not validate ({e})") from e
    try:
        model = bare_model(cfg.model, state["model"])
    except RuntimeError as e:
        raise DataError(f"{checkpoint}: weights do not fit its model config ({e})") from e
    return Member(model, cfg.input_size, cfg.precision, str(checkpoint)), cfg


def _precision(name: str, device: torch.device) -> Precision:
    """The member's training precision where this device has it, else what ``auto`` picks
    (an fp16 model run on the CPU runs in fp32)."""
    try:
        return resolve_precision(name, device)
    except ConfigError:
        return resolve_precision("auto", device)


class Ensemble:
    """Members whose probability maps are averaged per image.

    Args:
        members: at least one.
        device: where they run; each member runs under its own precision on it.

    Example:
        >>> member, cfg = load_member(Path("runs/train/best.pt"))  # doctest: +SKIP
        >>> ensemble = Ensemble([member], torch.device("cpu"))  # doctest: +SKIP
        >>> paths = list_images(Path("test"))  # doctest: +SKIP
        >>> run = predict_images(ensemble, paths, cfg.postprocess)  # doctest: +SKIP
    """

    def __init__(self, members: Sequence[Member], device: torch.device) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.device = device
        self.size = max(m.input_size for m in self.members)
        self._precisions = [_precision(m.precision, device) for m in self.members]
        for member in self.members:
            member.model.to(device).eval()
            if device.type == "cuda":
                member.model.to(memory_format=torch.channels_last)

    def __len__(self) -> int:
        return len(self.members)

    @torch.inference_mode()
    def prob_maps(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, Letterbox]]:
        """Per RGB image, the members' mean probability over the image (padding cut off) at
        the largest member's resolution, and the letterbox that takes it back."""
        boxes = [Letterbox(self.size, *image.shape[:2]) for image in images]
        sums = [np.zeros(box.new_hw, np.float32) for box in boxes]
        for member, precision in zip(self.members, self._precisions, strict=True):
            transform = eval_transform(member.input_size)
            batch = torch.stack([to_tensor(transform(image).image) for image in images])
            batch = batch.to(self.device, non_blocking=True)
            if self.device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            with autocast_context(self.device, precision):
                probs = member.model(batch)["prob"]
            probs = probs.float().cpu().numpy()
            for k, (image, box) in enumerate(zip(images, boxes, strict=True)):
                own = Letterbox(member.input_size, *image.shape[:2])
                prob = own.crop(probs[k])
                if own.new_hw != box.new_hw:
                    prob = cv2.resize(prob, box.new_hw[::-1], interpolation=cv2.INTER_LINEAR)
                sums[k] += prob
        return [(total / len(self.members), box) for total, box in zip(sums, boxes, strict=True)]


@dataclass
class Predictions:
    """Polygons per input image (None where the image was skipped) and what was skipped."""

    paths: list[Path]
    polygons: list[list[np.ndarray] | None]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_done(self) -> int:
        return sum(p is not None for p in self.polygons)

    @property
    def images_per_s(self) -> float:
        return self.n_done / self.seconds if self.seconds > 0 else 0.0

    def by_name(self, root: Path | None = None) -> dict[str, list[np.ndarray]]:
        """The read images' polygons by file name (relative to ``root`` when given), in
        input order: what the writers take."""
        out = {}
        for path, polygons in zip(self.paths, self.polygons, strict=True):
            if polygons is not None:
                name = path.relative_to(root).as_posix() if root is not None else path.name
                out[name] = polygons
        return out


def _read(paths: Sequence[Path], skipped: list[tuple[Path, str]]) -> list[UprightImage | None]:
    images: list[UprightImage | None] = []
    for path in paths:
        try:
            images.append(read_upright(path))
        except UnreadableImage as e:
            log.warning("%s; skipped", e)
            skipped.append((path, str(e)))
            images.append(None)
    return images


def _polygons(
    prob: np.ndarray, box: Letterbox, image: UprightImage, kwargs: dict[str, Any], frame: Frame
) -> list[np.ndarray]:
    polygons, _ = polygons_from_prob(prob, **kwargs)
    out = [box.to_original(p) for p in polygons]
    if frame == "stored":
        out = [image.orientation.to_stored(p) for p in out]
    return out


def predict_images(
    ensemble: Ensemble,
    paths: Sequence[Path],
    post: PostprocessConfig,
    *,
    batch_size: int = 1,
    frame: Frame = "upright",
    on_image: ImageFn | None = None,
) -> Predictions:
    """Detect text on every image of ``paths``, in order.

    Args:
        ensemble: the model(s).
        paths: image files (:func:`~trainer_core.data.image_files.list_images` lists a folder).
        post: the post-processing, applied once to each averaged map.
        batch_size: images per forward pass.
        frame: ``"upright"``: coordinates in the image as viewers show it (EXIF orientation
            applied); ``"stored"``: in the stored pixel grid, as the annotation readers
            measure.
        on_image: progress callback.

    Returns:
        :class:`Predictions`; an unreadable image is warned about, listed in ``skipped``
        and has None.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    kwargs = postprocess_config_kwargs(post)
    run = Predictions(list(paths), [])
    start = time.perf_counter()
    for first in range(0, len(run.paths), batch_size):
        chunk = run.paths[first : first + batch_size]
        images = _read(chunk, run.skipped)
        readable = [image for image in images if image is not None]
        maps: Iterator[tuple[np.ndarray, Letterbox]] = iter(
            ensemble.prob_maps([image.pixels for image in readable]) if readable else []
        )
        for path, image in zip(chunk, images, strict=True):
            if image is None:
                run.polygons.append(None)
            else:
                prob, box = next(maps)
                run.polygons.append(_polygons(prob, box, image, kwargs, frame))
            if on_image is not None:
                on_image(path, image is not None)
    run.seconds = time.perf_counter() - start
    return run


def evaluate_samples(
    ensemble: Ensemble,
    samples: Sequence[Sample],
    post: PostprocessConfig,
    *,
    average: Literal["dataset", "image"] = "dataset",
    batch_size: int = 1,
    on_image: ImageFn | None = None,
) -> tuple[DetectionMetrics, Predictions]:
    """Precision, recall and H-mean of ``ensemble`` on annotated samples, scored in the
    annotations' pixel grid as the sweep scores its splits; a sample whose image cannot be
    decoded counts as one with no detections."""
    run = predict_images(
        ensemble,
        [s.image for s in samples],
        post,
        batch_size=batch_size,
        frame="stored",
        on_image=on_image,
    )
    metrics = detection_metrics(
        [list(s.polygons) for s in samples],
        [list(s.ignore) for s in samples],
        [p if p is not None else [] for p in run.polygons],
        average=average,
    )
    return metrics, run
