"""H-mean speed: the ICDAR 2015 script's pair-by-pair loop against trainer_core.metrics.

Images of 1280x720 with 50 ground-truth quads (10 of them don't-care) and 50 predictions:
jittered copies of most ground truths (some shifted far enough to fall below IoU 0.5), the
rest false alarms, some on don't-care regions. The reference follows the official script
(``script.py`` of Challenge 4 task 1) with shapely in place of the Polygon library: every
pair's intersection computed exactly, one pair at a time. Both must give the same counts.

Run: ``uv run python benchmarks/hmean.py``
"""

from __future__ import annotations

import cv2
import numpy as np
import shapely
import torch
from machine import describe, median_ms
from shapely.geometry import Polygon

from trainer_core.metrics import detection_metrics

IMAGES = 20
BOXES = 50
DONT_CARE = 10
REPEATS = 5


def synthetic_image(
    seed: int, width: int = 1280, height: int = 720
) -> tuple[list[np.ndarray], list[bool], list[np.ndarray]]:
    """Ground truths, their don't-care flags and predictions for one image."""
    rng = np.random.default_rng(seed)
    gts: list[np.ndarray] = []
    while len(gts) < BOXES:
        w, h = rng.uniform(30, 160), rng.uniform(10, 40)
        centre = rng.uniform([w, h], [width - w, height - h])
        quad = cv2.boxPoints((tuple(centre), (w, h), rng.uniform(-20, 20))).astype(np.float64)
        candidate = Polygon(quad)
        if all(not candidate.intersects(Polygon(g)) for g in gts):
            gts.append(quad)
    ignore = [i < DONT_CARE for i in range(BOXES)]
    preds = []
    for gt in gts:
        if rng.random() < 0.15:
            continue  # a miss
        jitter = rng.normal(0, 2.0, gt.shape)
        if rng.random() < 0.2:  # a sloppy box: IoU around the threshold
            jitter += (gt[1] - gt[0]) * rng.uniform(0.2, 0.5)
        preds.append(gt + jitter)
    while len(preds) < BOXES:  # false alarms, some overlapping text
        w, h = rng.uniform(20, 120), rng.uniform(8, 30)
        centre = rng.uniform([w, h], [width - w, height - h])
        preds.append(cv2.boxPoints((tuple(centre), (w, h), rng.uniform(-20, 20))).astype(float))
    order = rng.permutation(len(preds))
    return gts, ignore, [preds[i] for i in order]


def reference_image(
    gts: list[np.ndarray], ignore: list[bool], preds: list[np.ndarray], iou_constraint: float = 0.5
) -> tuple[int, int, int]:
    """(cared GT, cared predictions, matches) of one image, as the ICDAR 2015 script counts.

    Written as DBNet's ``DetectionIoUEvaluator`` (the script ported to shapely) does it:
    polygons built per call, intersection and union computed for every pair.
    """

    def intersection(pd: np.ndarray, pg: np.ndarray) -> float:
        return Polygon(pd).intersection(Polygon(pg)).area

    def iou(pd: np.ndarray, pg: np.ndarray) -> float:
        return intersection(pd, pg) / Polygon(pd).union(Polygon(pg)).area

    gt_dont_care = [i for i, flag in enumerate(ignore) if flag]
    det_dont_care = []
    for n, det in enumerate(preds):
        for i in gt_dont_care:
            area = Polygon(det).area
            covered = 0 if area == 0 else intersection(gts[i], det) / area
            if covered > 0.5:
                det_dont_care.append(n)
                break
    iou_mat = np.empty((len(gts), len(preds)))
    for g, pg in enumerate(gts):
        for d, pd in enumerate(preds):
            iou_mat[g, d] = iou(pd, pg)
    gt_taken = np.zeros(len(gts), bool)
    det_taken = np.zeros(len(preds), bool)
    matched = 0
    for g in range(len(gts)):
        for d in range(len(preds)):
            free = not gt_taken[g] and not det_taken[d]
            cared = g not in gt_dont_care and d not in det_dont_care
            if free and cared and iou_mat[g, d] > iou_constraint:
                gt_taken[g] = det_taken[d] = True
                matched += 1
    return len(gts) - len(gt_dont_care), len(preds) - len(det_dont_care), matched


def main() -> None:
    data = [synthetic_image(seed) for seed in range(IMAGES)]
    gts, ignores, preds = (list(x) for x in zip(*data, strict=True))
    ref_counts = np.array([reference_image(*image) for image in data]).sum(axis=0)
    result = detection_metrics(gts, ignores, preds)
    counts = np.array([result.n_gt, result.n_pred, result.n_match])
    assert (counts == ref_counts).all(), (counts, ref_counts)
    for image in data:  # image by image too, so no error can cancel out in the sums
        one = detection_metrics([image[0]], [image[1]], [image[2]])
        assert [one.n_gt, one.n_pred, one.n_match] == list(reference_image(*image))

    reference = median_ms(lambda: [reference_image(*image) for image in data], REPEATS)
    ours = median_ms(lambda: detection_metrics(gts, ignores, preds), 50)
    ref_ms, new_ms = reference.wall_ms / IMAGES, ours.wall_ms / IMAGES
    print("machine: " + describe(f"torch {torch.__version__}", f"shapely {shapely.__version__}"))
    print(
        f"{IMAGES} images, {BOXES} GT ({DONT_CARE} don't-care) and {BOXES} predictions each; "
        f"same counts: gt {counts[0]}, pred {counts[1]}, match {counts[2]}, "
        f"hmean {result.hmean:.4f}"
    )
    print(f"reference (pair by pair, shapely): {ref_ms:.2f} ms per image (median)")
    print(f"detection_metrics:                 {new_ms:.3f} ms per image (median)")


if __name__ == "__main__":
    main()
