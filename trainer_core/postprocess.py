"""Probability map -> text regions, as DBNet's ``SegDetectorRepresenter`` does it.

The steps and thresholds follow MhLiao/DB (binarize, contours, score, unclip, min-area box);
the work per candidate is batched in numpy where DBNet loops in Python, which is what makes
this about twice as fast with the same boxes (``benchmarks/postprocess.py``).
"""

from __future__ import annotations

from typing import Any, Literal

import cv2
import numpy as np
import pyclipper

from trainer_core.config import PostprocessConfig

__all__ = ["grow_quads", "polygons_from_prob", "postprocess_config_kwargs", "scored_boxes"]

# approxPolyDP tolerance as a fraction of the contour's length (PaddleOCR's value). DBNet's
# 0.01 grows with the contour: on a long receipt line it exceeds the line's height.
POLYGON_EPSILON = 0.002


def postprocess_config_kwargs(cfg: PostprocessConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`polygons_from_prob` that ``cfg`` sets.

    Example:
        >>> kwargs = postprocess_config_kwargs(PostprocessConfig(unclip_ratio=2.0))
        >>> kwargs["unclip_ratio"], kwargs["output"]
        (2.0, 'quad')
        >>> polygons, scores = polygons_from_prob(np.zeros((32, 32)), **kwargs)
    """
    return cfg.model_dump()


def polygons_from_prob(
    prob: np.ndarray,
    thresh: float = 0.3,
    box_thresh: float = 0.7,
    max_candidates: int = 1000,
    unclip_ratio: float = 1.5,
    output: Literal["quad", "polygon"] = "quad",
    min_size: float = 3.0,
    score_mode: Literal["fast", "polygon"] = "fast",
) -> tuple[list[np.ndarray], list[float]]:
    """Text regions of a probability map, in the map's pixel coordinates.

    Pixels above ``thresh`` form the text kernels; each outer or inner contour (at most
    ``max_candidates``, in ``cv2.findContours`` order) becomes a candidate. A candidate is
    dropped when its minimum-area rectangle is shorter than ``min_size``, when its score is
    below ``box_thresh``, or when, after expanding it by ``unclip_ratio``, the short side of
    the expanded region's rectangle is below ``min_size + 2`` (DBNet's rule). The expansion
    is pyclipper's round offset by ``area * unclip_ratio / perimeter``, the inverse of the
    shrink the DB targets apply. Regions without area are skipped; when an offset comes back
    in several pieces the largest is kept.

    Scores: ``"fast"`` is the mean probability under the candidate's shape (the rectangle for
    quads, the simplified contour for polygons) rasterized inside its bounding box, as
    DBNet's ``box_score_fast``; ``"polygon"`` is the mean under the contour itself, which
    leaves out the background corners a rotated or curved region's rectangle takes in.

    Args:
        prob: (H, W) probabilities in [0, 1].
        thresh: binarization threshold (strictly greater is text).
        box_thresh: minimum score a region needs.
        max_candidates: contours considered at most.
        unclip_ratio: how far regions grow back; DB's shrink ratio 0.4 inverts at about 1.5.
        output: ``"quad"`` for the minimum-area rectangle, its corners clockwise from the
            top-left; ``"polygon"`` for the expanded contour.
        min_size: shortest side a region may have, in pixels.
        score_mode: ``"fast"`` or ``"polygon"``, see above.

    Returns:
        ``(polygons, scores)``: float32 (N, 2) arrays clipped to [0, W] x [0, H], and their
        scores, in contour order.

    Raises:
        ValueError: ``prob`` is not a 2-D array, or ``output``/``score_mode`` is unknown.

    Example:
        >>> prob = np.zeros((64, 64), np.float32)
        >>> prob[20:30, 10:50] = 0.9
        >>> quads, scores = polygons_from_prob(prob)
        >>> len(quads), quads[0].shape
        (1, (4, 2))
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob: expected a 2-D (H, W) map, got shape {prob.shape}")
    if output not in ("quad", "polygon"):
        raise ValueError(f"output={output!r}: expected 'quad' or 'polygon'")
    if score_mode not in ("fast", "polygon"):
        raise ValueError(f"score_mode={score_mode!r}: expected 'fast' or 'polygon'")
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    bitmap = np.greater(prob, thresh).view(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = contours[:max_candidates]
    if not contours:
        return [], []
    if output == "quad":
        return _quads(prob, contours, box_thresh, unclip_ratio, min_size, score_mode)
    return _polygons(prob, contours, box_thresh, unclip_ratio, min_size, score_mode)


def _quads(
    prob: np.ndarray,
    contours: list[np.ndarray] | tuple[np.ndarray, ...],
    box_thresh: float,
    unclip_ratio: float,
    min_size: float,
    score_mode: str,
) -> tuple[list[np.ndarray], list[float]]:
    """The quad pipeline, each step run for all candidates at once where numpy allows."""
    boxes, scores, _ = scored_boxes(prob, contours, min_size, score_mode)
    passed = scores >= box_thresh
    quads, ok = grow_quads(boxes[passed], unclip_ratio, min_size, prob.shape)
    return list(quads[ok]), [float(s) for s in scores[passed][ok]]


def scored_boxes(
    prob: np.ndarray,
    contours: list[np.ndarray] | tuple[np.ndarray, ...],
    min_size: float,
    score_mode: str = "fast",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The quad candidates of ``contours`` before ``box_thresh`` and the unclip.

    Returns:
        ``(boxes, scores, index)``: the minimum-area rectangles (K, 4, 2) of the contours
        whose short side reaches ``min_size``, their scores, and their positions in
        ``contours`` (what ``max_candidates`` counts).
    """
    if not len(contours):
        return np.zeros((0, 4, 2), np.float32), np.zeros(0), np.zeros(0, np.int64)
    boxes, short = _min_area_boxes(contours)
    keep = np.flatnonzero((short >= min_size) & (short > 0))
    if score_mode == "fast":
        scores = _mean_under(prob, boxes[keep])
    else:
        scores = _mean_under(prob, [contours[i].reshape(-1, 2) for i in keep])
    return boxes[keep], scores, keep


def grow_quads(
    boxes: np.ndarray, unclip_ratio: float, min_size: float, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rectangles expanded by ``unclip_ratio``: the regions DBNet outputs.

    Returns:
        ``(quads, ok)``: (K, 4, 2) float32 corners clipped to the ``shape`` (H, W) map, and
        which of them are regions (``False``: vanished, or a short side below
        ``min_size + 2``; their corners are zeros).
    """
    k = len(boxes)
    quads = np.zeros((k, 4, 2), np.float32)
    ok = np.zeros(k, bool)
    if k == 0:
        return quads, ok
    grown = _unclip(boxes, unclip_ratio, _quad_area_perimeter(boxes))
    alive = np.array([g is not None for g in grown])
    if not alive.any():
        return quads, ok
    rects, short = _min_area_boxes([g for g in grown if g is not None])
    h, w = shape[:2]
    np.clip(rects[..., 0], 0, w, out=rects[..., 0])
    np.clip(rects[..., 1], 0, h, out=rects[..., 1])
    quads[alive] = rects
    ok[alive] = short >= min_size + 2
    return quads, ok


def _polygons(
    prob: np.ndarray,
    contours: list[np.ndarray] | tuple[np.ndarray, ...],
    box_thresh: float,
    unclip_ratio: float,
    min_size: float,
    score_mode: str,
) -> tuple[list[np.ndarray], list[float]]:
    """The polygon pipeline: simplified contours instead of rectangles, one at a time."""
    _, short = _min_area_boxes(contours)
    h, w = prob.shape
    polygons: list[np.ndarray] = []
    scores: list[float] = []
    for i in np.flatnonzero((short >= min_size) & (short > 0)):
        contour = contours[i]
        approx = cv2.approxPolyDP(contour, POLYGON_EPSILON * cv2.arcLength(contour, True), True)
        approx = approx.reshape(-1, 2)
        area = abs(cv2.contourArea(approx))
        if len(approx) < 3 or area == 0:
            continue
        shape = approx if score_mode == "fast" else contour.reshape(-1, 2)
        score = float(_mean_under(prob, [shape])[0])
        if score < box_thresh:
            continue
        perimeter = cv2.arcLength(approx, True)
        grown = _unclip([approx], unclip_ratio, (np.array([area]), [perimeter]))
        poly = grown[0]
        if poly is None or min(cv2.minAreaRect(poly)[1]) < min_size + 2:
            continue
        poly = poly.astype(np.float32)
        np.clip(poly[:, 0], 0, w, out=poly[:, 0])
        np.clip(poly[:, 1], 0, h, out=poly[:, 1])
        polygons.append(poly)
        scores.append(score)
    return polygons, scores


def _min_area_boxes(
    point_sets: list[np.ndarray] | tuple[np.ndarray, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-area rectangles: (K, 4, 2) float32 corners clockwise from top-left, short sides."""
    rects = [cv2.minAreaRect(p) for p in point_sets]
    # cv2.boxPoints per rectangle costs no more than a numpy version and matches DBNet's
    # float32 corners bit for bit, so pyclipper truncates them to the same integers.
    corners = np.array([cv2.boxPoints(r) for r in rects], np.float32).reshape(-1, 4, 2)
    short = np.array([min(r[1]) for r in rects], np.float32)
    return _order_corners(corners), short


def _order_corners(corners: np.ndarray) -> np.ndarray:
    """DBNet's corner order (TL, TR, BR, BL) for (K, 4, 2) rectangles, without a Python loop.

    Sort by x (stably, like ``sorted``); of the two leftmost the upper is top-left, of the two
    rightmost the upper is top-right.
    """
    order = np.argsort(corners[..., 0], axis=1, kind="stable")
    p = np.take_along_axis(corners, order[..., None], axis=1)
    left_down = p[:, 1, 1] > p[:, 0, 1]
    right_down = p[:, 3, 1] > p[:, 2, 1]
    top_left = np.where(left_down, 0, 1)
    top_right = np.where(right_down, 2, 3)
    index = np.stack([top_left, top_right, 5 - top_right, 1 - top_left], axis=1)
    return np.take_along_axis(p, index[..., None], axis=1)


def _quad_area_perimeter(quads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shoelace areas and perimeters of (K, 4, 2) quads, in float64 as shapely computes them."""
    q = quads.astype(np.float64)
    nxt = np.roll(q, -1, axis=1)
    area = 0.5 * np.abs(np.sum(q[..., 0] * nxt[..., 1] - nxt[..., 0] * q[..., 1], axis=1))
    perimeter = np.sum(np.hypot(*(nxt - q).transpose(2, 0, 1)), axis=1)
    return area, perimeter


def _mean_under(prob: np.ndarray, shapes: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Mean of ``prob`` under each polygon, rasterized (truncated to int) in its bounding box.

    ``shapes`` is a (K, N, 2) array (bounds computed at once) or a list of (N, 2) arrays.
    """
    h, w = prob.shape
    if isinstance(shapes, np.ndarray):
        lo, hi = shapes.min(axis=1), shapes.max(axis=1)
    else:
        lo = np.array([s.min(axis=0) for s in shapes]).reshape(-1, 2)
        hi = np.array([s.max(axis=0) for s in shapes]).reshape(-1, 2)
    limit = np.array([w - 1, h - 1])
    lo = np.clip(np.floor(lo).astype(np.int64), 0, limit)
    hi = np.clip(np.ceil(hi).astype(np.int64), 0, limit)
    if isinstance(shapes, np.ndarray):
        local = list((shapes - lo[:, None, :].astype(shapes.dtype)).astype(np.int32))
    else:
        local = [(s - o.astype(s.dtype)).astype(np.int32) for s, o in zip(shapes, lo, strict=True)]
    scores = np.zeros(len(shapes), np.float64)
    for k, (corners, (x0, y0), (x1, y1)) in enumerate(
        zip(local, lo.tolist(), hi.tolist(), strict=True)
    ):
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        cv2.fillPoly(mask, [corners], 1)
        scores[k] = cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0]
    return scores


def _unclip(
    shapes: np.ndarray | list[np.ndarray],
    ratio: float,
    area_perimeter: tuple[np.ndarray, Any],
) -> list[np.ndarray | None]:
    """Each shape grown by ``area * ratio / perimeter`` (int32 points), or None when it vanishes."""
    areas, perimeters = area_perimeter
    offset = pyclipper.PyclipperOffset()
    grown: list[np.ndarray | None] = []
    for shape, area, perimeter in zip(shapes, areas, perimeters, strict=True):
        if area <= 0 or perimeter <= 0:
            grown.append(None)
            continue
        offset.Clear()
        offset.AddPath(shape, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
        pieces = offset.Execute(area * ratio / perimeter)
        if not pieces:
            grown.append(None)
            continue
        # A concave polygon can come back in several pieces; the largest is the region.
        piece = max(pieces, key=lambda p: abs(pyclipper.Area(p))) if len(pieces) > 1 else pieces[0]
        grown.append(np.array(piece, np.int32))
    return grown
