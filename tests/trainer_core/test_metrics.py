"""ICDAR 2015 H-mean: known answers built by hand, and agreement with a pair-by-pair count."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from trainer_core.metrics import DetectionMetrics, _convex_quad_intersections, detection_metrics


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned box, corners clockwise from top-left."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def one_image(
    gts: list[np.ndarray],
    preds: list[np.ndarray],
    ignore: list[bool] | None = None,
    **kwargs: object,
) -> DetectionMetrics:
    return detection_metrics([gts], [ignore or [False] * len(gts)], [preds], **kwargs)


def shifted(box: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    return box + np.array([dx, dy])


A, B = rect(0, 0, 100, 20), rect(0, 40, 100, 60)


def test_perfect() -> None:
    m = one_image([A, B], [B.copy(), A.copy()])
    assert (m.precision, m.recall, m.hmean) == (1.0, 1.0, 1.0)
    assert (m.n_gt, m.n_pred, m.n_match) == (2, 2, 2)


def test_miss() -> None:
    m = one_image([A, B], [shifted(A, 1, 1)])
    assert (m.precision, m.recall) == (1.0, 0.5)
    assert m.hmean == pytest.approx(2 / 3)


def test_false_alarm() -> None:
    m = one_image([A], [A, rect(200, 200, 250, 220)])
    assert (m.precision, m.recall, m.n_pred) == (0.5, 1.0, 2)


def test_prediction_on_dont_care_is_ignored_and_dont_care_is_no_miss() -> None:
    care, dont = A, rect(200, 0, 300, 20)
    on_dont = rect(210, 2, 290, 18)  # all of it inside the don't-care box
    m = one_image([care, dont], [care, on_dont], ignore=[False, True])
    assert (m.n_gt, m.n_pred, m.n_match) == (1, 1, 1)
    assert (m.precision, m.recall) == (1.0, 1.0)


def test_prediction_mostly_off_dont_care_is_a_false_alarm() -> None:
    dont = rect(200, 0, 300, 20)
    straddling = rect(260, 0, 360, 20)  # 40 % of it on the don't-care box
    m = one_image([A, dont], [A, straddling], ignore=[False, True])
    assert (m.n_pred, m.n_match, m.precision) == (2, 1, 0.5)


def test_dont_care_gt_cannot_be_matched() -> None:
    m = one_image([A], [A], ignore=[True])
    assert (m.n_gt, m.n_pred, m.n_match) == (0, 0, 0)


def test_split_box_does_not_match() -> None:
    halves = [rect(0, 0, 50, 20), rect(50, 0, 100, 20)]  # IoU exactly 0.5 each: not above
    m = one_image([A], halves)
    assert (m.n_match, m.precision, m.recall) == (0, 0.0, 0.0)


def test_merged_box_does_not_match() -> None:
    words = [rect(0, 0, 50, 20), rect(55, 0, 105, 20)]
    m = one_image(words, [rect(0, 0, 105, 20)])  # IoU 50/105 with each
    assert (m.n_match, m.hmean) == (0, 0.0)


@pytest.mark.parametrize(("shift", "matched"), [(33.0, 1), (34.0, 0)])
def test_iou_just_above_and_below_half(shift: float, matched: int) -> None:
    # IoU of a 100-wide box and its copy shifted by s is (100 - s) / (100 + s): 0.504, 0.493.
    m = one_image([A], [shifted(A, shift)])
    assert m.n_match == matched


def test_iou_threshold_is_a_parameter() -> None:
    assert one_image([A], [shifted(A, 20)]).n_match == 1  # IoU 0.667
    assert one_image([A], [shifted(A, 20)], iou_threshold=0.7).n_match == 0


def test_first_unmatched_prediction_wins_not_the_best() -> None:
    fair, exact = rect(0, 0, 60, 20), A.copy()  # IoU 0.6, then 1.0
    m = one_image([A], [fair, exact])
    assert (m.n_match, m.n_pred) == (1, 2)
    # One to one: the second ground truth may not reuse the taken prediction.
    m = one_image([A, A.copy()], [A.copy()])
    assert (m.n_gt, m.n_match) == (2, 1)


def test_empty_images_follow_the_script() -> None:
    nothing = detection_metrics([[]], [[]], [[]])
    assert (nothing.precision, nothing.recall, nothing.hmean) == (0.0, 0.0, 0.0)
    per_image = detection_metrics([[]], [[]], [[]], average="image")
    assert (per_image.precision, per_image.recall, per_image.hmean) == (1.0, 1.0, 1.0)
    only_preds = detection_metrics([[]], [[]], [[A]], average="image")
    assert (only_preds.precision, only_preds.recall, only_preds.hmean) == (0.0, 1.0, 0.0)
    only_gt = detection_metrics([[A]], [[False]], [[]], average="image")
    assert (only_gt.precision, only_gt.recall, only_gt.n_gt) == (0.0, 0.0, 1)
    no_images = detection_metrics([], [], [], average="image")
    assert (no_images.hmean, no_images.n_gt) == (0.0, 0)


def test_image_average_differs_from_dataset_counts() -> None:
    gts = [[A], [rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(40, 0, 50, 10)]]
    ignore = [[False], [False] * 3]
    preds = [[A], []]
    dataset = detection_metrics(gts, ignore, preds)
    assert (dataset.precision, dataset.recall) == (1.0, 0.25)
    assert dataset.hmean == pytest.approx(0.4)
    image = detection_metrics(gts, ignore, preds, average="image")
    assert (image.precision, image.recall, image.hmean) == (0.5, 0.5, 0.5)
    assert (image.n_gt, image.n_pred, image.n_match) == (4, 1, 1)


def test_self_intersecting_polygons_are_repaired_not_dropped() -> None:
    bow_tie = np.array([[0, 0], [100, 20], [100, 0], [0, 20]], np.float64)  # corners swapped
    m = one_image([bow_tie], [bow_tie.copy()])
    assert (m.n_gt, m.n_pred, m.n_match) == (1, 1, 1)
    m = one_image([A], [bow_tie])  # half the box's area: IoU 0.5, a false alarm
    assert (m.n_pred, m.n_match) == (1, 0)


def test_degenerate_polygons_count_without_matching() -> None:
    line = np.array([[0, 0], [50, 0], [100, 0], [50, 0]], np.float64)
    two_points = np.array([[0, 0], [100, 20]], np.float64)
    nan = np.array([[0, 0], [np.nan, 0], [100, 20], [0, 20]], np.float64)
    m = one_image([A, line], [A, two_points, nan, line])
    assert (m.n_gt, m.n_pred, m.n_match) == (2, 4, 1)
    m = one_image([two_points], [nan])
    assert (m.n_gt, m.n_pred, m.n_match) == (1, 1, 0)


def test_polygons_with_different_point_counts() -> None:
    pentagon = np.array([[0, 0], [50, -5], [100, 0], [100, 20], [0, 20]], np.float64)
    m = one_image([pentagon, B], [A, B])
    assert (m.n_match, m.n_gt, m.n_pred) == (2, 2, 2)


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="one entry per image"):
        detection_metrics([[A]], [], [[A]])
    with pytest.raises(ValueError, match="image 0: gt_ignore has 2 flags for 1 polygons"):
        detection_metrics([[A]], [[False, True]], [[A]])
    with pytest.raises(ValueError, match="average='mean'"):
        detection_metrics([[A]], [[False]], [[A]], average="mean")  # type: ignore[arg-type]


def pairwise_counts(
    gts: list[np.ndarray], ignore: list[bool], preds: list[np.ndarray]
) -> tuple[int, int, int]:
    """The script's counting, every pair computed: what the vectorized version must equal."""
    g, d = [Polygon(x) for x in gts], [Polygon(x) for x in preds]
    dont = [i for i, flag in enumerate(ignore) if flag]
    skipped = {
        j for j, p in enumerate(d) if any(g[i].intersection(p).area > 0.5 * p.area for i in dont)
    }
    taken: set[int] = set()
    for i, pg in enumerate(g):
        if i in dont:
            continue
        for j, pd in enumerate(d):
            inter = pg.intersection(pd).area
            if j not in taken and j not in skipped and inter / (pg.area + pd.area - inter) > 0.5:
                taken.add(j)
                break
    return len(g) - len(dont), len(d) - len(skipped), len(taken)


def test_agrees_with_pair_by_pair_counting_on_random_scenes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(6):
        gts = [
            cv2.boxPoints(
                (tuple(rng.uniform(0, 300, 2)), tuple(rng.uniform(10, 80, 2)), rng.uniform(-30, 30))
            )
            for _ in range(15)
        ]
        ignore = list(rng.random(15) < 0.3)
        # Moved and resized copies: IoUs spread around the threshold, polygons stay valid.
        preds = [
            (g - g.mean(0)) * rng.uniform(0.7, 1.3) + g.mean(0) + rng.normal(0, 8, 2)
            for g in gts
            if rng.random() < 0.8
        ]
        preds += [rect(*rng.uniform(0, 300, 2), *rng.uniform(300, 360, 2)) for _ in range(3)]
        m = one_image(gts, preds, ignore=ignore)
        assert (m.n_gt, m.n_pred, m.n_match) == pairwise_counts(gts, ignore, preds)


def test_convex_quad_clip_agrees_with_shapely() -> None:
    rng = np.random.default_rng(3)
    a = np.array(
        [
            cv2.boxPoints(
                (tuple(rng.uniform(0, 60, 2)), tuple(rng.uniform(2, 40, 2)), rng.uniform(-90, 90))
            )
            for _ in range(300)
        ],
        np.float64,
    )
    b = np.array(
        [
            cv2.boxPoints(
                (tuple(rng.uniform(0, 60, 2)), tuple(rng.uniform(2, 40, 2)), rng.uniform(-90, 90))
            )
            for _ in range(300)
        ],
        np.float64,
    )
    b[:20] = a[:20]  # identical
    b[20:40] = a[20:40, ::-1]  # same quad, other orientation
    b[40:60] = a[40:60] + 0.5  # shifted: collinear-free partial overlap
    b[60:80] = (a[60:80] - a[60:80].mean(1, keepdims=True)) * 0.5 + a[60:80].mean(
        1, keepdims=True
    )  # inside
    b[80:100] = a[80:100] + 1000.0  # disjoint
    b[100] = rect(10, 0, 20, 10)  # sharing an edge with a[100] only
    a[100] = rect(0, 0, 10, 10)
    # Either corner order, independently for each side.
    flip_a, flip_b = rng.random(300) < 0.5, rng.random(300) < 0.5
    a[flip_a], b[flip_b] = a[flip_a][:, ::-1], b[flip_b][:, ::-1]
    expected = shapely.area(shapely.intersection(shapely.polygons(a), shapely.polygons(b)))
    np.testing.assert_allclose(_convex_quad_intersections(a, b), expected, rtol=1e-9, atol=1e-9)
