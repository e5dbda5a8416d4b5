"""A synthetic text-detection dataset on disk, in UFO format, so the real readers load it.

Two styles:

- ``scene``: words and receipt-like rows drawn with ``cv2.putText`` (random strings, fonts,
  sizes, angles and colours) on textured backgrounds (gradients, noise, lines, blobs);
- ``receipt``: what the receipt detector is for: a tall white page of long, thin lines of
  small dark text, one under the other, then skewed a little, blurred and shadowed as a
  phone photo or a scanner leaves it.

Each region's polygon is the box around its ink, exact to a pixel (and moved with the page
when it is skewed). Some regions are blurred and marked illegible (don't care). Everything
derives from ``seed`` (image ``i`` from ``[seed, i]``): the same call writes the same bytes,
and image ``i`` does not depend on ``n_images``.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

__all__ = ["generate"]

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
_CHARS = string.ascii_uppercase + string.digits + "abcdefghkmnprstuwxyz"
_PLACEMENT_TRIES = 20


def generate(
    out_dir: Path,
    n_images: int = 32,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    *,
    regions: tuple[int, int] = (3, 8),
    text_height: tuple[float, float] | None = None,
    row_fraction: float = 0.3,
    illegible_fraction: float = 0.1,
    jpeg_quality: int = 95,
    style: Literal["scene", "receipt"] = "scene",
) -> Path:
    """Write ``n_images`` images to ``out_dir/images`` and their UFO ``annotations.json``.

    Args:
        out_dir: folder to write into (created; existing files of the same names replaced).
        n_images: number of images.
        size: ``(height, width)`` of every image.
        seed: everything derives from it.
        regions: inclusive range of text regions per image (fewer when they do not fit).
        text_height: range of text heights in pixels; default 4-12% of the shorter side
            (10-30 px at 256 px), large enough for a small DBNet to learn in a few epochs.
        row_fraction: share of long thin receipt-like rows among the regions.
        illegible_fraction: share of regions blurred and marked illegible (don't care).
        jpeg_quality: JPEG quality of the images.
        style: ``scene`` or ``receipt`` (see the module). Receipts fill the page with lines,
            so ``regions`` and ``row_fraction`` do not apply; their default text height is
            2.5-4.5% of the page height.

    Returns:
        The path of ``annotations.json``; the images are in ``out_dir/images``.

    Example:
        >>> ann = generate(Path("/tmp/synth"), n_images=4, size=(128, 128))  # doctest: +SKIP
        >>> samples = read_ufo(ann, ann.parent / "images")  # doctest: +SKIP
    """
    height, width = size
    if n_images < 1 or height < 16 or width < 16:
        raise ValueError(
            f"generate: need n_images >= 1 and a size of at least 16 px, got "
            f"n_images={n_images}, size={size}"
        )
    if style not in ("scene", "receipt"):
        raise ValueError(f"generate: style={style!r}; use 'scene' or 'receipt'")
    if not 1 <= regions[0] <= regions[1]:
        raise ValueError(f"generate: regions={regions} must be (low, high) with 1 <= low <= high")
    short = min(height, width)
    if text_height is not None:
        heights = text_height
    elif style == "receipt":
        heights = (0.025 * height, 0.045 * height)
    else:
        heights = (0.04 * short, 0.12 * short)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for i in range(n_images):
        rng = np.random.default_rng([seed, i])
        if style == "receipt":
            image, words = _render_receipt(rng, height, width, heights, illegible_fraction)
        else:
            image, words = _render_image(
                rng, height, width, regions, heights, row_fraction, illegible_fraction
            )
        name = f"synth_{i:05d}.jpg"
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise OSError(f"cannot encode {name}")
        (images_dir / name).write_bytes(encoded.tobytes())
        entries[name] = {"img_h": height, "img_w": width, "words": words}
    path = out_dir / "annotations.json"
    path.write_text(json.dumps({"images": entries}, indent=1))
    return path


def _render_image(
    rng: np.random.Generator,
    height: int,
    width: int,
    regions: tuple[int, int],
    heights: tuple[float, float],
    row_fraction: float,
    illegible_fraction: float,
) -> tuple[np.ndarray, dict[str, dict]]:
    """One BGR image and its UFO words."""
    image = _background(rng, height, width)
    occupied = np.zeros((height, width), np.uint8)
    words: dict[str, dict] = {}
    for _ in range(int(rng.integers(regions[0], regions[1] + 1))):
        is_row = rng.random() < row_fraction
        text_h = float(rng.uniform(*heights))
        region = _text_patch(rng, text_h, width, is_row)
        placed = _place(rng, region[1], occupied, is_row, text_h)
        if placed is None:
            continue
        matrix, polygon, box = placed
        illegible = rng.random() < illegible_fraction
        _composite(rng, image, region[0], matrix, box, illegible)
        words[str(len(words) + 1)] = {
            "points": np.round(polygon, 2).tolist(),
            "transcription": region[2],
            "illegibility": bool(illegible),
        }
    return image, words


def _render_receipt(
    rng: np.random.Generator,
    height: int,
    width: int,
    heights: tuple[float, float],
    illegible_fraction: float,
) -> tuple[np.ndarray, dict[str, dict]]:
    """A receipt page: lines of dark text top to bottom, then skew, shadow and blur."""
    paper = rng.uniform(215, 250) + rng.uniform(-6, 6, 3)
    image = np.clip(paper + rng.normal(0, rng.uniform(1, 5), (height, width, 3)), 0, 255)
    image = image.astype(np.uint8)
    margin_x, y = rng.uniform(0.04, 0.08) * width, rng.uniform(0.03, 0.08) * height
    polygons, texts, flags = [], [], []
    while True:
        text_h = float(rng.uniform(*heights))
        mask, corners, text = _text_patch(rng, text_h, int(width - 2 * margin_x), True)
        span = corners.max(axis=0) - corners.min(axis=0)
        if y + span[1] > height * 0.96:
            break
        # Items left-aligned, headers centred, amounts right-aligned.
        x = rng.choice(
            [margin_x, (width - span[0]) / 2, width - margin_x - span[0]], p=[0.7, 0.15, 0.15]
        )
        shift = np.array([x, y]) - corners.min(axis=0)
        matrix = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
        polygon = corners + shift
        box = _ink_box(polygon, width, height)
        illegible = rng.random() < illegible_fraction
        _composite(rng, image, mask, matrix, box, illegible)
        polygons.append(polygon)
        texts.append(text)
        flags.append(bool(illegible))
        y += span[1] * rng.uniform(1.3, 2.0) + (span[1] * 2 if rng.random() < 0.1 else 0)
    # The page skews a little as a photo of it would; its polygons move with it.
    skew = cv2.getRotationMatrix2D((width / 2, height / 2), float(rng.uniform(-2, 2)), 1.0)
    fill = tuple(float(c) for c in paper)
    image = cv2.warpAffine(image, skew, (width, height), borderValue=fill)
    ramp_angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.cos(ramp_angle) * xs / width + np.sin(ramp_angle) * ys / height
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    shadow = 1 - rng.uniform(0, 0.35) * ramp  # a hand or the phone over one side
    image = np.clip(image * shadow[..., None], 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.3, 1.0)))
    words = {}
    for i, (polygon, text, illegible) in enumerate(zip(polygons, texts, flags, strict=True)):
        moved = polygon @ skew[:, :2].T + skew[:, 2]
        moved = np.clip(moved, 0, [width - 1, height - 1])
        words[str(i + 1)] = {
            "points": np.round(moved, 2).tolist(),
            "transcription": text,
            "illegibility": illegible,
        }
    return image, words


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Base colour, a linear gradient, noise, and a few lines and blobs."""
    base = rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None]
    image = (
        base
        + ramp * rng.uniform(-60, 60, 3)
        + rng.normal(0, rng.uniform(2, 12), (height, width, 3))
    )
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 6))):
        p1 = tuple(int(v) for v in rng.integers(0, (width, height)))
        p2 = tuple(int(v) for v in rng.integers(0, (width, height)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.line(image, p1, p2, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):
        centre = tuple(int(v) for v in rng.integers(0, (width, height)))
        axes = tuple(int(v) for v in rng.integers(4, max(5, min(height, width) // 6), 2))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return image


def _random_text(rng: np.random.Generator, is_row: bool) -> str:
    if not is_row:
        return "".join(rng.choice(list(_CHARS), int(rng.integers(2, 9))))
    words = ["".join(rng.choice(list(_CHARS), int(rng.integers(1, 7)))) for _ in range(6)]
    return " ".join(words)


def _text_patch(
    rng: np.random.Generator, text_h: float, image_w: int, is_row: bool
) -> tuple[np.ndarray, np.ndarray, str]:
    """Text drawn white on black in a tight patch: (mask, ink box corners, text)."""
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    (_, ref_h), _ = cv2.getTextSize("H", font, 1.0, 1)
    scale = text_h / ref_h
    thickness = max(1, round(text_h / 10 * rng.uniform(0.8, 1.6)))
    text = _random_text(rng, is_row)
    # Shorten until it fits: rows up to 90% of the width, words up to 60%.
    limit = (0.9 if is_row else 0.6) * image_w
    while True:
        (text_w, text_hh), base = cv2.getTextSize(text, font, scale, thickness)
        if text_w <= limit or len(text) <= 1:
            break
        text = text[:-1].rstrip()
    pad = thickness + 2
    mask = np.zeros((text_hh + base + 2 * pad, text_w + 2 * pad), np.uint8)
    cv2.putText(mask, text, (pad, pad + text_hh), font, scale, 255, thickness, cv2.LINE_AA)
    x, y, w, h = cv2.boundingRect(mask)
    # The box around the ink, on pixel edges, one pixel of margin.
    corners = np.array([[x - 1, y - 1], [x + w, y - 1], [x + w, y + h], [x - 1, y + h]], np.float64)
    return mask, corners, text


def _place(
    rng: np.random.Generator,
    corners: np.ndarray,
    occupied: np.ndarray,
    is_row: bool,
    text_h: float,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None:
    """A rotation and position where the region fits the image and overlaps no other."""
    height, width = occupied.shape
    centre = corners.mean(axis=0)
    for _ in range(_PLACEMENT_TRIES):
        angle = rng.uniform(-3, 3) if is_row else rng.uniform(-25, 25)
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 1.0)
        polygon = corners @ matrix[:, :2].T + matrix[:, 2]
        lo, hi = polygon.min(axis=0), polygon.max(axis=0)
        span = hi - lo
        if span[0] > width - 4 or span[1] > height - 4:
            return None
        target = rng.uniform(2 + span / 2, np.array([width, height]) - 2 - span / 2)
        shift = target - (lo + hi) / 2
        polygon = polygon + shift
        matrix[:, 2] += shift
        region_mask = np.zeros_like(occupied)
        cv2.fillPoly(region_mask, [np.round(polygon).astype(np.int32)], 1)
        margin = max(2, int(text_h / 3))
        grown = cv2.dilate(region_mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
        if (grown & occupied).any():
            continue
        occupied |= region_mask
        box = _ink_box(polygon, width, height)
        return matrix, polygon, box
    return None


def _ink_box(polygon: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The pixel window around ``polygon`` that its blended ink may touch, inside the image."""
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 3
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def _composite(
    rng: np.random.Generator,
    image: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    box: tuple[int, int, int, int],
    illegible: bool,
) -> None:
    """Blend the rotated text into the image in a colour that contrasts with it (mostly)."""
    x0, y0, x1, y1 = box
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    alpha = cv2.warpAffine(mask, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    if illegible:
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2.5) // 2
    window = image[y0:y1, x0:x1].astype(np.float32)
    luma = float(window.mean())
    contrast = rng.uniform(120, 220) if rng.random() < 0.85 else rng.uniform(50, 120)
    level = luma - contrast if luma > 127 else luma + contrast
    colour = np.clip(level + rng.uniform(-30, 30, 3), 0, 255)
    a = (alpha.astype(np.float32) / 255)[..., None]
    image[y0:y1, x0:x1] = np.round(window * (1 - a) + colour * a).astype(np.uint8)
