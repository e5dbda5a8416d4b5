"""Images read upright by their EXIF orientation, points mapped between the two grids, and
unreadable files named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from trainer_core.data.image_files import (
    Orientation,
    UnreadableImage,
    list_images,
    read_upright,
)
from trainer_core.errors import DataError

BROKEN = Path(__file__).parent / "data" / "broken"


def _stored(height: int = 30, width: int = 50) -> np.ndarray:
    """An RGB image no flip or turn leaves unchanged, with one red pixel at (x=7, y=3)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    image[3, 7] = (255, 0, 0)
    return image


def _save_with_orientation(path: Path, rgb: np.ndarray, code: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = code
    Image.fromarray(rgb).save(path, exif=exif)
    return path


@pytest.mark.parametrize("code", range(1, 9))
def test_images_are_read_as_viewers_show_them(tmp_path: Path, code: int) -> None:
    stored = _stored()
    path = _save_with_orientation(tmp_path / f"o{code}.png", stored, code)
    image = read_upright(path)
    with Image.open(path) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    np.testing.assert_array_equal(image.pixels, expected)
    assert image.orientation == Orientation(code, 30, 50)
    assert image.pixels.shape[:2] == image.orientation.upright_hw

    # The red pixel's centre lands on the red pixel of the upright image, and back.
    centre = np.array([[7.5, 3.5]])
    x, y = image.orientation.to_upright(centre)[0]
    assert tuple(image.pixels[int(y), int(x)]) == (255, 0, 0)
    np.testing.assert_allclose(image.orientation.to_stored(np.array([[x, y]])), centre)


def test_a_folder_is_listed_in_name_order_images_only(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "c.txt", "d.jpeg"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.JPG", "b.png", "d.jpeg"]
    with pytest.raises(DataError, match="missing: not a folder"):
        list_images(tmp_path / "missing")


def test_unreadable_images_are_named(tmp_path: Path) -> None:
    corrupt = shutil.copy(BROKEN / "icdar" / "images" / "corrupt.jpg", tmp_path / "corrupt.jpg")
    with pytest.raises(UnreadableImage, match=r"corrupt\.jpg: image unreadable"):
        read_upright(Path(corrupt))
    good = _save_with_orientation(tmp_path / "good.jpg", _stored(), 1).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(UnreadableImage, match=r"cut\.jpg: image truncated"):
        read_upright(tmp_path / "cut.jpg")
