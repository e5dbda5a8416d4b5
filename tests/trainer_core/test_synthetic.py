"""Synthetic data: deterministic, loadable by the UFO reader, polygons around the ink."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer_core.data.annotations import read_ufo
from trainer_core.data.synthetic import generate


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    for name, seed in [("a", 4), ("b", 4), ("c", 5)]:
        generate(tmp_path / name, n_images=6, size=(64, 96), seed=seed)
    a, b, c = (files(tmp_path / n) for n in "abc")
    assert a == b
    assert a["images/synth_00000.jpg"] != c["images/synth_00000.jpg"]
    # Image i does not depend on how many images are made.
    generate(tmp_path / "d", n_images=2, size=(64, 96), seed=4)
    assert files(tmp_path / "d")["images/synth_00001.jpg"] == a["images/synth_00001.jpg"]


def test_readers_load_it_and_polygons_frame_the_text(tmp_path: Path) -> None:
    ann = generate(tmp_path, n_images=8, size=(128, 160), seed=2, illegible_fraction=0.3)
    samples = read_ufo(ann, ann.parent / "images")
    assert len(samples) == 8
    polygons = [p for s in samples for p in s.polygons]
    assert all(3 <= len(s.polygons) <= 8 for s in samples)
    assert any(any(s.ignore) for s in samples) and not all(all(s.ignore) for s in samples)
    heights = [min(cv2.minAreaRect(p)[1]) for p in polygons]
    assert min(heights) >= 0.04 * 128 and max(heights) <= 0.12 * 128 + 12  # text + margins
    # Ink lies inside the polygons: edges (text strokes) are denser there than outside.
    inside_edges, outside_edges = [], []
    for s in samples:
        gray = cv2.cvtColor(cv2.imread(str(s.image)), cv2.COLOR_BGR2GRAY)
        edges = cv2.Canny(gray, 80, 160) > 0
        mask = np.zeros(gray.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in s.polygons], 1)
        inside_edges.append(edges[mask > 0].mean())
        outside_edges.append(edges[mask == 0].mean())
    assert np.mean(inside_edges) > 3 * np.mean(outside_edges)


def test_bad_arguments_say_which() -> None:
    with pytest.raises(ValueError, match="regions"):
        generate(Path("/nonexistent"), regions=(0, 2))
    with pytest.raises(ValueError, match="size"):
        generate(Path("/nonexistent"), size=(8, 8))


def test_receipt_pages_are_long_thin_lines_top_to_bottom(tmp_path: Path) -> None:
    ann = generate(tmp_path, n_images=4, size=(320, 160), seed=3, style="receipt")
    samples = read_ufo(ann, ann.parent / "images")
    assert len(samples) == 4
    for s in samples:
        assert len(s.polygons) >= 8  # a page full of lines
        gray = cv2.cvtColor(cv2.imread(str(s.image)), cv2.COLOR_BGR2GRAY)
        assert gray.shape == (320, 160)
        assert np.median(gray) > 150  # white paper
        sizes = [sorted(cv2.minAreaRect(p.astype(np.float32))[1]) for p in s.polygons]
        assert np.median([long / short for short, long in sizes]) > 4  # long and thin
        tops = [p[:, 1].min() for p in s.polygons]
        assert tops == sorted(tops)  # one under the other
        for p in s.polygons:
            assert (p >= 0).all() and (p[:, 0] <= 159).all() and (p[:, 1] <= 319).all()
    with pytest.raises(ValueError, match="style='comic'"):
        generate(tmp_path / "x", style="comic")  # type: ignore[arg-type]
