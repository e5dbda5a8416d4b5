"""Probability maps cached once, post-processing scored on them many times.

Tuning ``postprocess.thresh``, ``box_thresh``, ``unclip_ratio`` and ``max_candidates`` needs
no training and no GPU: the network's probability maps do not depend on them. One inference
pass over a split stores its maps (float16, compressed, with the ground truth) in one
``.npz`` file; :class:`MapScorer` then scores any post-processing setting on them.

Scoring is staged so a search pays for each piece of geometry once: contours, rectangles and
their scores depend on ``thresh`` alone, the expanded regions and their match candidates on
``(thresh, unclip_ratio)``; ``box_thresh`` and ``max_candidates`` only choose a subset of
those candidates, and matching a subset needs no new geometry
(:class:`~trainer_core.metrics.ImageMatches`). The figures equal running
:func:`~trainer_core.postprocess.polygons_from_prob` and
:func:`~trainer_core.metrics.detection_metrics` on the same maps.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from trainer_core.checkpoint import load_checkpoint
from trainer_core.config import PostprocessConfig, TrainConfig
from trainer_core.data import Sample, make_splits
from trainer_core.engine import prob_maps
from trainer_core.errors import DataError
from trainer_core.fit import eval_loader, gap_samples
from trainer_core.inference import bare_model
from trainer_core.metrics import (
    DetectionMetrics,
    ImageMatches,
    detection_metrics,
    image_matches,
    metrics_from_counts,
)
from trainer_core.postprocess import grow_quads, polygons_from_prob, scored_boxes
from trainer_core.precision import resolve_device, resolve_precision

__all__ = [
    "CACHE_NAME",
    "CachedMaps",
    "MapScorer",
    "ProbMaps",
    "cache_prob_maps",
    "load_prob_maps",
    "save_prob_maps",
]

log = logging.getLogger(__name__)

CACHE_NAME = "prob_maps.npz"
"""The cache's file name, beside the ``best.pt`` it was made from."""

CACHE_VERSION = 1

Average = Literal["dataset", "image"]


@dataclass(frozen=True)
class ProbMaps:
    """One split's probability maps with what scoring them needs.

    ``maps`` is (N, S, S) float16 at the network's input size, ``scales`` maps it back
    (``original = map coordinates / scale``), ``polygons`` and ``ignore`` are the ground
    truth in original coordinates.
    """

    maps: np.ndarray
    scales: np.ndarray
    polygons: list[list[np.ndarray]]
    ignore: list[list[bool]]

    def __len__(self) -> int:
        return len(self.maps)

    def prob(self, i: int) -> np.ndarray:
        """Map ``i`` as float32, what the post-processing reads."""
        return self.maps[i].astype(np.float32)


@dataclass(frozen=True)
class CachedMaps:
    """A checkpoint's maps on validation and on the gap split, and where they came from."""

    val: ProbMaps
    gap: ProbMaps
    gap_split: Literal["holdout", "train"]
    meta: dict[str, Any]
    path: Path
    reused: bool = False
    """True when the file was already there for this checkpoint (no inference ran)."""


def _fingerprint(path: Path) -> str:
    """sha256 of a checkpoint file: the cache belongs to exactly these weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(cfg: TrainConfig, checkpoint: Path) -> dict[str, Any]:
    """What the maps depend on: the weights, the input size and which images (the split)."""
    data = cfg.data.model_dump(mode="json", exclude={"image_root", "annotations"})
    return {
        "version": CACHE_VERSION,
        "checkpoint_sha256": _fingerprint(checkpoint),
        "input_size": cfg.input_size,
        "data": data,
    }


def _inference_model(cfg: TrainConfig, checkpoint: Path) -> torch.nn.Module:
    """The DBNet of ``cfg`` with ``checkpoint``'s weights (no starting-point files read)."""
    return bare_model(cfg.model, load_checkpoint(checkpoint)["model"])


def _predict_split(
    model: torch.nn.Module, samples: list[Sample], cfg: TrainConfig, device: torch.device
) -> ProbMaps:
    precision = resolve_precision(cfg.precision, device)
    size = cfg.input_size
    maps = np.zeros((len(samples), size, size), np.float16)
    scales = np.zeros(len(samples), np.float64)
    for index, scale, prob in prob_maps(model, eval_loader(samples, cfg), precision, device):
        maps[index] = prob
        scales[index] = scale
    return ProbMaps(
        maps,
        scales,
        [list(s.polygons) for s in samples],
        [list(s.ignore) for s in samples],
    )


def cache_prob_maps(cfg: TrainConfig, checkpoint: Path, path: Path | None = None) -> CachedMaps:
    """The maps of ``checkpoint`` on ``cfg``'s val and gap split, from the cache if it holds
    them for these weights, else by one inference pass (then written to the cache).

    The gap split is the holdout, else the seeded training subset the trial's gap was
    measured on (:func:`trainer_core.fit.gap_samples`).

    Args:
        cfg: the trial's config (data, input size, model, device, precision).
        checkpoint: a ``best.pt`` (weights, any starting point already in them).
        path: the cache file (default: ``prob_maps.npz`` beside the checkpoint).

    Raises:
        DataError: the data cannot be read, or a split is empty.
        FileNotFoundError: no checkpoint.

    Example:
        >>> cached = cache_prob_maps(cfg, Path("runs/trial-3/best.pt"))  # doctest: +SKIP
        >>> MapScorer(cached.val).metrics(cfg.postprocess).hmean  # doctest: +SKIP
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(2, "no such file", str(checkpoint))
    path = Path(path) if path is not None else checkpoint.with_name(CACHE_NAME)
    key = _cache_key(cfg, checkpoint)
    if path.is_file():
        try:
            cached = load_prob_maps(path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("%s: unreadable cache (%s); making it again", path, e)
        else:
            if cached.meta.get("key") == key:
                return CachedMaps(cached.val, cached.gap, cached.gap_split, cached.meta, path, True)
            log.info("%s: made for other weights or data; making it again", path)
    splits = make_splits(cfg.data)
    gap_split: Literal["holdout", "train"] = "holdout" if splits.holdout else "train"
    gap = gap_samples(cfg, splits.train, splits.holdout)
    if not splits.val or not gap:
        raise DataError("data: the val or gap split is empty; nothing to tune post-processing on")
    device = resolve_device(cfg.device)
    model = _inference_model(cfg, checkpoint).to(device)
    val_maps = _predict_split(model, splits.val, cfg, device)
    gap_maps = _predict_split(model, gap, cfg, device)
    meta = {"key": key, "gap_split": gap_split, "n_val": len(splits.val), "n_gap": len(gap)}
    save_prob_maps(path, val_maps, gap_maps, meta)
    return CachedMaps(val_maps, gap_maps, gap_split, meta, path, False)


def save_prob_maps(path: Path, val: ProbMaps, gap: ProbMaps, meta: dict[str, Any]) -> None:
    """Write a cache: one compressed npz (float16 maps), atomically; ``meta`` must hold
    ``gap_split``."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for name, split in (("val", val), ("gap", gap)):
        arrays |= _split_arrays(name, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _split_arrays(name: str, split: ProbMaps) -> dict[str, np.ndarray]:
    """A split as flat arrays: ragged polygon lists become points, lengths and counts."""
    polygons = [p for image in split.polygons for p in image]
    points = (
        np.concatenate([np.asarray(p, np.float32).reshape(-1, 2) for p in polygons])
        if polygons
        else np.zeros((0, 2), np.float32)
    )
    return {
        f"{name}_maps": split.maps.astype(np.float16),
        f"{name}_scales": split.scales,
        f"{name}_points": points,
        f"{name}_lengths": np.array([len(p) for p in polygons], np.int64),
        f"{name}_counts": np.array([len(image) for image in split.polygons], np.int64),
        f"{name}_ignore": np.array([f for image in split.ignore for f in image], bool),
    }


def _read_split(data: Any, name: str) -> ProbMaps:
    points, lengths = data[f"{name}_points"], data[f"{name}_lengths"]
    counts, flags = data[f"{name}_counts"], data[f"{name}_ignore"]
    ends = np.cumsum(lengths)
    flat = [points[end - n : end] for n, end in zip(lengths.tolist(), ends.tolist(), strict=True)]
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    polygons = [flat[a:b] for a, b in itertools.pairwise(bounds)]
    ignore = [[bool(f) for f in flags[a:b]] for a, b in itertools.pairwise(bounds)]
    return ProbMaps(data[f"{name}_maps"], data[f"{name}_scales"], polygons, ignore)


def load_prob_maps(path: Path) -> CachedMaps:
    """Read a cache written by :func:`cache_prob_maps`.

    Raises:
        OSError, ValueError, KeyError: not such a file.
    """
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        val, gap = _read_split(data, "val"), _read_split(data, "gap")
    return CachedMaps(val, gap, meta["gap_split"], meta, Path(path), True)


@dataclass
class _Candidates:
    """One image's candidates at one ``thresh``: scores and contour positions."""

    boxes: np.ndarray
    scores: np.ndarray
    index: np.ndarray


@dataclass
class _Regions:
    """One image's regions at one ``(thresh, unclip_ratio)``, and their matching facts."""

    scores: np.ndarray
    index: np.ndarray
    matches: ImageMatches


@dataclass
class MapScorer:
    """Detection metrics of post-processing settings on one split's cached maps.

    Args:
        maps: the split.
        average: ``"dataset"`` or ``"image"``, as ``metric_average``.
        box_thresh_floor: the lowest ``box_thresh`` that will be asked for; candidates
            scoring below it are never expanded (a search passes its range's low end).

    Example:
        >>> scorer = MapScorer(cached.val)  # doctest: +SKIP
        >>> scorer.metrics(PostprocessConfig(thresh=0.29, box_thresh=0.25)).hmean  # doctest: +SKIP
    """

    maps: ProbMaps
    average: Average = "dataset"
    box_thresh_floor: float = 0.0
    _candidates: dict[tuple[int, float, float, str], _Candidates] = field(
        default_factory=dict, repr=False
    )
    _regions: dict[tuple[int, float, float, float, str], _Regions] = field(
        default_factory=dict, repr=False
    )
    _probs: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def metrics(self, post: PostprocessConfig) -> DetectionMetrics:
        """Precision, recall and H-mean of ``post`` on every map of the split."""
        if post.output != "quad":
            return self._direct(post)
        if post.box_thresh < self.box_thresh_floor:
            raise ValueError(
                f"box_thresh={post.box_thresh:g} is below this scorer's box_thresh_floor "
                f"({self.box_thresh_floor:g}); make the scorer with a lower floor"
            )
        counts = [self._image_counts(i, post) for i in range(len(self.maps))]
        return metrics_from_counts(np.array(counts, np.int64), self.average)

    def _image_counts(self, i: int, post: PostprocessConfig) -> tuple[int, int, int]:
        regions = self._image_regions(i, post)
        keep = (regions.index < post.max_candidates) & (regions.scores >= post.box_thresh)
        return regions.matches.counts(keep)

    def _image_regions(self, i: int, post: PostprocessConfig) -> _Regions:
        key = (i, float(post.thresh), float(post.min_size), post.score_mode)
        rkey = (*key[:3], float(post.unclip_ratio), post.score_mode)
        regions = self._regions.get(rkey)
        if regions is not None:
            return regions
        cands = self._candidates.get(key)
        if cands is None:
            cands = _candidates(self._prob(i), post)
            self._candidates[key] = cands
        pick = cands.scores >= self.box_thresh_floor
        quads, ok = grow_quads(
            cands.boxes[pick], post.unclip_ratio, post.min_size, self.maps.maps[i].shape
        )
        scale = float(self.maps.scales[i])
        preds = [q / scale for q in quads[ok]]
        matches = image_matches(self.maps.polygons[i], self.maps.ignore[i], preds, image=i)
        regions = _Regions(cands.scores[pick][ok], cands.index[pick][ok], matches)
        self._regions[rkey] = regions
        return regions

    def _prob(self, i: int) -> np.ndarray:
        """Map ``i`` in float32, converted once (float16 -> float32 costs more than
        thresholding it)."""
        prob = self._probs.get(i)
        if prob is None:
            prob = self._probs[i] = self.maps.prob(i)
        return prob

    def _direct(self, post: PostprocessConfig) -> DetectionMetrics:
        """Polygon output: the whole post-processing per map (no staging)."""
        kwargs = post.model_dump()
        preds = []
        for i in range(len(self.maps)):
            polygons, _ = polygons_from_prob(self._prob(i), **kwargs)
            preds.append([p / float(self.maps.scales[i]) for p in polygons])
        return detection_metrics(self.maps.polygons, self.maps.ignore, preds, average=self.average)


def _candidates(prob: np.ndarray, post: PostprocessConfig) -> _Candidates:
    """Every contour's rectangle and score at ``post.thresh`` (``max_candidates`` applies
    later, as a bound on the contour position)."""
    bitmap = np.greater(prob, post.thresh).view(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes, scores, index = scored_boxes(prob, contours, post.min_size, post.score_mode)
    return _Candidates(boxes, scores, index)
