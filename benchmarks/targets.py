"""DB target speed: a straightforward per-polygon numpy border map against trainer_core's.

A 640x640 sample with 50 text polygons: rotated rectangles 8-32 px high, 2-8 times as long,
turned by up to 30 degrees, placed at random (neighbours' borders overlap, some polygons cross
the image edge). The reference is MhLiao/DB's ``MakeBorderMap.draw_border_map``: for every
polygon, the distance from each pixel of its dilated bounding box to each edge, in numpy,
``1 - d / D`` clipped, maximum over polygons. Two deliberate differences, both so that it is an
exact oracle: the point-to-segment distance is the exact one (MhLiao's shortcut through the
cosine of the angle at the pixel switches to the endpoint distance for any pixel outside the
circle on the edge as diameter, over-estimating near short edges), and the bounding box is
the polygon's box grown by D (MhLiao reads it off pyclipper's dilated polygon, whose vertices
pyclipper truncates to integers). The reference computes only the threshold map and its mask;
trainer_core's time is for all four targets. The threshold maps must agree within 1e-3; the
probability map is also compared with MhLiao's pyclipper shrink (agreement is reported,
pyclipper rounds vertices to integers, so a few boundary pixels differ).

Run: ``uv run python benchmarks/targets.py``
"""

from __future__ import annotations

import cv2
import numpy as np
import pyclipper
import torch
from machine import describe, median_ms

from trainer_core.data.targets import db_targets, shrink_distance

SIZE = 640
POLYGONS = 50
REPEATS = 100
SHRINK_RATIO, THRESH_MIN, THRESH_MAX = 0.4, 0.3, 0.7


def random_text_boxes(
    n: int = POLYGONS, size: int = SIZE, seed: int = 0, height: tuple[float, float] = (8, 32)
) -> list[np.ndarray]:
    """``n`` rotated rectangles of text-like proportions, (4, 2) float32 each."""
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        h = rng.uniform(*height)
        w = h * rng.uniform(2, 8)
        centre = rng.uniform(0, size, 2)
        boxes.append(cv2.boxPoints((tuple(centre), (w, h), rng.uniform(-30, 30))))
    return boxes


def reference_border_map(
    shape_hw: tuple[int, int],
    polygons: list[np.ndarray],
    shrink_ratio: float = SHRINK_RATIO,
    thresh_min: float = THRESH_MIN,
    thresh_max: float = THRESH_MAX,
) -> tuple[np.ndarray, np.ndarray]:
    """Threshold map and mask, per polygon and per edge in numpy (MhLiao/DB's structure).

    The mask takes pixels whose centre is within D + 1/2 px of the polygon (or inside it), as
    ``cv2.fillPoly`` rasterizes MhLiao's dilated polygon.
    """
    canvas = np.zeros(shape_hw, np.float32)
    mask = np.zeros(shape_hw, np.float32)
    height, width = shape_hw
    for polygon in polygons:
        poly = np.asarray(polygon, np.float64)
        dist = shrink_distance(poly, shrink_ratio)
        # Half a pixel beyond D: the mask takes pixels whose centre is that close.
        reach = dist + 0.5
        xmin = int(np.floor(poly[:, 0].min() - reach))
        xmax = int(np.floor(poly[:, 0].max() + reach))
        ymin = int(np.floor(poly[:, 1].min() - reach))
        ymax = int(np.floor(poly[:, 1].max() + reach))
        w, h = xmax - xmin + 1, ymax - ymin + 1
        local = poly - (xmin, ymin)
        xs = np.broadcast_to(np.arange(w, dtype=np.float64)[None, :], (h, w))
        ys = np.broadcast_to(np.arange(h, dtype=np.float64)[:, None], (h, w))
        distance_map = np.zeros((len(local), h, w), np.float32)
        for i in range(len(local)):
            j = (i + 1) % len(local)
            distance_map[i] = _segment_distance(xs, ys, local[i], local[j]) / dist
        nearest = distance_map.min(axis=0)
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [np.round(local * 16).astype(np.int32)], 1, shift=4)
        x0, x1 = max(xmin, 0), min(xmax, width - 1)
        y0, y1 = max(ymin, 0), min(ymax, height - 1)
        if x0 > x1 or y0 > y1:
            continue
        crop = (slice(y0 - ymin, y1 - ymin + 1), slice(x0 - xmin, x1 - xmin + 1))
        region = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        canvas[region] = np.fmax(1 - np.clip(nearest[crop], 0, 1), canvas[region])
        within = (nearest[crop] <= 1 + 0.5 / dist) | (inside[crop] > 0)
        mask[region] = np.maximum(mask[region], within.astype(np.float32))
    return canvas * (thresh_max - thresh_min) + thresh_min, mask


def _segment_distance(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from every pixel to the segment ``a``-``b``."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    sq_len = max(dx * dx + dy * dy, 1e-12)
    t = np.clip(((xs - a[0]) * dx + (ys - a[1]) * dy) / sq_len, 0, 1)
    return np.hypot(xs - a[0] - t * dx, ys - a[1] - t * dy)


def pyclipper_prob_map(shape_hw: tuple[int, int], polygons: list[np.ndarray]) -> np.ndarray:
    """MhLiao/DB's probability map: pyclipper shrink by D, filled."""
    prob = np.zeros(shape_hw, np.float32)
    for polygon in polygons:
        dist = shrink_distance(polygon, SHRINK_RATIO)
        offset = pyclipper.PyclipperOffset()
        offset.AddPath(
            np.round(polygon).astype(np.int64), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON
        )
        shrunk = offset.Execute(-dist)
        if shrunk:
            cv2.fillPoly(prob, [np.array(shrunk[0], np.int32)], 1.0)
    return prob


def main() -> None:
    shape = (SIZE, SIZE)
    boxes = random_text_boxes()
    flags = [False] * len(boxes)
    ref_thresh, ref_mask = reference_border_map(shape, boxes)
    prob, _, thresh, thresh_mask = db_targets(shape, boxes, flags)
    max_diff = float(np.abs(ref_thresh - thresh).max())
    mean_diff = float(np.abs(ref_thresh - thresh).mean())
    mask_diff = int((ref_mask != thresh_mask).sum())
    clipper_prob = pyclipper_prob_map(shape, boxes)
    union = np.maximum(prob, clipper_prob).sum()
    prob_iou = float(np.minimum(prob, clipper_prob).sum() / union)
    assert max_diff <= 1e-3, f"threshold maps differ by {max_diff}"

    ref_ms, ref_cpu = median_ms(lambda: reference_border_map(shape, boxes), REPEATS // 2)
    ours_ms, ours_cpu = median_ms(lambda: db_targets(shape, boxes, flags), REPEATS)
    print(
        "machine: "
        + describe(
            f"numpy {np.__version__}", f"opencv {cv2.__version__}", f"torch {torch.__version__}"
        )
    )
    runs = f"medians of {REPEATS // 2} (reference) and {REPEATS} runs"
    print(f"sample: {SIZE}x{SIZE}, {POLYGONS} rotated text boxes; {runs}")
    print("                                                    wall ms   cpu ms")
    print(f"reference border map (numpy per polygon and edge): {ref_ms:8.2f} {ref_cpu:8.2f}")
    print(f"trainer_core db_targets (all four maps):           {ours_ms:8.2f} {ours_cpu:8.2f}")
    print(f"speed-up (wall): {ref_ms / ours_ms:.1f}x")
    print(f"threshold map vs reference: max |diff| {max_diff:.2e}, mean {mean_diff:.2e}")
    print(f"threshold mask pixels that differ: {mask_diff} of {SIZE * SIZE}")
    print(f"probability map IoU with pyclipper shrink: {prob_iou:.4f}")


if __name__ == "__main__":
    main()
