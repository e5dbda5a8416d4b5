"""Images as people see them: a folder's files in order, decoded upright (EXIF orientation).

Training reads images as stored (the annotation tools' pixel grid, see
:mod:`trainer_core.data.annotations`); a phone photo stored sideways with an EXIF
orientation tag is shown upright by every viewer, and that upright image is what inference
reads and what its coordinates refer to. :class:`Orientation` maps points between the two
grids, so predictions can still be scored against annotations in the stored grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer_core.data.annotations import IMAGE_SUFFIXES, image_size, unreadable_reason
from trainer_core.errors import DataError

__all__ = ["Orientation", "UnreadableImage", "UprightImage", "list_images", "read_upright"]

_ORIENTATION_TAG = 0x0112


class UnreadableImage(DataError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""


@dataclass(frozen=True)
class Orientation:
    """An EXIF orientation (1-8) of an image stored ``height`` x ``width``.

    ``to_upright`` maps points from the stored grid to the upright one, ``to_stored`` back;
    coordinates are continuous (pixel edges: the stored image spans ``[0, width] x [0,
    height]``), so a box's corners map to the rotated box's corners.

    Example:
        >>> o = Orientation(6, height=100, width=300)  # stored sideways, turn 90° clockwise
        >>> o.upright_hw
        (300, 100)
        >>> o.to_upright(np.array([[0.0, 0.0]])).tolist()  # the top-left corner goes top-right
        [[100.0, 0.0]]
    """

    code: int
    height: int
    width: int

    @property
    def swaps_axes(self) -> bool:
        return self.code in (5, 6, 7, 8)

    @property
    def upright_hw(self) -> tuple[int, int]:
        return (self.width, self.height) if self.swaps_axes else (self.height, self.width)

    def image(self, stored: np.ndarray) -> np.ndarray:
        """The stored pixels turned upright."""
        ops = {
            1: lambda a: a,
            2: lambda a: a[:, ::-1],
            3: lambda a: a[::-1, ::-1],
            4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1),
            6: lambda a: a.swapaxes(0, 1)[:, ::-1],
            7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
            8: lambda a: a.swapaxes(0, 1)[::-1],
        }
        return np.ascontiguousarray(ops[self.code](stored))

    def to_upright(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) stored-grid points in the upright image."""
        x, y = points[:, 0], points[:, 1]
        w, h = self.width, self.height
        cols = {
            1: (x, y),
            2: (w - x, y),
            3: (w - x, h - y),
            4: (x, h - y),
            5: (y, x),
            6: (h - y, x),
            7: (h - y, w - x),
            8: (y, w - x),
        }[self.code]
        return np.stack(cols, axis=1).astype(points.dtype, copy=False)

    def to_stored(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) upright-image points in the stored grid (inverse of :meth:`to_upright`)."""
        u, v = points[:, 0], points[:, 1]
        w, h = self.width, self.height
        cols = {
            1: (u, v),
            2: (w - u, v),
            3: (w - u, h - v),
            4: (u, h - v),
            5: (v, u),
            6: (v, h - u),
            7: (w - v, h - u),
            8: (w - v, u),
        }[self.code]
        return np.stack(cols, axis=1).astype(points.dtype, copy=False)


@dataclass(frozen=True)
class UprightImage:
    """An RGB uint8 image turned upright, and how it was stored."""

    pixels: np.ndarray
    orientation: Orientation


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not its subfolders), sorted by name.

    Raises:
        DataError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (1 when there is none or it is not 1-8)."""
    try:
        with Image.open(path) as image:
            code = image.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return 1
    return code if isinstance(code, int) and 1 <= code <= 8 else 1


def read_upright(path: Path) -> UprightImage:
    """Decode ``path`` as RGB and turn it upright by its EXIF orientation.

    Raises:
        UnreadableImage: missing, corrupt, truncated (a JPEG without its end marker, which
            decoders would read half) or not an image; the message names the file.
    """
    path = Path(path)
    if image_size(path) is None:
        why = "missing" if not path.exists() else unreadable_reason(path)
        raise UnreadableImage(f"{path}: image {why}")
    stored = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if stored is None:
        raise UnreadableImage(f"{path}: image unreadable")
    orientation = Orientation(_exif_orientation(path), *stored.shape[:2])
    rgb = cv2.cvtColor(stored, cv2.COLOR_BGR2RGB)
    return UprightImage(orientation.image(rgb), orientation)
