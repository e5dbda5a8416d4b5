"""Where an image's pixels land in the network's square input, and how to go back exactly.

The evaluation transform (:func:`~trainer_core.data.transforms.eval_transform`) resizes the
longest side to the input size and pads right and bottom. The resized image is
``round(h * s) x round(w * s)`` with ``s = size / max(h, w)``, so along the short side the
true factor is ``round(w * s) / w``, not ``s``: dividing by ``s`` alone is off by up to
``0.5 / s`` original pixels (1.7 px on a 2200 px receipt at 640). :class:`Letterbox` uses
each axis's own factor, so a point goes in and comes back where it started.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Letterbox"]


@dataclass(frozen=True)
class Letterbox:
    """An ``height`` x ``width`` image in a ``size`` x ``size`` input.

    Coordinates are continuous (pixel edges), as the post-processing returns them: the image
    spans ``[0, width] x [0, height]`` and its resized copy ``[0, new_width] x [0,
    new_height]`` at the input's top-left corner.

    Example:
        >>> box = Letterbox(size=640, height=2200, width=750)
        >>> box.new_hw
        (640, 218)
        >>> box.to_original(box.to_network(np.array([[700.0, 2100.0]]))).round(3).tolist()
        [[700.0, 2100.0]]
    """

    size: int
    height: int
    width: int

    @property
    def scale(self) -> float:
        """The resize factor of the longest side (what the transform reports)."""
        return self.size / max(self.height, self.width)

    @property
    def new_hw(self) -> tuple[int, int]:
        """The resized image's (height, width) inside the input, as albumentations rounds it."""
        s = self.scale
        return max(1, round(self.height * s)), max(1, round(self.width * s))

    @property
    def factors(self) -> np.ndarray:
        """(x, y) original pixels per network pixel."""
        new_h, new_w = self.new_hw
        return np.array([self.width / new_w, self.height / new_h])

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) original-image points in the network input's pixels."""
        return (np.asarray(points, np.float64) / self.factors).astype(np.float32)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) network-input points in the original image, clipped to its pixels
        (``0 .. width - 1``, as the annotation readers clip ground truth)."""
        out = np.asarray(points, np.float64) * self.factors
        np.clip(out, 0, [self.width - 1, self.height - 1], out=out)
        return out.astype(np.float32)

    def crop(self, prob: np.ndarray) -> np.ndarray:
        """The part of an input-sized map that covers the image (the padding cut off)."""
        new_h, new_w = self.new_hw
        return prob[..., :new_h, :new_w]
