"""Annotation readers on the real samples, on UFO data, and on a corpus of broken files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from trainer_core.config import ConfigError, DataConfig
from trainer_core.data.annotations import image_size, read_icdar, read_samples, read_ufo
from trainer_core.errors import DataError

BROKEN = Path(__file__).parent / "data" / "broken"


def test_icdar2015_toy_counts(shared_data: Path) -> None:
    root = shared_data / "icdar2015_toy"
    samples = read_icdar(root / "images", root / "annotations")
    assert len(samples) == 10
    assert sum(len(s.polygons) for s in samples) == 82
    assert sum(sum(s.ignore) for s in samples) == 61
    img_1 = next(s for s in samples if s.image.name == "img_1.jpg")
    # First line of gt_img_1.txt (after the byte-order mark): a legible box.
    np.testing.assert_array_equal(
        img_1.polygons[0], [[377, 117], [463, 117], [465, 130], [378, 130]]
    )
    assert img_1.ignore[0] is False
    assert all(p.dtype == np.float32 and p.shape == (4, 2) for s in samples for p in s.polygons)


def test_sroie_annotations_in_their_own_folder(shared_data: Path) -> None:
    root = shared_data / "sroie_receipts"
    samples = read_icdar(root / "img", root / "box")
    assert len(samples) == 9
    assert not any(any(s.ignore) for s in samples)
    # 000.csv line 4 has commas inside its transcription; 004.csv has CRLF line ends.
    counts = {s.image.stem: len(s.polygons) for s in samples}
    lines = {
        p.stem: sum(1 for ln in p.read_text().splitlines() if ln.strip())
        for p in (root / "box").glob("*.csv")
    }
    assert counts == lines


def test_read_samples_dispatches_on_format(shared_data: Path) -> None:
    cfg = DataConfig(
        format="icdar",
        image_root=shared_data / "icdar2015_toy" / "images",
        annotations=shared_data / "icdar2015_toy" / "annotations",
    )
    assert len(read_samples(cfg)) == 10
    with pytest.raises(ConfigError, match=r"data\.annotations"):
        read_samples(DataConfig(format="ufo", image_root=BROKEN / "ufo" / "images"))


def test_ufo_reader(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    src = BROKEN / "ufo" / "images" / "a.png"
    (tmp_path / "images" / "x.png").write_bytes(src.read_bytes())
    words = {
        "1": {
            "points": [[1, 1], [20, 1], [20, 9], [1, 9]],
            "transcription": "a",
            "illegibility": False,
        },
        "2": {"points": [[1, 20], [9, 18], [20, 20], [20, 30], [1, 30]], "transcription": "b"},
        "3": {"points": [[30, 5], [50, 5], [50, 15], [30, 15]], "illegibility": True},
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": {"x.png": {"words": words}}}))
    [sample] = read_ufo(path, tmp_path / "images")
    assert sample.image == tmp_path / "images" / "x.png"
    assert [len(p) for p in sample.polygons] == [4, 5, 4]
    assert sample.ignore == (False, False, True)


@pytest.mark.parametrize(
    ("text", "match"),
    [("{not json", "not valid JSON"), ('{"pictures": {}}', 'no "images" mapping')],
)
def test_ufo_file_that_cannot_be_used(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        read_ufo(path, tmp_path)
    with pytest.raises(DataError, match="cannot read"):
        read_ufo(tmp_path / "missing.json", tmp_path)


def _ufo_of(tmp_path: Path, count: int) -> Path:
    """A UFO file naming ``count`` images, with one box each, none of them on disk."""
    box = {"points": [[1, 1], [20, 1], [20, 9], [1, 9]], "transcription": "a"}
    images = {f"r{i:04d}.jpg": {"words": {"1": box}} for i in range(count)}
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"images": images}))
    return path


def test_a_missing_image_folder_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not 2,000 lines, one per image, and advice about data.train."""
    caplog.set_level(logging.WARNING, logger="trainer_core.data.annotations")
    annotations = _ufo_of(tmp_path, 2000)
    missing = tmp_path / "images"
    with pytest.raises(DataError) as info:
        read_ufo(annotations, missing)
    assert str(info.value) == (
        f"data.image_root: {missing} does not exist (2000 images named in {annotations})"
    )
    with pytest.raises(DataError, match=f"data.image_root: {missing} does not exist$"):
        read_icdar(missing)
    assert caplog.records == []


def test_many_missing_images_are_counted_not_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trainer_core.data.annotations")
    (tmp_path / "images").mkdir()
    assert read_ufo(_ufo_of(tmp_path, 2000), tmp_path / "images") == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) < 12
    assert "image missing" in warnings[0]
    assert "more samples dropped, not listed one by one" in warnings[-2]
    assert "dropped 0 boxes and 2000 images" in warnings[-1]


def test_broken_icdar_corpus(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trainer_core.data.annotations")
    samples = read_icdar(BROKEN / "icdar" / "images", BROKEN / "icdar" / "annotations")
    by_name = {s.image.name: s for s in samples}
    # lonely.png has no annotation file, corrupt.jpg is not an image: both dropped.
    assert sorted(by_name) == ["broken.png", "crlf.png"]
    broken = by_name["broken.png"]
    assert broken.ignore == (True, False, False, False)
    # Line 8 clipped into the 64x48 image, line 9's corners put in order.
    np.testing.assert_array_equal(broken.polygons[1], [[0, 0], [20, 0], [20, 10], [0, 10]])
    assert {tuple(p) for p in broken.polygons[2].tolist()} == {
        (10.0, 10.0),
        (30.0, 10.0),
        (30.0, 30.0),
        (10.0, 30.0),
    }
    # BOM and CRLF are tolerated.
    assert by_name["crlf.png"].ignore == (False, True)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    [report] = [w for w in warnings if "gt_broken.txt:" in w]
    assert "6 of 10 boxes dropped, 2 repaired" in report
    for expected in [
        "line 2: 3 fields, expected 8 coordinates (dropped)",
        "line 3: coordinates are not numbers (dropped)",
        "line 4: non-finite coordinate (dropped)",
        "line 6: fewer than 3 distinct points (dropped)",
        "line 7: zero area (dropped)",
        "line 8: clipped to the image (repaired)",
        "line 9: self-intersecting outline, vertices put in order (repaired)",
        "line 10: outside the image (dropped)",
    ]:
        assert expected in report
    assert any("lonely.png" in w and "no annotation file" in w for w in warnings)
    assert any("corrupt.jpg" in w and "image unreadable" in w for w in warnings)
    assert (
        "2 images, 6 boxes (2 don't care); repaired 2 boxes, dropped 6 boxes and 2 images"
        in (warnings[-1])
    )


def test_broken_ufo_corpus(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trainer_core.data.annotations")
    [sample] = read_ufo(BROKEN / "ufo" / "annotations.json", BROKEN / "ufo" / "images")
    assert sample.image.name == "a.png"
    # Word 6 crosses itself with a vertex inside: its largest part, a triangle, is kept.
    assert [len(p) for p in sample.polygons] == [4, 4, 3, 5]
    assert sample.ignore == (False, True, False, False)
    warnings = [r.getMessage() for r in caplog.records]
    [report] = [w for w in warnings if "[a.png]" in w]
    assert "4 of 8 boxes dropped, 1 repaired" in report
    assert "image 'a.png' word '2': fewer than 3 distinct points (dropped)" in report
    assert "image 'a.png' word '6': self-intersecting outline, kept its largest part" in report
    assert any("missing.png" in w and "image missing" in w for w in warnings)
    assert any("nowords.png" in w and 'no "words"' in w for w in warnings)


def test_image_size_from_headers(shared_data: Path, tmp_path: Path) -> None:
    assert image_size(shared_data / "icdar2015_toy" / "images" / "img_1.jpg") == (720, 1280)
    assert image_size(BROKEN / "ufo" / "images" / "a.png") == (48, 64)
    assert image_size(BROKEN / "icdar" / "images" / "corrupt.jpg") is None
    assert image_size(tmp_path / "nothing.jpg") is None


def test_a_truncated_jpeg_is_dropped_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import cv2

    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    (tmp_path / "whole.jpg").write_bytes(encoded.tobytes())
    (tmp_path / "cut.jpg").write_bytes(encoded.tobytes()[: len(encoded) // 2])
    box = {"points": [[2, 2], [30, 2], [30, 20], [2, 20]], "illegibility": False}
    (tmp_path / "a.json").write_text(
        json.dumps({"images": {n: {"words": {"1": box}} for n in ("whole.jpg", "cut.jpg")}})
    )
    assert image_size(tmp_path / "cut.jpg") is None
    assert image_size(tmp_path / "whole.jpg") == (48, 64)
    samples = read_ufo(tmp_path / "a.json", tmp_path)
    assert [s.image.name for s in samples] == ["whole.jpg"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cut.jpg: sample dropped: image truncated" in w for w in warnings), warnings
    assert any("dropped 0 boxes and 1 images" in w for w in warnings), warnings
