"""Detection precision, recall and H-mean under the ICDAR 2015 IoU protocol.

Follows the official Robust Reading Competition script for Challenge 4 task 1
(``script.py`` beside ``rrc_evaluation_funcs.py``), with its default parameters
IOU_CONSTRAINT 0.5 and AREA_PRECISION_CONSTRAINT 0.5. Exact polygon geometry comes from
shapely, evaluated only for pairs whose bounding boxes overlap, all pairs of an image in one
vectorized call (``benchmarks/hmean.py``: same results as the pair-by-pair loop, ~50x faster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely

__all__ = ["DetectionMetrics", "detection_metrics"]

# A prediction is don't-care when more than this fraction of its own area lies in one
# don't-care ground truth (the script's AREA_PRECISION_CONSTRAINT).
DONT_CARE_AREA = 0.5


@dataclass(frozen=True)
class DetectionMetrics:
    """Precision, recall and H-mean with the counts they came from.

    Counts are of cared-for items summed over the dataset: ``n_gt`` ground truths that are
    not don't-care, ``n_pred`` predictions not ignored for lying on a don't-care region,
    ``n_match`` one-to-one matches.
    """

    precision: float
    recall: float
    hmean: float
    n_gt: int
    n_pred: int
    n_match: int


def detection_metrics(
    gt_polygons: Sequence[Sequence[np.ndarray]],
    gt_ignore: Sequence[Sequence[bool]],
    pred_polygons: Sequence[Sequence[np.ndarray]],
    iou_threshold: float = 0.5,
    average: Literal["dataset", "image"] = "dataset",
) -> DetectionMetrics:
    """Score predicted text polygons against ground truth, image by image.

    Per image, as the ICDAR 2015 script does it:

    * A prediction whose intersection with some don't-care ground truth covers more than
      half of the prediction's own area is ignored: neither a match nor a false alarm.
      Don't-care ground truths are never misses.
    * Ground truths in order: each cared-for one matches the first still unmatched,
      not ignored prediction with IoU strictly above ``iou_threshold``; one to one.
    * An IoU whose union is zero counts as 0 (the script catches that division).

    Averaging:

    * ``"dataset"``: matches, cared ground truths and cared predictions are summed over all
      images, then ``recall = 0 if n_gt == 0 else n_match / n_gt`` and
      ``precision = 0 if n_pred == 0 else n_match / n_pred`` (the script's method metrics).
    * ``"image"``: each image's own precision, recall and H-mean, averaged over images (the
      receipt competitions). An image without cared ground truth has recall 1 and
      precision 1 if it has no cared predictions either, else 0; an image with ground truth
      but no predictions has precision 0 (the script's per-sample metrics).

    Either way ``hmean = 0 if precision + recall == 0 else 2PR / (P + R)``; with no images
    at all every figure is 0.

    Bad polygons never raise. Self-intersecting ones (a quad with two corners swapped) are
    repaired with ``shapely.make_valid``, keeping every region the outline encloses:
    dropping them would hide a miss (ground truth) or a false alarm (prediction) and so
    inflate the score a sweep optimizes, and ``buffer(0)`` can silently lose one lobe of a
    bow-tie. Polygons with fewer than 3 points, non-finite coordinates or no area stay in
    the counts with zero area: a ground truth of that kind is a miss, a prediction a false
    alarm (the script's zero-area conventions give the same).

    Args:
        gt_polygons: per image, the ground-truth polygons as (N, 2) arrays.
        gt_ignore: per image, one don't-care flag per ground-truth polygon.
        pred_polygons: per image, the predicted polygons as (N, 2) arrays.
        iou_threshold: a match needs IoU strictly above this.
        average: ``"dataset"`` or ``"image"``, see above.

    Returns:
        The metrics and the dataset-level counts.

    Raises:
        ValueError: the three lists differ in length, an image's flags do not match its
            ground truths, or ``average`` is unknown.

    Example:
        >>> box = np.array([[0, 0], [10, 0], [10, 5], [0, 5]], float)
        >>> detection_metrics([[box]], [[False]], [[box + [5, 0]]]).hmean  # IoU 1/3
        0.0
        >>> detection_metrics([[box]], [[False]], [[box + 0.5]]).hmean  # IoU 0.75
        1.0
    """
    if average not in ("dataset", "image"):
        raise ValueError(f"average={average!r}: expected 'dataset' or 'image'")
    if not len(gt_polygons) == len(gt_ignore) == len(pred_polygons):
        raise ValueError(
            f"gt_polygons, gt_ignore and pred_polygons need one entry per image; got "
            f"{len(gt_polygons)}, {len(gt_ignore)} and {len(pred_polygons)}"
        )
    counts = np.array(
        [
            _match_image(gts, ignore, preds, iou_threshold, image)
            for image, (gts, ignore, preds) in enumerate(
                zip(gt_polygons, gt_ignore, pred_polygons, strict=True)
            )
        ],
        dtype=np.int64,
    ).reshape(-1, 3)
    n_gt, n_pred, n_match = (int(n) for n in counts.sum(axis=0))
    if average == "dataset":
        recall = 0.0 if n_gt == 0 else n_match / n_gt
        precision = 0.0 if n_pred == 0 else n_match / n_pred
        hmean = _hmean(precision, recall)
    elif len(counts) == 0:
        precision = recall = hmean = 0.0
    else:
        per_image = np.array([_image_prh(*c) for c in counts.tolist()])
        precision, recall, hmean = (float(x) for x in per_image.mean(axis=0))
    return DetectionMetrics(precision, recall, hmean, n_gt, n_pred, n_match)


def _hmean(precision: float, recall: float) -> float:
    """Harmonic mean, 0 when both are 0."""
    total = precision + recall
    return 0.0 if total == 0 else 2.0 * precision * recall / total


def _image_prh(n_gt: int, n_pred: int, n_match: int) -> tuple[float, float, float]:
    """One image's precision, recall, H-mean with the script's empty-image conventions."""
    if n_gt == 0:
        recall = 1.0
        precision = 0.0 if n_pred > 0 else 1.0
    else:
        recall = n_match / n_gt
        precision = 0.0 if n_pred == 0 else n_match / n_pred
    return precision, recall, _hmean(precision, recall)


def _match_image(
    gts: Sequence[np.ndarray],
    ignore: Sequence[bool],
    preds: Sequence[np.ndarray],
    iou_threshold: float,
    image: int,
) -> tuple[int, int, int]:
    """(cared ground truths, cared predictions, matches) of one image."""
    dont_care = np.asarray(ignore, dtype=bool).reshape(-1)
    if len(dont_care) != len(gts):
        raise ValueError(
            f"image {image}: gt_ignore has {len(dont_care)} flags for {len(gts)} polygons"
        )
    n_gt_care = int((~dont_care).sum())
    if len(preds) == 0 or len(gts) == 0:
        return n_gt_care, len(preds), 0
    g, d = _geometries(gts), _geometries(preds)
    g_area, d_area = shapely.area(g), shapely.area(d)
    gb, db = shapely.bounds(g), shapely.bounds(d)  # NaN for empty geometries
    # Bounding-box intersection areas bound the exact ones from above; NaN -> no overlap.
    box = np.clip(
        np.minimum(gb[:, None, 2:], db[None, :, 2:]) - np.maximum(gb[:, None, :2], db[None, :, :2]),
        0.0,
        None,
    )
    box_inter = np.nan_to_num(box[..., 0] * box[..., 1])
    inter = np.zeros(box_inter.shape, np.float64)

    det_ignored = np.zeros(len(d), bool)
    if dont_care.any():
        # Exact geometry only where the bound leaves "more than half the prediction" possible.
        need = (np.minimum(box_inter, g_area[:, None]) > DONT_CARE_AREA * d_area) & dont_care[
            :, None
        ]
        _fill_intersections(inter, need, g, d)
        det_ignored = (inter > DONT_CARE_AREA * d_area).any(axis=0)  # zero-area: never

    # IoU grows with the intersection, so the box bound caps it; pairs capped at or below the
    # threshold cannot match and need no exact geometry.
    cared = ~dont_care[:, None] & ~det_ignored[None, :]
    total = g_area[:, None] + d_area[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou_cap = np.where(total > box_inter, box_inter / (total - box_inter), np.inf)
    need = cared & (box_inter > 0) & (iou_cap > iou_threshold)
    _fill_intersections(inter, need, g, d)
    union = total - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    candidate = (iou > iou_threshold) & need
    taken = np.zeros(len(d), bool)
    for row in np.flatnonzero(candidate.any(axis=1)):
        free = candidate[row] & ~taken
        first = int(free.argmax())
        if free[first]:
            taken[first] = True
    return n_gt_care, int((~det_ignored).sum()), int(taken.sum())


def _geometries(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """shapely polygons (repaired when invalid; empty when degenerate), one per input."""
    try:
        stacked = np.asarray(polygons, dtype=np.float64)  # (K, N, 2) when all have N points
    except ValueError:  # ragged: point counts differ
        stacked = np.empty((0,))
    if stacked.ndim == 3 and stacked.shape[1] >= 3 and stacked.shape[2] == 2:
        usable = np.isfinite(stacked).all(axis=(1, 2))
        if usable.all():
            out = shapely.polygons(stacked)
            # A quad that turns the same way at every corner is convex and simple, so valid.
            check = ~_convex_quads(stacked) if stacked.shape[1] == 4 else np.ones(len(out), bool)
            return _repair(out, check)
    arrays = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
    usable = np.array([len(a) >= 3 and bool(np.isfinite(a).all()) for a in arrays], bool)
    out = np.full(len(arrays), shapely.Polygon(), dtype=object)
    if usable.any():
        index = np.flatnonzero(usable)
        lengths = np.array([len(arrays[i]) for i in index])
        coords = np.concatenate([arrays[i] for i in index])
        rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(index)), lengths))
        out[index] = shapely.polygons(rings)
    return _repair(out, usable)


def _convex_quads(quads: np.ndarray) -> np.ndarray:
    """Which (K, 4, 2) quads turn strictly the same way at all four corners."""
    edges = np.roll(quads, -1, axis=1) - quads
    nxt = np.roll(edges, -1, axis=1)
    turn = edges[..., 0] * nxt[..., 1] - edges[..., 1] * nxt[..., 0]
    return (turn > 0).all(axis=1) | (turn < 0).all(axis=1)


def _repair(out: np.ndarray, check: np.ndarray) -> np.ndarray:
    """``out`` with the invalid geometries among ``check`` made valid, in place."""
    index = np.flatnonzero(check)
    invalid = index[~shapely.is_valid(out[index])]
    if len(invalid):
        # "structure" keeps polygonal parts only, so intersections never see mixed dimensions.
        out[invalid] = shapely.make_valid(out[invalid], method="structure", keep_collapsed=False)
    return out


def _fill_intersections(inter: np.ndarray, need: np.ndarray, g: np.ndarray, d: np.ndarray) -> None:
    """Exact intersection areas of the ``need`` pairs, in one vectorized shapely call."""
    gi, di = np.nonzero(need)
    if len(gi):
        inter[gi, di] = shapely.area(shapely.intersection(g[gi], d[di]))
