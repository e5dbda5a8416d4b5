"""Post-processing: shrunk boxes come back at their original corners; odd maps never crash."""

from __future__ import annotations

import cv2
import numpy as np
import pyclipper
import pytest
from shapely.geometry import Polygon

from trainer_core.config import PostprocessConfig
from trainer_core.postprocess import polygons_from_prob, postprocess_config_kwargs


def shrunk(polygon: np.ndarray, ratio: float = 0.4) -> np.ndarray:
    """The DB kernel: ``polygon`` moved inward by A(1 - r^2)/L."""
    shape = Polygon(polygon)
    distance = shape.area * (1 - ratio**2) / shape.length
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(
        np.round(polygon).astype(np.int64), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON
    )
    return np.array(offset.Execute(-distance)[0], np.int32)


def kernel_map(polygons: list[np.ndarray], size: tuple[int, int] = (128, 160)) -> np.ndarray:
    prob = np.zeros(size, np.float32)
    for polygon in polygons:
        cv2.fillPoly(prob, [shrunk(polygon)], 1.0)
    return prob


def clockwise_from_top_left(quad: np.ndarray) -> np.ndarray:
    """Corners as DBNet orders them: top-left, top-right, bottom-right, bottom-left."""
    by_x = quad[np.argsort(quad[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1])]
    right = by_x[2:][np.argsort(by_x[2:, 1])]
    return np.array([left[0], right[0], right[1], left[1]])


# Word-like boxes: DB's unclip ratio 1.5 inverts its shrink ratio 0.4 closely at these
# aspect ratios (exactly for squares); longer boxes come back thinner, see below.
BOXES = [
    np.array([[10, 10], [60, 10], [60, 34], [10, 34]], np.float32),
    np.array([[80, 20], [140, 20], [140, 50], [80, 50]], np.float32),
    clockwise_from_top_left(cv2.boxPoints(((60, 90), (56, 28), 10))),
]


def test_round_trip_recovers_the_corners() -> None:
    quads, scores = polygons_from_prob(kernel_map(BOXES))
    assert len(quads) == len(BOXES)
    assert all(s > 0.9 for s in scores)
    for expected in BOXES:
        error = min(np.abs(q - expected).max() for q in quads)
        assert error <= 2.0, (expected, quads)


def test_long_lines_need_a_larger_unclip_ratio() -> None:
    line = np.array([[5, 40], [155, 40], [155, 64], [5, 64]], np.float32)  # 150 x 24
    prob = kernel_map([line])
    (thin,), _ = polygons_from_prob(prob)
    assert thin[2, 1] - thin[1, 1] < 24 - 6  # comes back a third too thin
    # The ratio that inverts the shrink for this box: shrink distance * kernel L / kernel A.
    shrink = 150 * 24 * (1 - 0.4**2) / (2 * (150 + 24))
    kernel_w, kernel_h = 150 - 2 * shrink, 24 - 2 * shrink
    ratio = shrink * 2 * (kernel_w + kernel_h) / (kernel_w * kernel_h)
    (quad,), _ = polygons_from_prob(prob, unclip_ratio=ratio)
    assert np.abs(quad - line).max() <= 2.0, quad


def test_quads_are_clockwise_from_top_left() -> None:
    quads, _ = polygons_from_prob(kernel_map(BOXES))
    for quad in quads:
        assert quad.shape == (4, 2)
        np.testing.assert_array_equal(quad, clockwise_from_top_left(quad))
        # Clockwise on screen (y down) is a positive shoelace sum.
        x, y = quad[:, 0], quad[:, 1]
        assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0


def test_polygon_output_covers_the_original() -> None:
    polygons, _ = polygons_from_prob(kernel_map(BOXES), output="polygon")
    assert len(polygons) == len(BOXES)
    for expected in BOXES:
        best = max(
            Polygon(p).intersection(Polygon(expected)).area
            / Polygon(p).union(Polygon(expected)).area
            for p in polygons
        )
        assert best > 0.8  # 1 px lost per side to the pixel grid, plus the rounded corners


def test_box_thresh_drops_faint_regions() -> None:
    prob = kernel_map(BOXES[:1]) * 0.5
    assert polygons_from_prob(prob) == ([], [])
    quads, scores = polygons_from_prob(prob, box_thresh=0.4)
    assert len(quads) == 1
    assert scores[0] == pytest.approx(0.5)


def test_polygon_score_leaves_out_the_rectangles_background() -> None:
    prob = np.zeros((64, 64), np.float32)
    cv2.fillPoly(prob, [np.array([[5, 5], [60, 5], [5, 60]], np.int32)], 0.9)  # a triangle
    _, (fast,) = polygons_from_prob(prob, box_thresh=0.0)
    _, (exact,) = polygons_from_prob(prob, box_thresh=0.0, score_mode="polygon")
    assert exact == pytest.approx(0.9, abs=0.01)
    assert fast < 0.6  # its rectangle is half background
    quads, _ = polygons_from_prob(prob, box_thresh=0.8, score_mode="polygon")
    assert len(quads) == 1


def test_min_size_and_max_candidates() -> None:
    prob = np.zeros((64, 64), np.float32)
    prob[10:12, 5:60] = 1.0  # two pixels tall
    assert polygons_from_prob(prob) == ([], [])
    assert len(polygons_from_prob(prob, min_size=1.0)[0]) == 1
    many = kernel_map(BOXES)
    assert len(polygons_from_prob(many, max_candidates=2)[0]) == 2


@pytest.mark.parametrize("output", ["quad", "polygon"])
def test_degenerate_maps_never_raise(output: str) -> None:
    zeros = np.zeros((32, 32), np.float32)
    assert polygons_from_prob(zeros, output=output) == ([], [])

    dots = zeros.copy()
    dots[5, 5] = dots[20, 7] = dots[31, 31] = 1.0
    assert polygons_from_prob(dots, output=output) == ([], [])
    polygons_from_prob(dots, output=output, min_size=0.0, box_thresh=0.0)

    ones = np.ones((32, 48), np.float32)
    (region,), (score,) = polygons_from_prob(ones, output=output)
    assert score == pytest.approx(1.0)
    assert region[:, 0].min() == 0 and region[:, 0].max() == 48  # clipped to the map
    assert region[:, 1].min() == 0 and region[:, 1].max() == 32

    ring = zeros.copy()
    cv2.rectangle(ring, (4, 4), (27, 27), 1.0, thickness=4)  # outer and inner contour
    regions, _ = polygons_from_prob(ring, output=output, box_thresh=0.0)
    assert 1 <= len(regions) <= 2

    noise = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    polygons_from_prob(noise, output=output, box_thresh=0.0, min_size=0.0)


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"prob: expected a 2-D \(H, W\) map"):
        polygons_from_prob(np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="output='box'"):
        polygons_from_prob(np.zeros((32, 32)), output="box")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score_mode='slow'"):
        polygons_from_prob(np.zeros((32, 32)), score_mode="slow")  # type: ignore[arg-type]


def test_config_kwargs_reach_the_function() -> None:
    prob = kernel_map(BOXES)
    default = polygons_from_prob(prob, **postprocess_config_kwargs(PostprocessConfig()))
    np.testing.assert_array_equal(default[0], polygons_from_prob(prob)[0])
    wider = polygons_from_prob(
        prob, **postprocess_config_kwargs(PostprocessConfig(unclip_ratio=2.5))
    )
    assert Polygon(wider[0][0]).area > Polygon(default[0][0]).area
