"""Detections written as the formats the annotation readers read: UFO JSON, ICDAR result
files, polygon CSV.

- ``ufo``: one JSON file, ``{"images": {name: {"words": {id: {"points": [[x, y], ...]}}}}}``
  (ids count from 1 per image), coordinates to 2 decimals;
- ``icdar``: a folder with one ``res_<stem>.txt`` per image, one polygon per line as
  ``x1,y1,...,x4,y4`` in whole pixels (the ICDAR 2015 result format: quadrilaterals only);
- ``csv``: one file, ``filename,polygons`` with each polygon's points space-separated and
  polygons separated by ``|``, coordinates to 2 decimals.

Outputs appear whole or not at all: everything is written under a temporary name beside the
target, then renamed over it, so an interrupted run never leaves a file or folder that looks
complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from trainer_core.data.annotations import CSV_HEADER, Sample, read_csv, read_icdar, read_ufo
from trainer_core.errors import DataError

__all__ = ["FORMATS", "Format", "read_detections", "write_detections"]

Format = Literal["ufo", "icdar", "csv"]
FORMATS: tuple[str, ...] = get_args(Format)

Detections = Mapping[str, Sequence[np.ndarray]]
"""Polygons ((N, 2) arrays) per image file name, in the order to write them."""


def _ufo_text(detections: Detections) -> str:
    images = {
        name: {
            "words": {
                str(k): {"points": np.round(np.asarray(p, np.float64), 2).tolist()}
                for k, p in enumerate(polygons, start=1)
            }
        }
        for name, polygons in detections.items()
    }
    return json.dumps({"images": images}, indent=1)


def _csv_text(detections: Detections) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for name, polygons in detections.items():
        cells = [" ".join(f"{v:.2f}" for v in np.asarray(p).ravel()) for p in polygons]
        writer.writerow([name, "|".join(cells)])
    return out.getvalue()


def _icdar_lines(name: str, polygons: Sequence[np.ndarray]) -> str:
    lines = []
    for p in polygons:
        points = np.asarray(p).reshape(-1, 2)
        if len(points) != 4:
            raise DataError(
                f"{name}: a polygon of {len(points)} points; the icdar format holds "
                "quadrilaterals (postprocess.output: quad), use ufo or csv for polygons"
            )
        lines.append(",".join(str(int(v)) for v in np.rint(points).ravel()))
    return "".join(line + "\n" for line in lines)


def _write_icdar(folder: Path, detections: Detections) -> None:
    folder.mkdir()
    written: dict[str, str] = {}
    for name, polygons in detections.items():
        file = f"res_{Path(name).stem}.txt"
        if file in written:
            raise DataError(
                f"{name} and {written[file]} would both be {file}; the icdar format names "
                "results by the image's stem, so use ufo or csv"
            )
        written[file] = name
        (folder / file).write_text(_icdar_lines(name, polygons))


def write_detections(out: Path, detections: Detections, fmt: Format) -> Path:
    """Write ``detections`` to ``out`` (a file for ufo and csv, a folder for icdar),
    replacing what is there only once the new output is complete.

    Raises:
        DataError: an unknown format, ``out`` of the wrong kind (a file where the icdar
            folder goes), or a non-quadrilateral for icdar.
        OSError: the output cannot be written (nothing is left behind).

    Example:
        >>> box = np.array([[1, 2], [30, 2], [30, 9], [1, 9]], np.float32)
        >>> write_detections(Path("preds.csv"), {"a.jpg": [box]}, "csv")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise DataError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "icdar" and out.exists() and not out.is_dir():
        raise DataError(f"{out}: a file; --format icdar writes a folder of res_*.txt files")
    if fmt != "icdar" and out.is_dir():
        raise DataError(f"{out}: a folder; --format {fmt} writes one file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    _remove(tmp)
    try:
        if fmt == "icdar":
            _write_icdar(tmp, detections)
        else:
            text = _ufo_text(detections) if fmt == "ufo" else _csv_text(detections)
            tmp.write_text(text, encoding="utf-8")
        _replace(tmp, out)
    finally:
        _remove(tmp)
    return out


def _replace(new: Path, out: Path) -> None:
    """``new`` renamed to ``out``; an existing folder is moved aside first, then removed."""
    if not new.is_dir() or not out.exists():
        os.replace(new, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    _remove(old)
    os.replace(out, old)
    os.replace(new, out)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_detections(path: Path, fmt: Format, image_root: Path) -> list[Sample]:
    """Read annotations or written detections back as samples (images in ``image_root``):
    ``ufo`` and ``csv`` from one file, ``icdar`` from a folder of per-image files.

    Raises:
        DataError: an unknown format, or what the reader raises.
    """
    if fmt == "ufo":
        return read_ufo(path, image_root)
    if fmt == "csv":
        return read_csv(path, image_root)
    if fmt == "icdar":
        if not Path(path).is_dir():
            raise DataError(f"{path}: --format icdar reads a folder of per-image .txt files")
        return read_icdar(image_root, path)
    raise DataError(f"format: {fmt!r} is not one of {', '.join(FORMATS)}")
