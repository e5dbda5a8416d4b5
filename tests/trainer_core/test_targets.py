"""DB targets: shrink distance, ranges and masks, robustness, and the per-edge reference."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from trainer_core.data.targets import db_targets, shrink_distance

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.py"


@pytest.fixture(scope="module")
def reference() -> Iterator[ModuleType]:
    """benchmarks/targets.py: its per-polygon, per-edge numpy border map is the oracle."""
    # The benchmark imports its sibling benchmarks/machine.py, as a script run from there.
    sys.path.insert(0, str(BENCHMARK.parent))
    spec = importlib.util.spec_from_file_location("targets_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARK.parent))


def box(x0: float, y0: float, w: float, h: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float32)


def test_rectangle_shrink_distance_and_probability_region() -> None:
    rect = box(10, 20, 100, 20)
    assert shrink_distance(rect, 0.4) == pytest.approx(2000 * 0.84 / 240)  # 7.0
    prob, prob_mask, thresh, thresh_mask = db_targets((64, 128), [rect], [False])
    ys, xs = np.nonzero(prob)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (17, 103, 27, 33)  # 86 x 6
    assert prob.sum() == 87 * 7
    # Dilated by 7: the threshold mask reaches 7 px out, and the map peaks on the edge.
    ys, xs = np.nonzero(thresh_mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (3, 117, 13, 47)
    assert thresh[20, 60] == pytest.approx(0.7) and thresh[30, 60] == pytest.approx(0.3)
    assert thresh[16, 60] == pytest.approx(0.3 + 0.4 * (1 - 4 / 7))
    assert prob_mask.min() == 1.0


def test_ranges_dtypes_and_no_polygons() -> None:
    maps = db_targets((40, 50), [], [])
    assert all(m.dtype == np.float32 and m.shape == (40, 50) for m in maps)
    prob, prob_mask, thresh, thresh_mask = maps
    assert prob.max() == 0 and prob_mask.min() == 1 and thresh_mask.max() == 0
    assert np.all(thresh == np.float32(0.3))
    prob, _, thresh, thresh_mask = db_targets((64, 64), [box(5, 5, 50, 30)], [False])
    assert set(np.unique(prob)) == {0.0, 1.0} and set(np.unique(thresh_mask)) == {0.0, 1.0}
    assert thresh.min() >= 0.3 - 1e-6 and thresh.max() <= 0.7 + 1e-6


def test_dont_care_and_too_small_polygons_are_masked_out() -> None:
    word, dont_care, tiny = box(4, 4, 40, 16), box(4, 30, 40, 16), box(50, 4, 6, 5)
    prob, prob_mask, _, thresh_mask = db_targets(
        (64, 64), [word, dont_care, tiny], [False, True, False], min_text_size=8
    )
    for masked in (dont_care, tiny):
        region = np.zeros((64, 64), np.uint8)
        cv2.fillPoly(region, [np.round(masked).astype(np.int32)], 1)
        inside = region > 0
        assert prob_mask[inside].max() == 0 and prob[inside].max() == 0
    assert prob[12, 24] == 1 and prob_mask[12, 24] == 1
    assert thresh_mask[38, 24] == 0  # don't-care regions get no threshold target


@pytest.mark.parametrize(
    "polygon",
    [
        box(10, 10, 2, 2),  # shrinks to nothing
        np.array([[10, 10], [30, 10], [50, 10.4]], np.float32),  # a sliver
        np.array([[10, 10], [30, 10], [20, 10]], np.float32),  # zero area
        np.array([[10, 10], [30, 10], [30, 10], [10, 10]], np.float32),  # repeated points
        np.array([[10, np.nan], [30, 10], [30, 30]], np.float32),  # NaN
        np.array([[10, 10], [30, 10]], np.float32),  # two points
        box(-100, -100, 20, 20),  # outside the image
        np.array([[10, 10], [40, 40], [40, 10], [10, 40]], np.float32),  # self-intersecting
    ],
)
def test_degenerate_polygons_do_not_crash(polygon: np.ndarray) -> None:
    prob, _, thresh, _ = db_targets(
        (48, 64), [polygon, box(5, 25, 40, 16)], [False, False], min_text_size=0
    )
    assert np.isfinite(thresh).all() and prob[33, 25] == 1


def test_polygon_whose_shrink_holds_no_pixel_is_masked() -> None:
    # A 0.3 px square around a pixel corner: its shrunk region lies more than half a pixel
    # from every pixel centre (where pyclipper would return an empty path).
    speck = box(10.35, 10.35, 0.3, 0.3)
    prob, prob_mask, _, thresh_mask = db_targets((32, 32), [speck], [False], min_text_size=0)
    assert prob.max() == 0 and thresh_mask.max() == 0
    assert prob_mask[10:12, 10:12].max() == 0 and prob_mask.sum() == 32 * 32 - 4


def test_regions_take_pixels_within_half_a_pixel() -> None:
    """As cv2.fillPoly draws MhLiao's rounded pyclipper polygons on axis-aligned boxes."""
    prob, *_ = db_targets((40, 60), [box(5.2, 5.2, 40, 20)], [False])
    d = shrink_distance(box(5.2, 5.2, 40, 20))  # 5.6: shrunk box 10.8..39.6 x 10.8..19.6
    ys, xs = np.nonzero(prob)
    assert d == pytest.approx(5.6)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (11, 40, 11, 20)


def test_orientation_does_not_matter() -> None:
    quad = np.array([[10, 12], [50, 8], [52, 30], [12, 33]], np.float32)
    a = db_targets((48, 64), [quad], [False])
    b = db_targets((48, 64), [quad[::-1].copy()], [False])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_matches_the_per_edge_reference(reference: ModuleType) -> None:
    boxes = reference.random_text_boxes(n=12, size=128, seed=3, height=(6, 20))
    # Curved text (non-convex, 8 points) and an L shape take the generic path.
    curve = np.array(
        [[20, 90], [50, 80], [80, 82], [110, 95], [108, 110], [80, 98], [50, 96], [22, 106]],
        np.float32,
    )
    ell = np.array([[60, 20], [100, 20], [100, 30], [75, 30], [75, 60], [60, 60]], np.float32)
    polygons = [*boxes, curve, ell]
    ref_thresh, ref_mask = reference.reference_border_map((128, 128), polygons)
    _, _, thresh, thresh_mask = db_targets(
        (128, 128), polygons, [False] * len(polygons), min_text_size=0
    )
    assert np.abs(thresh - ref_thresh).max() <= 1e-3
    assert (thresh_mask != ref_mask).sum() <= 4  # pixels exactly at distance D, float rounding
