"""Augmentation pipelines: eval is invertible, train keeps polygons on the text."""

from __future__ import annotations

import numpy as np
import pytest

from trainer_core.config import TrainConfig
from trainer_core.data.transforms import eval_transform, train_transform


def box(x0: float, y0: float, w: float, h: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float32)


@pytest.mark.parametrize("shape", [(300, 500), (700, 240), (64, 64), (50, 31)])
def test_eval_maps_forward_and_back_within_a_pixel(shape: tuple[int, int]) -> None:
    h, w = shape
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
    polygon = np.array([[0, 0], [w - 1, 3], [w * 0.7, h - 1], [2, h * 0.6]], np.float32)
    out = eval_transform(128)(image, [polygon], [False])
    assert out.image.shape == (128, 128, 3)
    assert out.scale == pytest.approx(128 / max(h, w))
    # Padding is on the right and bottom: the image sits at the top left.
    resized_h, resized_w = round(h * out.scale), round(w * out.scale)
    assert (
        out.image[resized_h:].max(initial=0) == 0 and out.image[:, resized_w:].max(initial=0) == 0
    )
    np.testing.assert_allclose(out.polygons[0] / out.scale, polygon, atol=1.0)


def test_train_output_shape_and_polygons_inside() -> None:
    cfg = TrainConfig(input_size=96, augment={"rotate": 30, "scale": (0.5, 2.0), "crop_p": 1.0})
    transform = train_transform(cfg)
    image = np.full((200, 300, 3), 255, np.uint8)
    polygons = [box(10, 10, 80, 20), box(150, 120, 120, 30), box(20, 150, 40, 30)]
    for seed in range(8):
        transform.set_seed(seed)
        out = transform(image, polygons, [False, True, False])
        assert out.image.shape == (96, 96, 3) and out.image.dtype == np.uint8
        assert len(out.polygons) == len(out.ignore)
        # The crop always keeps a legible box.
        assert not all(out.ignore)
        for p in out.polygons:
            assert p.dtype == np.float32 and (p >= -1e-3).all() and (p <= 95 + 1e-3).all()


def test_train_follows_the_pixels() -> None:
    """A white box on black: after augmentation its polygon still covers white pixels."""
    cfg = TrainConfig(input_size=128, augment={"rotate": 20, "crop_p": 0.5, "color_jitter": 0.0})
    transform = train_transform(cfg)
    image = np.zeros((160, 200, 3), np.uint8)
    image[40:80, 50:150] = 255
    for seed in range(6):
        transform.set_seed(seed)
        out = transform(image, [box(50, 40, 99, 39)], [False])
        [polygon] = out.polygons
        centre = np.round(polygon.mean(axis=0)).astype(int)
        assert out.image[centre[1], centre[0]].min() > 200


def test_polygons_pushed_out_are_clipped_or_dropped_with_their_flags() -> None:
    cfg = TrainConfig(input_size=64, augment={"enabled": False})
    transform = train_transform(cfg)
    image = np.zeros((100, 100, 3), np.uint8)
    inside, outside, across = box(10, 10, 30, 10), box(150, 150, 20, 10), box(80, 40, 60, 20)
    out = transform(image, [inside, outside, across], [True, False, True])
    assert out.ignore == (True, True)
    np.testing.assert_allclose(out.polygons[0], inside * 0.64, atol=1e-4)
    # The part of ``across`` inside the 100 px image: x from 80 to 100 -> 51.2 to 63.
    xs = out.polygons[1][:, 0]
    assert xs.min() == pytest.approx(51.2, abs=1e-3) and xs.max() == pytest.approx(63, abs=1e-3)


def test_train_is_reproducible_by_seed() -> None:
    cfg = TrainConfig(input_size=64)
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8)
    polygons = [box(10, 10, 60, 20)]
    a, b = train_transform(cfg), train_transform(cfg)
    out_a, out_b = a(image, polygons, [False]), b(image, polygons, [False])
    np.testing.assert_array_equal(out_a.image, out_b.image)
    a.set_seed(123)
    assert not np.array_equal(a(image, polygons, [False]).image, out_b.image)
