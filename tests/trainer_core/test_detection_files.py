"""Detections written as UFO, ICDAR and CSV read back by the project's own readers, and
outputs that appear whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer_core.data import read_icdar
from trainer_core.data.detection_files import FORMATS, read_detections, write_detections
from trainer_core.errors import DataError

BOX = np.array([[1, 2], [30, 2], [30, 9], [1, 9]], np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_as_written(shared_data: Path, tmp_path: Path, fmt: str) -> None:
    root = shared_data / "sroie_receipts"
    truth = read_icdar(root / "img", root / "box")
    # Off the integer grid, as predictions are (icdar rounds to whole pixels).
    detections = {s.image.name: [p + 0.25 for p in s.polygons] for s in truth}
    detections["empty.jpg"] = []
    out = tmp_path / ("preds" if fmt == "icdar" else f"preds.{fmt}")
    write_detections(out, detections, fmt)  # type: ignore[arg-type]
    images = tmp_path / "img"
    images.mkdir()
    for sample in truth:
        (images / sample.image.name).symlink_to(sample.image)
    (images / "empty.jpg").symlink_to(truth[0].image)

    back = {s.image.name: s for s in read_detections(out, fmt, images)}  # type: ignore[arg-type]
    assert sorted(back) == sorted(detections)
    tolerance = 0.5 if fmt == "icdar" else 0.005
    for name, polygons in detections.items():
        assert len(back[name].polygons) == len(polygons)
        assert not any(back[name].ignore)
        for written, read in zip(polygons, back[name].polygons, strict=True):
            np.testing.assert_allclose(read, written, atol=tolerance)


def test_an_output_is_replaced_only_once_the_new_one_is_whole(tmp_path: Path) -> None:
    folder = tmp_path / "preds"
    write_detections(folder, {"a.jpg": [BOX], "b.jpg": [BOX]}, "icdar")
    assert sorted(p.name for p in folder.iterdir()) == ["res_a.txt", "res_b.txt"]
    assert (folder / "res_a.txt").read_text() == "1,2,30,2,30,9,1,9\n"

    # A failing write (icdar holds quadrilaterals only) leaves the old output as it was.
    pentagon = np.array([[0, 0], [9, 0], [12, 5], [9, 9], [0, 9]], np.float32)
    with pytest.raises(DataError, match=r"b\.jpg: a polygon of 5 points"):
        write_detections(folder, {"a.jpg": [BOX], "b.jpg": [pentagon]}, "icdar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"]
    assert sorted(p.name for p in folder.iterdir()) == ["res_a.txt", "res_b.txt"]

    # A whole new output replaces the old folder, leaving none of its files.
    write_detections(folder, {"c.jpg": []}, "icdar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds"]
    assert [p.name for p in folder.iterdir()] == ["res_c.txt"]

    single = tmp_path / "preds.csv"
    write_detections(single, {"a.jpg": [BOX, BOX + 1]}, "csv")
    assert single.read_text().splitlines() == [
        "filename,polygons",
        "a.jpg,1.00 2.00 30.00 2.00 30.00 9.00 1.00 9.00"
        "|2.00 3.00 31.00 3.00 31.00 10.00 2.00 10.00",
    ]


def test_outputs_of_the_wrong_kind_are_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="file: a file; --format icdar writes a folder"):
        write_detections(tmp_path / "file", {}, "icdar")
    with pytest.raises(DataError, match="a folder; --format ufo writes one file"):
        write_detections(tmp_path, {}, "ufo")
    with pytest.raises(DataError, match=r"b\.png and b\.jpg would both be res_b\.txt"):
        write_detections(tmp_path / "res", {"b.jpg": [], "b.png": []}, "icdar")
    assert not (tmp_path / "res").exists()
    with pytest.raises(DataError, match="format: 'xml' is not one of ufo, icdar, csv"):
        write_detections(tmp_path / "x", {}, "xml")  # type: ignore[arg-type]


def test_a_csv_row_that_cannot_be_used(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 20)).save(tmp_path / "a.png")
    path = tmp_path / "p.csv"
    path.write_text("filename,polygons\na.png,1 2 30 2 30 9 1 9|1 2 3|x y 1 2 3 4\n")
    [sample] = read_detections(path, "csv", tmp_path)
    assert len(sample.polygons) == 1  # the odd count and the non-numbers are dropped
    path.write_text(",1 2 30 2 30 9\n")
    with pytest.raises(DataError, match="row 2 has no file name"):
        read_detections(path, "csv", tmp_path)
