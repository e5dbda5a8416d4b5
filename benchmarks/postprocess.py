"""Post-processing speed: DBNet's reference loop against trainer_core.postprocess.

A 640x640 probability map with 50 text regions (rotated rectangles of varied size and
confidence, blurred edges, background noise). The reference is MhLiao/DB's
``SegDetectorRepresenter.boxes_from_bitmap`` as written there, minus the final rounding to
integer pixels so the comparison is exact. Both must return the same boxes.

Run: ``uv run python benchmarks/postprocess.py``
"""

from __future__ import annotations

import statistics

import cv2
import numpy as np
import pyclipper
import torch
from machine import describe, median_ms
from shapely.geometry import Polygon

from trainer_core.postprocess import polygons_from_prob

SIZE = 640
REGIONS = 50
REPEATS = 100


def synthetic_map(size: int = SIZE, regions: int = REGIONS, seed: int = 0) -> np.ndarray:
    """A probability map with ``regions`` separated rotated boxes, like a trained DBNet's."""
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0.0, 0.1, (size, size)).astype(np.float32)
    occupied = np.zeros((size, size), np.uint8)
    margin = np.ones((7, 7), np.uint8)
    placed = 0
    while placed < regions:
        w, h = rng.uniform(20, 120), rng.uniform(6, 24)
        cx, cy = rng.uniform(w / 2 + 4, size - w / 2 - 4), rng.uniform(h + 4, size - h - 4)
        corners = cv2.boxPoints(((cx, cy), (w, h), rng.uniform(-15, 15)))
        region = np.zeros_like(occupied)
        cv2.fillPoly(region, [np.round(corners).astype(np.int32)], 1)
        if (cv2.dilate(region, margin) & occupied).any():
            continue
        occupied |= region
        prob[region > 0] = rng.uniform(0.75, 0.98)
        placed += 1
    return cv2.GaussianBlur(prob, (3, 3), 0)


# --- reference: MhLiao/DB structure/representers/seg_detector_representer.py -------------


def _get_mini_boxes(contour: np.ndarray) -> tuple[list[np.ndarray], float]:
    bounding_box = cv2.minAreaRect(contour)
    points = sorted(cv2.boxPoints(bounding_box), key=lambda x: x[0])
    i1, i4 = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    i2, i3 = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    return [points[i1], points[i2], points[i3], points[i4]], min(bounding_box[1])


def _box_score_fast(bitmap: np.ndarray, box_in: np.ndarray) -> float:
    h, w = bitmap.shape[:2]
    box = box_in.copy()
    xmin = np.clip(np.floor(box[:, 0].min()).astype(int), 0, w - 1)
    xmax = np.clip(np.ceil(box[:, 0].max()).astype(int), 0, w - 1)
    ymin = np.clip(np.floor(box[:, 1].min()).astype(int), 0, h - 1)
    ymax = np.clip(np.ceil(box[:, 1].max()).astype(int), 0, h - 1)
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    box[:, 0] = box[:, 0] - xmin
    box[:, 1] = box[:, 1] - ymin
    cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(bitmap[ymin : ymax + 1, xmin : xmax + 1], mask)[0]


def _unclip(box: np.ndarray, unclip_ratio: float) -> np.ndarray:
    poly = Polygon(box)
    distance = poly.area * unclip_ratio / poly.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return np.array(offset.Execute(distance), np.int32)


def reference(
    pred: np.ndarray,
    thresh: float = 0.3,
    box_thresh: float = 0.7,
    max_candidates: int = 1000,
    unclip_ratio: float = 1.5,
    min_size: float = 3,
) -> tuple[list[np.ndarray], list[float]]:
    """DBNet's boxes_from_bitmap on a map, boxes kept in the map's float coordinates."""
    bitmap = pred > thresh
    height, width = bitmap.shape
    contours, _ = cv2.findContours(
        (bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    boxes, scores = [], []
    for contour in contours[:max_candidates]:
        points, sside = _get_mini_boxes(contour.squeeze(1))
        if sside < min_size:
            continue
        points = np.array(points)
        score = _box_score_fast(pred, points.reshape(-1, 2))
        if box_thresh > score:
            continue
        box, sside = _get_mini_boxes(_unclip(points, unclip_ratio).reshape(-1, 1, 2))
        if sside < min_size + 2:
            continue
        box = np.array(box)
        box[:, 0] = np.clip(box[:, 0], 0, width)
        box[:, 1] = np.clip(box[:, 1], 0, height)
        boxes.append(box)
        scores.append(score)
    return boxes, scores


# --- measurement ---------------------------------------------------------------------------


def main() -> None:
    cv2.setNumThreads(1)  # one core, as in a data-loader worker
    maps = [synthetic_map(seed=s) for s in range(5)]
    for prob in maps:
        ref_boxes, ref_scores = reference(prob)
        boxes, scores = polygons_from_prob(prob)
        assert len(boxes) == len(ref_boxes), (len(boxes), len(ref_boxes))
        assert np.allclose(np.array(boxes), np.array(ref_boxes), atol=1e-3, rtol=0)
        assert np.allclose(scores, ref_scores, atol=1e-9, rtol=0)
    kept = statistics.mean(len(reference(m)[0]) for m in maps)
    ref_ms = statistics.median(median_ms(lambda m=m: reference(m), REPEATS).wall_ms for m in maps)
    new_ms = statistics.median(
        median_ms(lambda m=m: polygons_from_prob(m), REPEATS).wall_ms for m in maps
    )
    poly_ms = statistics.median(
        median_ms(lambda m=m: polygons_from_prob(m, output="polygon"), REPEATS).wall_ms
        for m in maps
    )
    print("machine: " + describe(f"torch {torch.__version__}", f"opencv {cv2.__version__}"))
    print(f"map {SIZE}x{SIZE}, {REGIONS} regions, {kept:.0f} boxes kept on average, same boxes")
    print(f"reference (DBNet boxes_from_bitmap): {ref_ms:.2f} ms per map (median)")
    print(f"polygons_from_prob quad:             {new_ms:.2f} ms per map (median)")
    print(f"polygons_from_prob polygon:          {poly_ms:.2f} ms per map (median)")


if __name__ == "__main__":
    main()
